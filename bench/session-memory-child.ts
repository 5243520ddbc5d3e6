/**
 * Creates sessions with realistic tokens through SessionManager in a fresh process and reports what
 * they cost: process memory for the memory store, Redis's own used_memory for the Redis store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { normaliseConfig } from '../src/config/normalise.js';
import type { SessionConfig } from '../src/config/types.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import { createRedisStore } from '../src/session/redis-store.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { serveCalls } from './ipc.js';

export interface SessionCost {
  sessions: number;
  /** Average characters of the access and ID tokens stored per session. */
  accessTokenChars: number;
  idTokenChars: number;
  bytesPerSession: number;
  /** Memory store only: resident set growth per session (includes allocator slack). */
  rssPerSession?: number;
  seconds: number;
}

const ACCESS_TOKEN_CHARS = 1500;
const ID_TOKEN_CHARS = 1100;
const TEMPLATE_POOL = 1000;

function sessionConfig(): SessionConfig {
  const raw = {
    session: { keys: [{ id: 'bench-1', secret: randomBytes(32).toString('base64url') }] },
    tenants: [{ id: 'bench', publicUrl: 'http://127.0.0.1:1', idporten: { issuer: 'http://127.0.0.1:2', clientId: 'bench', clientAuth: { method: 'client_secret_post', secret: 'x'.repeat(32) } }, routes: [{ path: '/api', upstream: 'http://127.0.0.1:3/api', token: 'idporten' }] }],
  };
  return normaliseConfig(raw, {}).session;
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An RS256-shaped JWT of about `chars` characters: real claims, random padding claim, 256-byte signature. */
function jwt(chars: number, claims: Record<string, unknown>): string {
  const header = b64({ kid: randomUUID(), typ: 'at+jwt', alg: 'RS256' });
  const signature = randomBytes(256).toString('base64url');
  const base = b64(claims);
  const padBytes = Math.max(0, Math.floor(((chars - header.length - base.length - signature.length - 2) * 3) / 4) - 10);
  const payload = b64({ ...claims, x: randomBytes(Math.ceil(padBytes / 2)).toString('hex').slice(0, padBytes) });
  return `${header}.${payload}.${signature}`;
}

function sessionData(i: number, now: number): SessionData {
  const sub = randomBytes(32).toString('base64url');
  const pid = String(10_000_000_000 + i);
  const sid = randomUUID();
  const common = { iss: 'https://idporten.no', sub, pid, acr: 'idporten-loa-substantial', amr: ['BankID'], iat: now / 1000, exp: now / 1000 + 120 };
  return {
    tenant: 'bench',
    user: { sub, pid, acr: 'idporten-loa-substantial', amr: ['BankID'], locale: 'nb', sid },
    idTokenBinding: { iss: 'https://idporten.no', aud: 'bench-client', sub, acr: 'idporten-loa-substantial' },
    createdAt: now,
    tokens: {
      accessToken: jwt(ACCESS_TOKEN_CHARS, { ...common, client_id: 'bench-client', scope: 'openid skatteetaten:mvameldingvalidering skatteetaten:mvameldinginnsending', jti: randomUUID() }),
      accessTokenIssuedAt: now,
      accessTokenExpiresAt: now + 120_000,
      refreshToken: randomBytes(32).toString('base64url'),
      idToken: jwt(ID_TOKEN_CHARS, { ...common, aud: 'bench-client', sid, auth_time: now / 1000, locale: 'nb', nonce: randomUUID() }),
      scope: 'openid skatteetaten:mvameldingvalidering skatteetaten:mvameldinginnsending',
    },
  };
}

/**
 * Distinct sessions built from a pool of generated ones: every session gets its own user (sub, sid,
 * hence its own index entries) and sealed record; generating fresh JWTs for each would time the generator.
 */
function* sessions(count: number, now: number): Generator<SessionData> {
  const pool = Array.from({ length: Math.min(count, TEMPLATE_POOL) }, (_, i) => sessionData(i, now));
  for (let i = 0; i < count; i += 1) {
    const template = pool[i % pool.length]!;
    const sub = `${template.user.sub.slice(0, 32)}${i.toString(36).padStart(11, '0')}`;
    const sid = `${template.user.sid!.slice(0, 24)}${i.toString(16).padStart(12, '0')}`;
    yield { ...template, user: { ...template.user, sub, sid }, idTokenBinding: { ...template.idTokenBinding, sub } };
  }
}

async function createSessions(manager: SessionManager, count: number): Promise<{ accessTokenChars: number; idTokenChars: number }> {
  let access = 0;
  let id = 0;
  for (const data of sessions(count, Date.now())) {
    access += data.tokens.accessToken.length;
    id += data.tokens.idToken.length;
    await manager.create(data);
  }
  return { accessTokenChars: Math.round(access / count), idTokenChars: Math.round(id / count) };
}

function collectGarbage(): void {
  globalThis.gc?.();
  globalThis.gc?.();
}

serveCalls({
  async memoryStore(count: number): Promise<SessionCost> {
    const config = sessionConfig();
    const keys = new KeyRing(config.keys);
    // Warm every code path on a throw-away store so compiled code and lazily built tables are not counted.
    const warm = new MemorySessionStore(100);
    await createSessions(new SessionManager({ store: warm, lock: new MemorySessionLock(), keys, config }), 100);
    await warm.close();
    collectGarbage();
    // The baseline is taken before the store exists: the LRU's per-slot arrays are part of the cost.
    const before = process.memoryUsage();
    const started = performance.now();
    const store = new MemorySessionStore(count);
    const sizes = await createSessions(new SessionManager({ store, lock: new MemorySessionLock(), keys, config }), count);
    const seconds = (performance.now() - started) / 1000;
    collectGarbage();
    const after = process.memoryUsage();
    // Read after the measurement: the store is certainly still alive when it is taken.
    if (store.size !== count) throw new Error(`store holds ${store.size} sessions, expected ${count}`);
    const used = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external;
    return {
      sessions: count,
      ...sizes,
      bytesPerSession: (used(after) - used(before)) / count,
      rssPerSession: (after.rss - before.rss) / count,
      seconds,
    };
  },

  async redisStore({ count, url }: { count: number; url: string }): Promise<SessionCost> {
    const config = sessionConfig();
    const { store, lock } = await createRedisStore({ url, keyPrefix: 'bench:' }, pino({ level: 'silent' }));
    const probe = new Redis(url);
    try {
      const manager = new SessionManager({ store, lock, keys: new KeyRing(config.keys), config });
      const before = await usedMemory(probe);
      const started = performance.now();
      const sizes = await createSessions(manager, count);
      const seconds = (performance.now() - started) / 1000;
      const after = await usedMemory(probe);
      return { sessions: count, ...sizes, bytesPerSession: (after - before) / count, seconds };
    } finally {
      probe.disconnect();
      await store.close();
    }
  },

  async close() {},
});

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const match = /used_memory:(\d+)/.exec(info);
  if (!match?.[1]) throw new Error('no used_memory in INFO');
  return Number(match[1]);
}
