/**
 * Sessions in active use are opened (decrypted and parsed) once per sealed value and then served from memory.
 * That must never serve a record the store no longer holds: two managers on one real store stand for two
 * gateway instances, on the memory store and on a real Redis server.
 */
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import type { SessionConfig } from '../src/config/types.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import { createRedisStore } from '../src/session/redis-store.js';
import type { SessionStore } from '../src/session/store.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { captureLogger } from './helpers/stack.js';

const config: SessionConfig = { store: { type: 'memory', maxSessions: 100 }, idleTimeoutMs: 30 * 60_000, absoluteLifetimeMs: 8 * 3600_000, cookieName: 'bff', sameSite: 'lax', keys: [], refreshLeewayMs: 30_000 } as SessionConfig;
const key = () => ({ id: randomBytes(4).toString('hex'), secret: randomBytes(32) });

function record(now: number, accessToken = 'at-1'): SessionData {
  return {
    tenant: 'acme',
    user: { sub: 'sub-1', sid: 'sid-1', acr: 'idporten-loa-substantial', amr: ['TestID'] },
    idTokenBinding: { iss: 'https://op.example', aud: 'client', sub: 'sub-1', acr: 'idporten-loa-substantial' },
    createdAt: now,
    tokens: { accessToken, accessTokenIssuedAt: now, accessTokenExpiresAt: now + 120_000, refreshToken: 'rt-1', idToken: 'id-1' },
  } as SessionData;
}

async function checks(t: Test, store: SessionStore): Promise<void> {
  const ring = new KeyRing([key()]);
  const lock = new MemorySessionLock();
  const a = new SessionManager<SessionData>({ store, lock, keys: ring, config });
  const b = new SessionManager<SessionData>({ store, lock, keys: ring, config });
  const { cookieValue, session } = await a.create(record(Date.now()));

  const first = await a.load(cookieValue, 'acme');
  const again = await a.load(cookieValue, 'acme');
  t.equal(first.state, 'live');
  t.ok(first.state === 'live' && again.state === 'live' && first.session.data === again.session.data, 'a second load of the unchanged session is served from the opened record');
  t.not(first.state === 'live' && again.state === 'live' && first.session, again.state === 'live' && again.session, 'each load gets a context of its own');

  const loaded = first.state === 'live' ? first.session : session;
  t.ok(Object.isFrozen(loaded.data) && Object.isFrozen(loaded.data.tokens) && Object.isFrozen(loaded.data.user.amr), 'the shared record is frozen through and through');
  t.throws(() => {
    (loaded.data.tokens as { accessToken: string }).accessToken = 'changed in place';
  }, TypeError, 'changing it in place throws instead of changing what other requests see');

  // Another instance refreshes: it seals a new record. The next load here sees it, not the one it opened before.
  const other = await b.load(cookieValue, 'acme');
  if (other.state !== 'live') throw new Error('b sees no session');
  other.session.data = { ...other.session.data, tokens: { ...other.session.data.tokens, accessToken: 'at-2' } };
  t.equal(await b.update(other.session, b.versionOf(other.session.data)), 'written');
  const afterRefresh = await a.load(cookieValue, 'acme');
  t.equal(afterRefresh.state === 'live' && afterRefresh.session.data.tokens.accessToken, 'at-2', 'a record sealed anew elsewhere is opened anew here');

  // The opened record never outlives the stored one: a logout on the other instance ends it here at once.
  await b.destroy(other.session.id);
  t.equal((await a.load(cookieValue, 'acme')).state, 'none', 'a session destroyed elsewhere is gone here too');
}

t.test('memory store: an opened record is served only while the store holds the same sealed value', async (t) => {
  await checks(t, new MemorySessionStore(100));
});

t.test('Redis: an opened record is served only while the store holds the same sealed value', { skip: redisMissingReason() }, async (t) => {
  const redis = await startRedis(t);
  const { store } = await createRedisStore({ url: redis.url, keyPrefix: 'opened:' }, captureLogger().logger);
  t.teardown(() => store.close());
  await checks(t, store);
});

t.test('a record opened with one key ring is not served to a manager with another (rotation, tenant keys)', async (t) => {
  const store = new MemorySessionStore(100);
  const lock = new MemorySessionLock();
  const old = key();
  const manager = new SessionManager<SessionData>({ store, lock, keys: new KeyRing([old]), config });
  const { cookieValue } = await manager.create(record(Date.now()));
  t.equal((await manager.load(cookieValue, 'acme')).state, 'live');
  // A tenant ring that does not hold the key the record was sealed with opens nothing, opened before or not.
  let tenantRing: KeyRing | undefined;
  const scoped = new SessionManager<SessionData>({ store, lock, keys: new KeyRing([old]), keysFor: () => tenantRing, config });
  t.equal((await scoped.load(cookieValue, 'acme')).state, 'live', 'the shared ring opens it');
  tenantRing = new KeyRing([key()]);
  t.equal((await scoped.load(cookieValue, 'acme')).state, 'none', 'a ring without its key does not, though the record was opened a moment ago');
});

t.test('a tampered sealed value is not served from an earlier opening', async (t) => {
  const store = new MemorySessionStore(100);
  const manager = new SessionManager<SessionData>({ store, lock: new MemorySessionLock(), keys: new KeyRing([key()]), config });
  const { cookieValue, session } = await manager.create(record(Date.now()));
  t.equal((await manager.load(cookieValue, 'acme')).state, 'live');
  const stored = await store.get(session.id);
  if (!stored) throw new Error('not stored');
  const tampered = Buffer.from(stored.sealed);
  tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0x01;
  await store.set(session.id, { ...stored, sealed: tampered }, 60_000, []);
  t.equal((await manager.load(cookieValue, 'acme')).state, 'none', 'the changed value is opened, fails its tag, and is none');
});
