/**
 * Tracked session reads on a real Redis (src/session/tracked-reads.ts): a request-path read is served again
 * from this instance's copy only while Redis's client tracking would tell it of a change. Every change to the
 * record, by another instance, by this one or by anyone with a Redis client (DEL, expiry, FLUSHALL), ends the
 * copy; a copy never serves past its maximum age; nothing is kept while either connection is down; and a read
 * whose key changed while it was in flight is not kept.
 */
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import type { SessionConfig } from '../src/config/types.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import { createRedisStore, type RedisSessionStore } from '../src/session/redis-store.js';
import type { StoredSession } from '../src/session/store.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { TRACKED_READ_MAX_AGE_MS, TrackedReads } from '../src/session/tracked-reads.js';
import { redisMissingReason, startRedis, type RedisServer } from './helpers/redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const silent = pino({ level: 'silent' });
const record = (sealed: string, lastSeenAt = 1) => ({ sealed: Buffer.from(sealed), lastSeenAt });
const TTL = 60_000;
/**
 * How long a test waits for an invalidation to arrive. Well under the maximum age, so a copy that ends only
 * because it aged out fails the test.
 */
const INVALIDATION_WAIT_MS = TRACKED_READ_MAX_AGE_MS / 2;

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

/** HMGET calls the server has run: a read served from the copy adds none. */
async function reads(admin: Redis): Promise<number> {
  const stats = await admin.info('commandstats');
  return Number(/^cmdstat_hmget:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
}

interface Setup {
  redis: RedisServer;
  admin: Redis;
  a: RedisSessionStore;
  b: RedisSessionStore;
}

async function setup(t: Test): Promise<Setup> {
  const redis = await startRedis(t);
  const admin = new Redis(redis.url);
  const { store: a } = await createRedisStore({ url: redis.url, keyPrefix: 'tr:' }, silent);
  const { store: b } = await createRedisStore({ url: redis.url, keyPrefix: 'tr:' }, silent);
  t.teardown(async () => {
    await a.close();
    await b.close();
    admin.disconnect();
  });
  await until('both instances track their reads', () => a.tracking && b.tracking);
  return { redis, admin, a, b };
}

/** A request's lookup on A: the kept read if there is one, else a tracked read. */
async function readA(s: Setup, id: string) {
  return s.a.kept(id) ?? (await s.a.get(id, 'tracked'));
}

/** A's lookup of `id`, once it shows `expected` (undefined: no record), within INVALIDATION_WAIT_MS. */
async function seenByA(s: Setup, id: string, expected: string | undefined): Promise<boolean> {
  try {
    await until(`A reads ${expected ?? 'nothing'}`, async () => (await readA(s, id))?.sealed.toString() === expected, INVALIDATION_WAIT_MS);
    return true;
  } catch {
    return false;
  }
}

t.test('tracked reads', { skip: redisMissingReason() ?? false }, async (t) => {
  const s = await setup(t);

  t.test('a tracked read is served again from the copy; an exact read always asks Redis', async (t) => {
    await s.b.set('kept', record('one'), TTL, []);
    t.equal((await readA(s, 'kept'))?.sealed.toString(), 'one');
    const before = await reads(s.admin);
    for (let i = 0; i < 20; i += 1) t.equal((await readA(s, 'kept'))?.sealed.toString(), 'one');
    t.equal(await reads(s.admin), before, 'twenty tracked reads of an unchanged record send no read to Redis');
    await s.a.get('kept');
    await s.a.get('kept', 'exact');
    t.equal(await reads(s.admin), before + 2, 'exact reads (the default) go to Redis every time');
  });

  t.test('a change by another instance ends the copy: an update, a touch, a delete', async (t) => {
    await s.b.set('other', record('one', 10), TTL, []);
    await readA(s, 'other');
    await s.b.update('other', record('two', 20), TTL, [], '', '');
    t.ok(await seenByA(s, 'other', 'two'), 'a record sealed anew on B is read anew on A');
    await s.b.touch('other', 30, TTL);
    await until('A sees the touch', async () => (await readA(s, 'other'))?.lastSeenAt === 30, INVALIDATION_WAIT_MS);
    t.pass('a touch on B moves lastSeenAt on A (the idle timeout counts from the latest request anywhere)');
    await s.b.delete('other');
    t.ok(await seenByA(s, 'other', undefined), 'a session destroyed on B (a logout) is gone on A');
  });

  t.test('a change by anyone with a Redis client ends the copy: DEL, expiry, FLUSHALL', async (t) => {
    await s.b.set('raw', record('one'), TTL, []);
    await readA(s, 'raw');
    await s.admin.del(s.a.key('raw'));
    t.ok(await seenByA(s, 'raw', undefined), 'an operator\'s DEL');

    await s.b.set('expiring', record('one'), TTL, []);
    await readA(s, 'expiring');
    await s.admin.pexpire(s.a.key('expiring'), 20);
    await sleep(30);
    // Redis deletes an expired key on access or by its sweep; either sends the invalidation.
    await s.admin.exists(s.a.key('expiring'));
    t.ok(await seenByA(s, 'expiring', undefined), 'an expiry in Redis');

    await s.b.set('flushed', record('one'), TTL, []);
    await readA(s, 'flushed');
    await s.admin.flushall();
    t.ok(await seenByA(s, 'flushed', undefined), 'FLUSHALL (Redis sends a null invalidation: everything goes)');
  });

  t.test('this instance\'s own writes end its copy at once', async (t) => {
    await s.a.set('own', record('one'), TTL, []);
    await readA(s, 'own');
    await s.a.update('own', record('two'), TTL, [], '', '');
    t.equal((await readA(s, 'own'))?.sealed.toString(), 'two', 'read right after its own update');
    await s.a.delete('own');
    t.equal(await readA(s, 'own'), undefined, 'read right after its own delete');
  });

  t.test('a copy serves for at most its maximum age, even without any invalidation', async (t) => {
    await s.b.set('aging', record('one'), TTL, []);
    await readA(s, 'aging');
    const before = await reads(s.admin);
    await readA(s, 'aging');
    t.equal(await reads(s.admin), before, 'kept while young');
    await sleep(TRACKED_READ_MAX_AGE_MS + 50);
    await readA(s, 'aging');
    t.equal(await reads(s.admin), before + 1, 'read from Redis again once older than the maximum age');
  });

  t.test('no record is not kept: unknown ids cannot fill the memory', async (t) => {
    const before = await reads(s.admin);
    await readA(s, 'absent');
    await readA(s, 'absent');
    t.equal(await reads(s.admin), before + 2);
  });

  t.test('the subscriber connection killed: nothing is kept and every read asks Redis until tracking is back', async (t) => {
    await s.b.set('outage', record('one'), TTL, []);
    await readA(s, 'outage');
    await s.admin.client('KILL', 'TYPE', 'pubsub');
    await until('A stops tracking', () => !s.a.tracking);
    const before = await reads(s.admin);
    // A change while A cannot hear of it: A must not serve its old copy.
    await s.b.update('outage', record('two'), TTL, [], '', '');
    t.equal((await readA(s, 'outage'))?.sealed.toString(), 'two', 'the change made meanwhile is read');
    await until('A tracks again', () => s.a.tracking);
    t.ok((await reads(s.admin)) > before, 'the read went to Redis');
    await readA(s, 'outage');
    await s.b.update('outage', record('three'), TTL, [], '', '');
    t.ok(await seenByA(s, 'outage', 'three'), 'after the reconnect invalidations arrive again');
  });

  t.test('the data connection killed: the copies go, and tracking is set up again on the new connection', async (t) => {
    await s.b.set('data-outage', record('one'), TTL, []);
    await readA(s, 'data-outage');
    const clients = await s.admin.call('CLIENT', 'LIST', 'TYPE', 'normal');
    // Every normal connection but the admin's: A's and B's data connections; both reconnect.
    const mine = await s.admin.client('ID');
    for (const line of String(clients).split('\n')) {
      const id = /^id=(\d+)/.exec(line)?.[1];
      if (id && id !== String(mine)) await s.admin.client('KILL', 'ID', id);
    }
    await until('A stops tracking', () => !s.a.tracking);
    await until('A tracks again', () => s.a.tracking && s.b.tracking);
    await readA(s, 'data-outage');
    await s.b.update('data-outage', record('two'), TTL, [], '', '');
    t.ok(await seenByA(s, 'data-outage', 'two'), 'a change after the reconnect reaches A');
  });
});

t.test('a read whose key changed while it was in flight is not kept (the invalidation came first)', { skip: redisMissingReason() ?? false }, async (t) => {
  const redis = await startRedis(t);
  const data = new Redis(redis.url);
  const tracked = new TrackedReads(data);
  t.teardown(() => {
    tracked.close();
    data.disconnect();
  });
  await until('tracking is on', () => tracked.tracking);
  const value = record('old');

  const raced = tracked.begin('k')!;
  tracked.forget('k');
  tracked.settle(raced, value);
  t.equal(tracked.get('k'), undefined, 'an invalidation between the read and its answer: not kept');

  const first = tracked.begin('k')!;
  const second = tracked.begin('k')!;
  tracked.settle(first, value);
  t.equal(tracked.get('k'), undefined, 'an answer overtaken by a later read of the same key is not kept');
  tracked.settle(second, value);
  t.equal(tracked.get('k')?.sealed.toString(), 'old', 'the latest read is');

  data.disconnect();
  await until('tracking is off', () => !tracked.tracking);
  t.equal(tracked.get('k'), undefined, 'the copy went with the connection');
  t.equal(tracked.begin('k'), undefined, 'and nothing is kept while it is down');
});

/** A store whose kept reads lag: they answer what it held when `freeze` was called (an invalidation still on its way). */
class LaggingStore extends MemorySessionStore {
  #frozen = new Map<string, StoredSession | undefined>();
  freeze(id: string, value: StoredSession | undefined): void {
    this.#frozen.set(id, value);
  }
  override kept(id: string): StoredSession | undefined {
    return this.#frozen.get(id);
  }
}

t.test('a session is never ended on a copy: past its idle deadline by a kept read, it is looked up exactly first', async (t) => {
  const idleTimeoutMs = 60_000;
  const config = { store: { type: 'memory', maxSessions: 10 }, idleTimeoutMs, absoluteLifetimeMs: 8 * 3600_000, cookieName: 'bff', sameSite: 'lax', keys: [], refreshLeewayMs: 30_000 } as SessionConfig;
  let now = Date.now();
  const store = new LaggingStore(10);
  const manager = new SessionManager<SessionData>({ store, lock: new MemorySessionLock(), keys: new KeyRing([{ id: 'k', secret: randomBytes(32) }]), config, now: () => now });
  const data = { tenant: 'acme', user: { sub: 's', sid: 'sid', acr: 'idporten-loa-substantial', amr: [] }, createdAt: now, tokens: { accessToken: 'at', accessTokenIssuedAt: now, accessTokenExpiresAt: now + 120_000, refreshToken: 'rt' } } as unknown as SessionData;
  const { cookieValue, session } = await manager.create(data);
  // The copy this instance kept still says the session was last seen at its creation.
  store.freeze(session.id, await store.get(session.id));
  // Another instance saw a request 50 s later; 20 s after that this instance's copy alone would call it idle.
  now += 50_000;
  await store.touch(session.id, now, idleTimeoutMs);
  now += 20_000;
  const loaded = await manager.load(cookieValue, 'acme');
  t.equal(loaded.state, 'live', 'live by what the store holds (last seen 20 s ago)');
  now += idleTimeoutMs;
  const idle = await manager.load(cookieValue, 'acme');
  t.ok(idle.state === 'expired' && idle.reason === 'idle', 'and idle once the store, too, says so');
});

t.test('a server that refuses CLIENT TRACKING (an ACL without CLIENT): every read goes to Redis, with one warning', { skip: redisMissingReason() ?? false }, async (t) => {
  const redis = await startRedis(t);
  const admin = new Redis(redis.url);
  await admin.acl('SETUSER', 'limited', 'on', '>limited-pw', '~*', '&*', '+@all', '-client');
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const { store } = await createRedisStore({ url: `redis://limited:limited-pw@127.0.0.1:${redis.port}`, keyPrefix: 'acl:' }, logger);
  t.teardown(async () => {
    await store.close();
    admin.disconnect();
  });
  await until('the refusal is logged', () => logs.some((l) => l.msg === 'client tracking unavailable; every session read goes to Redis'));
  t.equal(store.tracking, false, 'nothing is kept');
  await store.set('s', record('one'), TTL, []);
  const before = await reads(admin);
  t.equal((await store.get('s', 'tracked'))?.sealed.toString(), 'one', 'sessions still work');
  t.equal(store.kept('s'), undefined, 'and are not kept');
  t.equal(await reads(admin), before + 1);
});
