import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import pino from 'pino';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import { createRedisStore, DEFAULT_LOCK_LEASE_MS } from '../src/session/redis-store.js';
import { SessionManager } from '../src/session/manager.js';
import { KeyRing } from '../src/session/key-ring.js';
import { newSessionCookieValue } from '../src/session/cookies.js';
import type { SessionData } from '../src/tokens/session-data.js';
import type { SessionConfig } from '../src/config/types.js';
import {
  DEFAULT_LOCK_WAIT_MS,
  LockLostError,
  LockTimeoutError,
  StoreUnavailableError,
  type SessionLock,
  type SessionStore,
} from '../src/session/store.js';
import { redisMissingReason, startRedis, startRedisCluster, startRedisSentinel, type RedisServer } from './helpers/redis.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const silent = pino({ level: 'silent' });

/** One gateway instance's view of the store; `peer` is a second instance sharing it (the same objects in memory). */
interface Instance {
  store: SessionStore;
  lock: SessionLock;
}
interface Subject extends Instance {
  peer: Instance;
}
type Factory = (t: Test) => Promise<Subject>;

// The memory lock's wait timer is unref'd (it must not keep a server process alive); in a test nothing else
// may be pending while a waiter times out, so hold the event loop open until the file is done.
const keepAlive = setInterval(() => undefined, 1_000);
t.teardown(() => clearInterval(keepAlive));

const record = (sealed: string, lastSeenAt = 1, version = 'v0') => ({ sealed: Buffer.from(sealed), lastSeenAt, version });

/** Resolves true once `p` settles, false if it has not within `ms` (a bound against hangs, not a timing check). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = p.then(
    () => true as const,
    () => true as const,
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** The behaviour every SessionStore/SessionLock pair promises (src/session/store.ts). */
function contract(t: Test, make: Factory): void {
  t.test('get returns what set stored, set replaces it, delete removes it', async (t) => {
    const { store, peer } = await make(t);
    t.equal(await store.get('nobody'), undefined, 'an unknown id is undefined');
    await store.set('a', record('sealed-1', 100), 60_000, []);
    t.same(await store.get('a'), record('sealed-1', 100));
    t.same(await peer.store.get('a'), record('sealed-1', 100), 'the other instance reads the same record');
    const copy = await store.get('a');
    copy!.sealed = Buffer.from('changed by the caller');
    t.same(await store.get('a'), record('sealed-1', 100), 'callers get a copy, not the stored record');
    await peer.store.set('a', record('sealed-2', 200), 60_000, []);
    t.same(await store.get('a'), record('sealed-2', 200), 'set replaces the whole record');
    await store.delete('a');
    t.equal(await store.get('a'), undefined);
    t.equal(await peer.store.get('a'), undefined, 'deleted for every instance');
    await store.delete('a');
    t.pass('deleting an absent record is fine');
  });

  t.test('a record expires with its TTL; a non-positive TTL removes it at once', async (t) => {
    const { store } = await make(t);
    await store.set('short', record('s'), 150, []);
    await store.set('long', record('l'), 60_000, []);
    await sleep(400);
    t.equal(await store.get('short'), undefined, 'expired');
    t.same(await store.get('long'), record('l'), 'a longer TTL is unaffected');
    await store.set('long', record('l'), 0, []);
    t.equal(await store.get('long'), undefined, 'set with TTL 0 removes the record');
    await store.set('touched', record('t'), 60_000, []);
    await store.touch('touched', 5, -1);
    t.equal(await store.get('touched'), undefined, 'touch with a TTL in the past removes the record');
  });

  t.test('touch records lastSeenAt and extends the expiry', async (t) => {
    const { store } = await make(t);
    await store.set('a', record('sealed', 1), 300, []);
    await store.touch('a', 42, 60_000);
    t.same(await store.get('a'), record('sealed', 42), 'only lastSeenAt changed');
    await sleep(600);
    t.same(await store.get('a'), record('sealed', 42), 'still there after the first TTL');
  });

  t.test('touch never overwrites sealed data another instance saved in between', async (t) => {
    // Instance A loads the session, instance B stores refreshed tokens, then A records the request it served.
    const { store, peer } = await make(t);
    await store.set('a', record('old-tokens', 1), 60_000, []);
    t.same(await store.get('a'), record('old-tokens', 1));
    await peer.store.set('a', record('refreshed-tokens', 2), 60_000, []);
    await store.touch('a', 3, 60_000);
    t.same(await peer.store.get('a'), record('refreshed-tokens', 3));
  });

  t.test('touch never resurrects a deleted, expired or unknown record', async (t) => {
    const { store, peer } = await make(t);
    await store.set('deleted', record('x'), 60_000, ['sub:u']);
    await peer.store.delete('deleted');
    await store.touch('deleted', 9, 60_000);
    t.equal(await store.get('deleted'), undefined, 'logout on one instance is not undone by a late touch on another');
    t.same(await store.findByIndex('sub:u'), [], 'nor is its index entry');
    await store.set('expired', record('x'), 100, []);
    await sleep(300);
    await store.touch('expired', 9, 60_000);
    t.equal(await store.get('expired'), undefined);
    await store.touch('never-existed', 9, 60_000);
    t.equal(await store.get('never-existed'), undefined);
  });

  t.test('update replaces a live record but never resurrects a deleted or expired one', async (t) => {
    // A refresh on one instance that finishes after a logout on another must not bring the session back.
    const { store, peer } = await make(t);
    await store.set('a', record('v1', 1), 60_000, ['sid:test:s']);
    t.equal(await peer.store.update('a', record('v2', 2), 60_000, ['sid:test:s'], 'v0', ''), 'written', 'a live record is updated');
    t.same(await store.get('a'), record('v2', 2));
    t.same(await store.findByIndex('sid:test:s'), ['a'], 'and stays indexed');
    await store.delete('a');
    t.equal(await peer.store.update('a', record('v3', 3), 60_000, ['sid:test:s'], 'v0', ''), 'gone', 'a deleted record is not written');
    t.equal(await store.get('a'), undefined);
    t.same(await store.findByIndex('sid:test:s'), [], 'nor indexed again');
    await store.set('b', record('x'), 100, []);
    await sleep(300);
    t.equal(await store.update('b', record('y'), 60_000, [], 'v0', ''), 'gone', 'an expired record is not written');
    t.equal(await store.get('b'), undefined);
    t.equal(await store.update('never-existed', record('z'), 60_000, [], 'v0', ''), 'gone');
    t.equal(await store.get('never-existed'), undefined);
  });

  t.test('update is a compare-and-set on the version: a rotation made elsewhere is never overwritten', async (t) => {
    // Two holders read version R; one stores its rotated R1; the other, whose lease lapsed, comes with R2 for R.
    const { store, peer } = await make(t);
    await store.set('a', record('holds R', 1, 'R'), 60_000, ['sid:test:s']);
    t.equal(await store.update('a', record('holds R1', 2, 'R1'), 60_000, ['sid:test:s'], 'R', 'one'), 'written');
    t.equal(await peer.store.update('a', record('holds R2', 3, 'R2'), 60_000, ['sid:test:s'], 'R', 'two'), 'changed', 'the late writer finds another version');
    t.same(await store.get('a'), record('holds R1', 2, 'R1'), 'and the first rotation stands');
    t.same(await store.findByIndex('sid:test:s'), ['a'], 'still indexed: a changed record is not unindexed');
    t.equal(await peer.store.update('a', record('holds R1 again', 4, 'R1'), 60_000, ['sid:test:s'], 'R', 'one'), 'written', 'the same write again (its first answer lost) is taken');
    t.equal(await store.update('a', record('derived added', 5, 'R1'), 60_000, ['sid:test:s'], 'R1', ''), 'written', 'a write that keeps the version');
    t.equal(await store.delete('a', 'R'), 'changed', 'a delete of what the caller read before a rotation is refused');
    t.not(await store.get('a'), undefined);
    t.equal(await store.delete('a', 'R1'), 'written', 'and made over what it holds now');
    t.equal(await store.delete('a', 'R1'), 'gone');
  });

  t.test('a claim holds while renewed, then passes on only after the grace; a write lifts it', async (t) => {
    const { store, peer } = await make(t);
    const timing = { ttlMs: 300, graceMs: 300 };
    await store.set('a', record('holds R', 1, 'R'), 60_000, []);
    t.same(await store.claim('a', 'R', 'one', timing), { state: 'claimed' });
    t.same(await store.claim('a', 'R', 'one', timing), { state: 'claimed' }, 'its holder renews it');
    const held = await peer.store.claim('a', 'R', 'two', timing);
    t.equal(held.state, 'held', 'another holder waits while it is renewed');
    t.equal(await peer.store.claim('a', 'R-old', 'two', timing).then((c) => c.state), 'changed', 'a claim on another version is refused');
    await sleep(350);
    const lapsed = await peer.store.claim('a', 'R', 'two', timing);
    t.same(lapsed, { state: 'held', retryInMs: 300 }, 'a lapsed claim first seen now still holds for the grace');
    t.same(await store.claim('a', 'R', 'one', timing), { state: 'claimed' }, 'its holder, back within the grace, keeps it');
    await sleep(350);
    t.equal((await peer.store.claim('a', 'R', 'two', timing)).state, 'held', 'a claim renewed since it was seen lapsed is waited for anew');
    await sleep(350);
    t.same(await peer.store.claim('a', 'R', 'two', timing), { state: 'claimed' }, 'seen lapsed for the grace, it passes on');
    t.equal((await store.claim('a', 'R', 'one', timing)).state, 'held', 'and the old holder is now the one who waits');
    t.equal(await peer.store.update('a', record('holds R1', 2, 'R1'), 60_000, [], 'R', 'two'), 'written');
    t.same(await store.claim('a', 'R1', 'three', timing), { state: 'claimed' }, 'the write lifted the claim');
    await store.unclaim('a', 'someone else');
    t.equal((await peer.store.claim('a', 'R1', 'four', timing)).state, 'held', 'only its holder lifts a claim');
    await store.unclaim('a', 'three');
    t.same(await peer.store.claim('a', 'R1', 'four', timing), { state: 'claimed' }, 'lifted by its holder');
    t.same(await store.claim('gone', 'R', 'one', timing), { state: 'gone' });
  });

  t.test('findByIndex lists the sessions of a sid or sub, seen from every instance', async (t) => {
    const { store, peer } = await make(t);
    await store.set('one', record('1'), 60_000, ['sid:test:s1', 'sub:test:u']);
    await peer.store.set('two', record('2'), 60_000, ['sid:test:s2', 'sub:test:u']);
    await store.set('other', record('3'), 60_000, ['sub:test:someone-else']);
    t.same((await store.findByIndex('sub:test:u')).sort(), ['one', 'two']);
    t.same(await peer.store.findByIndex('sid:test:s1'), ['one']);
    t.same(await store.findByIndex('sid:test:s2'), ['two']);
    t.same(await store.findByIndex('sid:test:unknown'), []);
    await store.set('one', record('1b'), 60_000, ['sid:test:s1', 'sub:test:u']);
    t.same(await store.findByIndex('sid:test:s1'), ['one'], 'saving again does not duplicate the entry');
    await store.touch('one', 5, 60_000);
    t.same(await store.findByIndex('sid:test:s1'), ['one'], 'a touched session stays indexed');
  });

  t.test('a deleted session drops out of its indexes; the other members stay', async (t) => {
    const { store, peer } = await make(t);
    await store.set('one', record('1'), 60_000, ['sid:test:s', 'sub:test:u']);
    await store.set('two', record('2'), 60_000, ['sub:test:u']);
    await peer.store.delete('one');
    t.same(await store.findByIndex('sub:test:u'), ['two']);
    t.same(await store.findByIndex('sid:test:s'), []);
  });

  t.test('an index grows from one session to several and back; a session saved under other keys moves', async (t) => {
    const { store } = await make(t);
    await store.set('one', record('1'), 60_000, ['sub:test:u', 'sid:test:s1']);
    t.same(await store.findByIndex('sub:test:u'), ['one']);
    await store.set('two', record('2'), 60_000, ['sub:test:u']);
    await store.set('three', record('3'), 60_000, ['sub:test:u']);
    t.same((await store.findByIndex('sub:test:u')).sort(), ['one', 'three', 'two']);
    await store.delete('two');
    await store.delete('three');
    t.same(await store.findByIndex('sub:test:u'), ['one'], 'back to the one session left');
    await store.set('two', record('2'), 60_000, ['sub:test:u']);
    t.same((await store.findByIndex('sub:test:u')).sort(), ['one', 'two'], 'and to several again');
    await store.set('one', record('1b'), 60_000, ['sub:test:v', 'sid:test:s2']);
    t.same(await store.findByIndex('sub:test:u'), ['two'], 'saved under another sub: gone from the old one');
    t.same(await store.findByIndex('sid:test:s1'), [], 'and from its old sid');
    t.same(await store.findByIndex('sub:test:v'), ['one']);
    t.same(await store.findByIndex('sid:test:s2'), ['one']);
    await store.delete('two');
    await store.delete('one');
    for (const key of ['sub:test:u', 'sub:test:v', 'sid:test:s2']) t.same(await store.findByIndex(key), [], `${key} is empty at the end`);
  });

  t.test('an index outlives its shorter-lived members, whichever was saved first', async (t) => {
    const { store } = await make(t);
    await store.set('long-first', record('1'), 60_000, ['sub:test:u']);
    await store.set('short-after', record('2'), 150, ['sub:test:u']);
    await store.set('short-first', record('3'), 150, ['sub:test:v']);
    await store.set('long-after', record('4'), 60_000, ['sub:test:v']);
    await sleep(400);
    // The contract lets an index still list expired members; what matters is that the live one is there.
    t.ok((await store.findByIndex('sub:test:u')).includes('long-first'), 'a short-lived member does not shorten the index');
    t.ok((await store.findByIndex('sub:test:v')).includes('long-after'), 'a long-lived member extends the index');
  });

  t.test('an active session stays findable by sid after the TTL it was saved with', async (t) => {
    // Saved once at login, then kept alive only by touches (requests that need no refresh):
    // front-channel logout must still find it by sid.
    const { store, peer } = await make(t);
    await store.set('active', record('x'), 300, ['sid:test:s', 'sub:test:u']);
    await store.touch('active', 2, 60_000);
    await sleep(600);
    t.same(await peer.store.findByIndex('sid:test:s'), ['active']);
    t.same(await peer.store.findByIndex('sub:test:u'), ['active']);
  });

  t.test('a shared value (an upstream DPoP nonce) is seen by every instance, replaced by the next put, and gone after its ttl', async (t) => {
    const { store, peer } = await make(t);
    t.equal(await peer.store.getShared('dpop-nonce:https://a'), undefined);
    await store.putShared('dpop-nonce:https://a', 'n1', 400);
    t.equal(await peer.store.getShared('dpop-nonce:https://a'), 'n1', 'the other instance sees it');
    await peer.store.putShared('dpop-nonce:https://a', 'n2', 400);
    t.equal(await store.getShared('dpop-nonce:https://a'), 'n2', 'the newer one replaces it');
    t.equal(await store.getShared('dpop-nonce:https://b'), undefined, 'per key');
    await sleep(600);
    t.equal(await store.getShared('dpop-nonce:https://a'), undefined, 'gone after its ttl');
  });

  t.test('remember is set-if-absent for every instance, and forgets after its ttl', async (t) => {
    const { store, peer } = await make(t);
    t.equal(await store.remembered('jti:1'), false);
    t.equal(await store.remember('jti:1', 300), true, 'new');
    t.equal(await peer.store.remember('jti:1', 300), false, 'already remembered, also on the other instance');
    t.equal(await peer.store.remembered('jti:1'), true);
    t.equal(await peer.store.remember('jti:2', 60_000), true, 'another key is new');
    await sleep(500);
    t.equal(await store.remembered('jti:1'), false, 'forgotten after its ttl');
    t.equal(await store.remember('jti:1', 300), true);
  });

  t.test('two withLock calls on one id never overlap, also from two instances', async (t) => {
    const { lock, peer } = await make(t);
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 ? peer.lock : lock).withLock('same', async () => {
          inside += 1;
          most = Math.max(most, inside);
          await sleep(15);
          order.push(i);
          inside -= 1;
        }),
      ),
    );
    t.equal(most, 1, 'never two holders at once');
    t.equal(order.length, 12, 'every caller ran');
  });

  t.test('withLock on different ids runs in parallel', async (t) => {
    const { lock, peer } = await make(t);
    const aStarted = gate();
    const bStarted = gate();
    const [aSawB, bSawA] = await Promise.all([
      lock.withLock('a', async () => {
        aStarted.open();
        return settlesWithin(bStarted.promise, 5_000);
      }),
      peer.lock.withLock('b', async () => {
        bStarted.open();
        return settlesWithin(aStarted.promise, 5_000);
      }),
    ]);
    t.ok(aSawB && bSawA, 'each holder saw the other running');
  });

  t.test('waiting longer than waitMs for a held lock rejects with LockTimeoutError and never runs fn', async (t) => {
    const { lock, peer } = await make(t);
    const release = gate();
    const holding = gate();
    const holder = lock.withLock('busy', async () => {
      holding.open();
      await release.promise;
      return 'held';
    });
    await holding.promise;
    let ran = false;
    for (const [name, candidate] of [['the same instance', lock], ['another instance', peer.lock]] as const) {
      await t.rejects(
        candidate.withLock('busy', async () => (ran = true), { waitMs: 200 }),
        LockTimeoutError,
        `waiting on ${name}`,
      );
    }
    t.equal(ran, false);
    release.open();
    t.equal(await holder, 'held');
    t.equal(await peer.lock.withLock('busy', async () => 'free again', { waitMs: 5_000 }), 'free again');
  });

  t.test('a holder that throws releases the lock', async (t) => {
    const { lock, peer } = await make(t);
    await t.rejects(lock.withLock('x', async () => Promise.reject(new Error('boom'))), { message: 'boom' });
    t.equal(await peer.lock.withLock('x', async () => 'next', { waitMs: 1_000 }), 'next');
  });

  t.test('a live holder keeps the lock for as long as it works, beyond its lease', async (t) => {
    const { lock, peer } = await make(t);
    const holding = gate();
    const holder = lock.withLock(
      'slow',
      async () => {
        holding.open();
        await sleep(900);
      },
      { leaseMs: 200 },
    );
    await holding.promise;
    await t.rejects(peer.lock.withLock('slow', async () => undefined, { waitMs: 600 }), LockTimeoutError);
    await holder;
  });

  t.test('a holder that hangs past holdMs loses the lock: its signal aborts, withLock rejects with LockLostError, the next waiter runs', async (t) => {
    const { lock, peer } = await make(t);
    const holding = gate();
    const never = gate();
    t.teardown(never.open);
    let seen: AbortSignal | undefined;
    const hung = lock.withLock(
      'hung',
      async (signal) => {
        seen = signal;
        holding.open();
        await never.promise;
        return 'finished';
      },
      { holdMs: 300 },
    );
    await holding.promise;
    const next = peer.lock.withLock('hung', async (signal) => (signal.aborted ? 'aborted' : 'ran'), { waitMs: 10_000 });
    await t.rejects(hung, LockLostError, 'the hung holder is told, without waiting for fn');
    t.equal(seen?.aborted, true, 'its signal aborted');
    t.type(seen?.reason, LockLostError, 'with a LockLostError as the reason, so signal.throwIfAborted() throws it');
    t.equal(await next, 'ran', 'the next waiter got the lock, its own signal untouched');
  });

  t.test('a holder that finishes in time never sees its signal abort', async (t) => {
    const { lock } = await make(t);
    let seen: AbortSignal | undefined;
    t.equal(await lock.withLock('quick', async (signal) => ((seen = signal), 'done'), { holdMs: 5_000, leaseMs: 200 }), 'done');
    await sleep(400);
    t.equal(seen?.aborted, false);
  });
}

t.test('MemorySessionStore', async (t) => {
  const make: Factory = async (t) => {
    const store = new MemorySessionStore(1000);
    t.teardown(() => store.close());
    const instance = { store, lock: new MemorySessionLock() };
    return { ...instance, peer: instance };
  };
  contract(t, make);

  t.test('when full, the least recently used session goes first and leaves its indexes', async (t) => {
    const store = new MemorySessionStore(2);
    await store.set('a', record('a'), 60_000, ['sub:test:u']);
    await store.set('b', record('b'), 60_000, ['sub:test:u']);
    await store.get('a');
    await store.set('c', record('c'), 60_000, ['sub:test:u']);
    t.equal(await store.get('b'), undefined, 'b was least recently used');
    t.same((await store.findByIndex('sub:test:u')).sort(), ['a', 'c']);
    t.equal(store.size, 2);
  });

  t.test("a request's synchronous lookup (kept) is the record itself: every write, touch and delete shows at once", async (t) => {
    const store = new MemorySessionStore(10);
    t.equal(store.kept('a'), undefined, 'nothing before a write');
    await store.set('a', record('one'), 60_000, []);
    t.equal(store.kept('a')?.sealed.toString(), 'one');
    await store.update('a', record('two'), 60_000, [], 'v0', '');
    t.equal(store.kept('a')?.sealed.toString(), 'two', 'an update, with no read in between');
    await store.touch('a', 42, 60_000);
    t.equal(store.kept('a')?.lastSeenAt, 42, 'a touch');
    t.same(store.kept('a'), await store.get('a'), 'the same answer as an exact read');
    await store.delete('a');
    t.equal(store.kept('a'), undefined, 'a delete');
    await store.set('b', record('b'), 1, []);
    await sleep(5);
    t.equal(store.kept('b'), undefined, 'an expired record');
  });
});

const missing = redisMissingReason();
t.test('RedisSessionStore', { skip: missing ?? false }, async (t) => {
  const redis = await startRedis(t);
  let prefixes = 0;
  const connect = async (t: Test, keyPrefix: string) => {
    const instance = await createRedisStore({ url: redis.url, keyPrefix }, silent);
    t.teardown(() => instance.store.close());
    return instance;
  };
  const make: Factory = async (t) => {
    const keyPrefix = `bff-test-${(prefixes += 1)}:`;
    return { ...(await connect(t, keyPrefix)), peer: await connect(t, keyPrefix) };
  };
  contract(t, make);

  t.test('index keys expire with their longest-lived member: nothing lingers forever', async (t) => {
    const { store } = await make(t);
    const raw = rawClient(t, redis);
    await store.set('a', record('a'), 5_000, ['sid:test:s']);
    await store.set('b', record('b'), 20_000, ['sid:test:s']);
    const keys = await raw.keys(`bff-test-${prefixes}:{i:*`);
    t.same(keys, [`bff-test-${prefixes}:{i:sid:test:s}`]);
    const ttl = await raw.pttl(keys[0]!);
    t.ok(ttl > 5_000 && ttl <= 20_000, `index TTL ${ttl} ms follows the longest member`);
    await store.delete('a');
    await store.delete('b');
    t.same(await raw.keys(`bff-test-${prefixes}:*`), [], 'deleting every member removes the index key too');
  });

  t.test('the store keeps no cookie value and no plaintext: keys are the ids it was given', async (t) => {
    const { store } = await make(t);
    const raw = rawClient(t, redis);
    await store.set('hashed-id', record('sealed-blob'), 60_000, ['sub:test:u']);
    t.same((await raw.keys(`bff-test-${prefixes}:*`)).sort(), [`bff-test-${prefixes}:{hashed-id}:s`, `bff-test-${prefixes}:{i:sub:test:u}`]);
    t.same(await raw.hmget(`bff-test-${prefixes}:{hashed-id}:s`, 'd', 't'), ['sealed-blob', '1']);
  });

  t.test('a session stored by the previous release (base64url text in d) still loads, and is saved as bytes after', async (t) => {
    const { store, lock } = await make(t);
    const raw = rawClient(t, redis);
    const ring = new KeyRing([{ id: 'k1', secret: Buffer.alloc(32, 3) }]);
    const manager = new SessionManager<SessionData>({ store, lock, keys: ring, config: { absoluteLifetimeMs: 3_600_000, idleTimeoutMs: 1_800_000 } as SessionConfig });
    const now = Date.now();
    const data = sessionData('at-1');
    const cookieValue = newSessionCookieValue();
    const id = SessionManager.storeKey(cookieValue);
    const key = `bff-test-${prefixes}:{${id}}:s`;
    // What the previous release wrote: the seal() text as d, lastSeenAt as t.
    await raw.hset(key, 'd', ring.seal(JSON.stringify(data), `session:${id}`), 't', String(now - 1_000), 'i', '[]');
    await raw.pexpire(key, 60_000);
    const loaded = await manager.load(cookieValue, 'test');
    if (loaded.state !== 'live') throw new Error(`the legacy session loads as ${loaded.state}`);
    t.same(loaded.session.data, data, 'the same record');
    t.equal(loaded.session.lastSeenAt, now - 1_000, 'and its lastSeenAt');
    loaded.session.data = { ...loaded.session.data, tokens: { ...loaded.session.data.tokens, accessToken: 'at-2' } };
    t.equal(await manager.update(loaded.session, 'not what an earlier release wrote'), 'written', 'no version: the first update is taken');
    const d = await raw.hgetBuffer(key, 'd');
    t.equal(d?.[0], 0x02, 'an update writes the binary form');
    const again = await manager.load(cookieValue, 'test');
    t.equal(again.state === 'live' && again.session.data.tokens.accessToken, 'at-2');
  });

  t.test('the lease frees a lock whose holder crashed', async (t) => {
    const { lock } = await make(t);
    const raw = rawClient(t, redis);
    // What an instance that died while holding the lock leaves behind: its key, with a lease.
    await raw.set(`bff-test-${prefixes}:{orphan}:l`, 'token-of-a-dead-instance', 'PX', 400);
    t.equal(await lock.withLock('orphan', async () => 'acquired', { waitMs: 10_000 }), 'acquired');
    t.equal(await raw.exists(`bff-test-${prefixes}:{orphan}:l`), 0, 'released after use');
  });

  t.test('a holder whose connection died stops renewing, and its lease runs out', async (t) => {
    const { lock } = await make(t);
    const crashed = await connect(t, `bff-test-${prefixes}:`);
    const holding = gate();
    const never = gate();
    t.teardown(never.open);
    let seen: AbortSignal | undefined;
    const orphaned = crashed.lock.withLock('orphan', async (signal) => {
      seen = signal;
      holding.open();
      await never.promise;
    }, { leaseMs: 300 });
    const told = t.rejects(orphaned, LockLostError, 'the cut-off holder learns it lost the lock');
    await holding.promise;
    await crashed.store.close();
    t.equal(await lock.withLock('orphan', async () => 'acquired', { waitMs: 10_000 }), 'acquired');
    await told;
    t.equal(seen?.aborted, true);
  });

  t.test('with the default bounds a waiter outlasts the lease of a holder that died, instead of timing out first', async (t) => {
    const { lock } = await make(t);
    const raw = rawClient(t, redis);
    t.ok(DEFAULT_LOCK_LEASE_MS < DEFAULT_LOCK_WAIT_MS, `lease ${DEFAULT_LOCK_LEASE_MS} ms is shorter than the wait ${DEFAULT_LOCK_WAIT_MS} ms`);
    // A full lease left by an instance killed right after it took or renewed the lock.
    await raw.set(`bff-test-${prefixes}:{dead}:l`, 'token-of-a-dead-instance', 'PX', DEFAULT_LOCK_LEASE_MS);
    t.equal(await lock.withLock('dead', async () => 'acquired'), 'acquired');
  });

  t.test('a holder whose key expired or was taken over learns it at its next renewal and writes nothing after', async (t) => {
    const { lock } = await make(t);
    const raw = rawClient(t, redis);
    const key = `bff-test-${prefixes}:{stolen}:l`;
    const holding = gate();
    let wrote = false;
    const holder = lock.withLock(
      'stolen',
      async (signal) => {
        holding.open();
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        signal.throwIfAborted();
        wrote = true;
      },
      { leaseMs: 400 },
    );
    await holding.promise;
    // What a holder finds after a pause longer than its lease: the key expired and another instance took it.
    await raw.set(key, 'token-of-the-next-holder', 'PX', 10_000);
    await t.rejects(holder, LockLostError);
    t.equal(wrote, false, 'the holder stopped before its write');
    t.equal(await raw.get(key), 'token-of-the-next-holder', 'and did not release the new holder\'s lock');
  });

  t.test('Redis frozen: a holder whose renewals go unanswered takes itself for lost when its lease is up', async (t) => {
    const { lock } = await make(t);
    const holding = gate();
    let seen: AbortSignal | undefined;
    const holder = lock.withLock(
      'frozen',
      async (signal) => {
        seen = signal;
        holding.open();
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      },
      { leaseMs: 500 },
    );
    await holding.promise;
    redis.pause();
    t.teardown(() => redis.resume());
    // The renewals neither succeed nor fail before the lease is up (commands time out after 2 s).
    await t.rejects(holder, LockLostError);
    t.equal(seen?.aborted, true);
    redis.resume();
  });

  t.test('Redis down: every operation fails fast with StoreUnavailableError; after a restart they work again', async (t) => {
    const { store, lock } = await make(t);
    await store.set('a', record('a'), 60_000, ['sub:test:u']);
    await redis.stop();
    t.teardown(() => redis.start().catch(() => undefined));
    const operations: [string, () => Promise<unknown>][] = [
      ['get', () => store.get('a')],
      ['set', () => store.set('a', record('b'), 60_000, ['sub:test:u'])],
      ['update', () => store.update('a', record('b'), 60_000, ['sub:test:u'], 'v0', '')],
      ['claim', () => store.claim('a', 'v0', 'holder', { ttlMs: 1_000, graceMs: 1_000 })],
      ['touch', () => store.touch('a', 2, 60_000)],
      ['delete', () => store.delete('a')],
      ['findByIndex', () => store.findByIndex('sub:test:u')],
      ['remember', () => store.remember('jti', 60_000)],
      ['remembered', () => store.remembered('jti')],
      ['ping', () => store.ping()],
      ['withLock', () => lock.withLock('a', async () => 'ran')],
    ];
    for (const [name, op] of operations) await t.rejects(op(), StoreUnavailableError, `${name} rejects`);
    await redis.start();
    await reachable(store);
    t.equal(await store.get('a'), undefined, 'the data is gone: this Redis keeps nothing on disk');
    await store.set('a', record('after'), 60_000, ['sub:test:u']);
    t.same(await store.get('a'), record('after'));
    t.same(await store.findByIndex('sub:test:u'), ['a'], 'scripts work again after Redis lost its script cache');
    t.equal(await lock.withLock('a', async () => 'ran'), 'ran');
  });

  t.test('Redis frozen: operations fail with StoreUnavailableError instead of hanging, and recover', async (t) => {
    const { store } = await make(t);
    await store.set('a', record('a'), 60_000, []);
    redis.pause();
    t.teardown(() => redis.resume());
    await t.rejects(store.get('a'), StoreUnavailableError, 'get gives up after the command timeout');
    await t.rejects(store.ping(), StoreUnavailableError);
    redis.resume();
    await reachable(store);
    t.same(await store.get('a'), record('a'));
  });

  t.test('a store created while Redis is down connects once Redis is up', async (t) => {
    await redis.stop();
    t.teardown(() => redis.start().catch(() => undefined));
    const { store } = await connect(t, 'bff-test-late:');
    await t.rejects(store.ping(), StoreUnavailableError, 'unreachable at first');
    await redis.start();
    await reachable(store);
    await store.set('a', record('a'), 60_000, []);
    t.same(await store.get('a'), record('a'));
  });
});

t.test('RedisSessionStore on a Redis Cluster (three masters)', { skip: missing ?? false }, async (t) => {
  const cluster = await startRedisCluster(t);
  let prefixes = 0;
  const connect = async (t: Test, keyPrefix: string) => {
    const instance = await createRedisStore({ mode: 'cluster', url: cluster.nodes[0]!, nodes: cluster.nodes, keyPrefix }, silent);
    t.teardown(() => instance.store.close());
    await reachable(instance.store);
    return instance;
  };
  const make: Factory = async (t) => {
    const keyPrefix = `bff-cluster-${(prefixes += 1)}:`;
    return { ...(await connect(t, keyPrefix)), peer: await connect(t, keyPrefix) };
  };
  contract(t, make);

  t.test('one session\'s keys share a slot, an index is its own; ids are spread over the masters', async (t) => {
    const { store, lock } = await make(t);
    const prefix = `bff-cluster-${prefixes}:`;
    const ids = Array.from({ length: 12 }, (_, i) => `session-${i}`);
    for (const id of ids) await store.set(id, record(id), 60_000, [`sid:test:${id}`]);
    await lock.withLock('session-0', async () => undefined);
    const homes = new Set<number>();
    for (const id of ids) {
      const home = await cluster.masterFor(`${prefix}{${id}}:s`);
      t.equal((await cluster.masterFor(`${prefix}{${id}}:l`)).port, home.port, `${id}: its lock is on its record's master`);
      homes.add(home.port);
    }
    t.ok(homes.size > 1, `sessions live on ${homes.size} masters, not one`);
    for (const id of ids) t.same(await store.findByIndex(`sid:test:${id}`), [id], `${id} is found through its index on another slot`);
  });

  t.test('readiness runs a script over one session\'s keys: a layout that breaks on a cluster is not ready', async (t) => {
    const { store } = await make(t);
    await store.ping();
    t.pass('the store as laid out is ready');
    // The same store with its session keys untagged: the record and the lock land in different slots.
    const untagged = await createRedisStore({ mode: 'cluster', url: cluster.nodes[0]!, nodes: cluster.nodes, keyPrefix: 'bff-untagged:' }, silent);
    t.teardown(() => untagged.store.close());
    Object.defineProperty(untagged.store, 'key', { value: (id: string) => `bff-untagged:s:${id}` });
    await t.rejects(untagged.store.ping(), StoreUnavailableError);
    await t.rejects(untagged.store.ping(), { cause: { message: /CROSSSLOT/ } }, 'refused with CROSSSLOT');
  });
});

t.test('RedisSessionStore behind Redis Sentinel (primary, replica, one Sentinel)', { skip: missing ?? false }, async (t) => {
  const sentinel = await startRedisSentinel(t);
  let prefixes = 0;
  const connect = async (t: Test, keyPrefix: string) => {
    const instance = await createRedisStore({ mode: 'sentinel', url: sentinel.nodes[0]!, nodes: sentinel.nodes, name: sentinel.name, keyPrefix }, silent);
    t.teardown(() => instance.store.close());
    await reachable(instance.store);
    return instance;
  };
  const make: Factory = async (t) => {
    const keyPrefix = `bff-sentinel-${(prefixes += 1)}:`;
    return { ...(await connect(t, keyPrefix)), peer: await connect(t, keyPrefix) };
  };
  contract(t, make);
});

function rawClient(t: Test, redis: RedisServer): Redis {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  t.teardown(() => client.disconnect());
  return client;
}

/** Waits until the store's client has reconnected (ioredis backs off up to 2 s between attempts). */
async function reachable(store: SessionStore): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await store.ping();
    } catch (err) {
      if (attempt >= 100) throw err;
      await sleep(100);
    }
  }
}

t.test('SessionManager: a token update after its lock was lost is still written while the record holds what it redeemed, and never over a rotation made meanwhile', async (t) => {
  const store = new MemorySessionStore(10);
  const inner = new MemorySessionLock();
  // A real memory lock with a short hold bound, so the holder below outlives it.
  const lock: SessionLock = { withLock: (id, fn, opts) => inner.withLock(id, fn, { ...opts, holdMs: 200 }) };
  const sessions = managerOn(store, lock);
  const { session } = await sessions.create(sessionData('original'));
  const rotate = (s: typeof session, accessToken: string, refreshToken: string) => ({ ...s, data: { ...s.data, tokens: { ...s.data.tokens, accessToken, refreshToken } } });

  const done = gate();
  let late: unknown;
  const lost = sessions.withLock(session, async (signal) => {
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    try {
      late = await sessions.update(rotate(session, 'after the lease', 'rt-2'), 'rt');
    } finally {
      done.open();
    }
  });
  await t.rejects(lost, LockLostError, 'withLock answers as soon as the lock is lost');
  await done.promise;
  t.equal(late, 'written', 'a lost lease alone is no reason to drop the rotated token');
  t.equal(await accessTokenOf(sessions, session.id), 'after the lease');
  t.equal(await sessions.update(rotate(session, 'from the old token', 'rt-3'), 'rt'), 'changed', 'a second rotation of the same token is refused by the store');
  t.equal(await accessTokenOf(sessions, session.id), 'after the lease', 'and the first stands');
  await sessions.destroy(session.id);
  t.equal(await sessions.update(rotate(session, 'resurrected?', 'rt-5'), 'rt-2'), 'gone', 'a destroyed session stays destroyed');
});

t.test('SessionManager keeps a token update the store could not take, writes it once the store answers, and reads nothing older meanwhile', { skip: missing ?? false }, async (t) => {
  const redis = await startRedis(t);
  const { store, lock } = await createRedisStore({ url: redis.url, keyPrefix: 'kept:' }, silent);
  t.teardown(() => store.close());
  await reachable(store);
  const sessions = managerOn(store, lock);
  t.teardown(() => sessions.close());
  const { session } = await sessions.create(sessionData('at-1'));
  const settled: string[] = [];
  redis.pause();
  t.teardown(() => redis.resume());
  const rotated = { ...session, data: { ...session.data, tokens: { ...session.data.tokens, accessToken: 'at-2', refreshToken: 'rt-2' } } };
  t.equal(await sessions.update(rotated, 'rt', { keep: (outcome) => settled.push(outcome) }), 'kept', 'the store is frozen: the update is kept');
  await t.rejects(sessions.loadById(session.id), StoreUnavailableError, 'this instance reads nothing while its kept write cannot be made');
  redis.resume();
  await reachable(store);
  const loaded = await sessions.loadById(session.id);
  t.equal(loaded.state === 'live' && loaded.session.data.tokens.refreshToken, 'rt-2', 'the first read after the outage sees the kept write');
  t.same(settled, ['written'], 'and the keeper heard it once');
});

/** A session manager whose records are versioned by their refresh token, as the gateway's are. */
function managerOn(store: SessionStore, lock: SessionLock): SessionManager<SessionData> {
  return new SessionManager<SessionData>({
    store,
    lock,
    keys: new KeyRing([{ id: 'k1', secret: Buffer.alloc(32, 7) }]),
    config: { absoluteLifetimeMs: 3_600_000, idleTimeoutMs: 1_800_000 } as SessionConfig,
    versionOf: (data) => data.tokens.refreshToken ?? '',
  });
}

function sessionData(accessToken: string): SessionData {
  const now = Date.now();
  return {
    tenant: 'test',
    user: { sub: 'sub-1', acr: 'idporten-loa-substantial', amr: ['TestID'] },
    idTokenBinding: { iss: 'https://issuer.invalid', aud: 'client', sub: 'sub-1', acr: 'idporten-loa-substantial' },
    createdAt: now,
    tokens: { accessToken, accessTokenIssuedAt: now, accessTokenExpiresAt: now + 120_000, refreshToken: 'rt', idToken: 'id' },
  };
}

async function accessTokenOf(sessions: SessionManager<SessionData>, id: string): Promise<string | undefined> {
  const loaded = await sessions.loadById(id);
  return loaded.state === 'live' ? loaded.session.data.tokens.accessToken : undefined;
}
