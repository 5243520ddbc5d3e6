/** Memory per session: 10k and 100k sessions in the memory store (and in Redis when installed), each in a fresh process. */
import { forkChild } from './ipc.js';
import { startPrivateRedis } from './redis.js';
import { fixed, table, type Section } from './report.js';
import type { SessionCost } from './session-memory-child.js';

export interface SessionMemoryOptions {
  counts: number[];
  redisCount: number;
}

// The whole record (sealed data, lru-cache slot, sid/sub index entries) should stay in single-digit kilobytes.
const BYTES_PER_SESSION_TARGET = 10 * 1024;

export async function sessionMemory(opts: SessionMemoryOptions): Promise<Section> {
  const rows: (string | number)[][] = [];
  const costs: SessionCost[] = [];
  for (const count of opts.counts) costs.push(await inFreshProcess('memoryStore', count));
  for (const c of costs) rows.push(['memory', c.sessions, c.accessTokenChars, c.idTokenChars, fixed(c.bytesPerSession), c.rssPerSession === undefined ? '' : fixed(c.rssPerSession), fixed(c.sessions / c.seconds)]);

  const redis = await startPrivateRedis();
  try {
    if (redis) {
      const c = await inFreshProcess('redisStore', { count: opts.redisCount, url: redis.url });
      rows.push(['redis (used_memory)', c.sessions, c.accessTokenChars, c.idTokenChars, fixed(c.bytesPerSession), '', fixed(c.sessions / c.seconds)]);
    }
  } finally {
    await redis?.stop();
  }

  const markdown = [
    'SessionManager.create with RS256-sized JWTs (access and ID token), an opaque refresh token and distinct users, each count in a fresh process;',
    'bytes/session is the growth of V8 heap + external memory after a full GC, baseline taken before the store was built.',
    '',
    table(['store', 'sessions', 'access token chars', 'ID token chars', 'bytes/session', 'RSS bytes/session', 'creates/s'], rows),
    ...(redis ? [] : ['', '_redis-server is not installed: the Redis store was skipped._']),
  ].join('\n');
  const worst = Math.max(...costs.map((c) => c.bytesPerSession));
  return {
    title: 'Memory per session',
    markdown,
    checks: [{ name: `memory store under ${BYTES_PER_SESSION_TARGET / 1024} KiB per session`, pass: worst < BYTES_PER_SESSION_TARGET, detail: `worst ${fixed(worst)} bytes` }],
  };
}

async function inFreshProcess(method: string, params: unknown): Promise<SessionCost> {
  const child = await forkChild(new URL('./session-memory-child.ts', import.meta.url));
  try {
    return await child.call<SessionCost>(method, params);
  } finally {
    await child.stop();
  }
}
