/**
 * Pending provider logouts, called directly: what a round does with each kind of failure, a logout accepted again,
 * a round under way at shutdown, a journal that cannot be written, and the bound. The `end` here stands for the
 * lifecycle's ending of a provider session; a round that must not go on is held by an `end` that does not answer,
 * so the checks count calls, not time (they hold on a slow machine).
 */
import t, { type Test } from 'tap';
import type { SessionConfig } from '../src/config/types.js';
import { StoreUnavailableError } from '../src/errors.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import type { Tenant } from '../src/tenant/tenant.js';
import { LogoutJournal } from '../src/tokens/logout-journal.js';
import { MAX_PENDING_LOGOUTS, PendingLogouts, type PendingLogoutsOptions, type ProviderSession } from '../src/tokens/pending-logouts.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { sessionRecord } from './helpers/session-record.js';
import { captureLogger } from './helpers/stack.js';

const HOUR = 3_600_000;
const INTERVAL_MS = 10;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tenant = { id: 'mva' } as Tenant;

/** What `end` does with the next call: fail like an unreachable store, fail otherwise, hold the call, or end it. */
type Mode = 'down' | 'error' | 'hang' | 'ok';

function setUp(t: Test, opts: Partial<PendingLogoutsOptions> = {}) {
  const config = { absoluteLifetimeMs: 8 * HOUR, idleTimeoutMs: HOUR } as SessionConfig;
  const sessions = new SessionManager<SessionData>({ store: new MemorySessionStore(10), lock: new MemorySessionLock(), keys: new KeyRing([{ id: 'k', secret: Buffer.alloc(32, 5) }]), config });
  const state = { mode: 'down' as Mode, calls: [] as ProviderSession[], held: [] as (() => void)[] };
  const logs = captureLogger();
  const pending = new PendingLogouts({
    sessions,
    end: async (_tenant, who) => {
      state.calls.push(who);
      if (state.mode === 'down') throw new StoreUnavailableError();
      if (state.mode === 'error') throw new Error('the session record is damaged');
      if (state.mode === 'hang') await new Promise<void>((resolve) => state.held.push(resolve));
    },
    log: logs.logger,
    now: Date.now,
    maxAgeMs: config.absoluteLifetimeMs,
    intervalMs: INTERVAL_MS,
    ...opts,
  });
  t.teardown(async () => {
    for (const release of state.held) release();
    await pending.stop();
  });
  const refused = async (sid: string) => {
    const { session } = await sessions.create(sessionRecord({ tenant: 'mva', sub: 'u1', sid }));
    return (await sessions.loadById(session.id)).state === 'expired';
  };
  /** Releases the calls held so far (they end the logout). */
  const release = () => state.held.splice(0).forEach((r) => r());
  return { pending, state, logs, refused, release };
}

/** Waits (at most 5 s) until `check` holds. */
async function until(check: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within 5 s: ${what}`);
    await sleep(2);
  }
}

const warnings = (logs: { lines: Record<string, unknown>[] }, re: RegExp) => logs.lines.filter((l) => re.test(String(l.msg)));

t.test('one round at a time: while a call of a round is under way, neither more logouts nor time start another', async (t) => {
  const { pending, state } = setUp(t);
  state.mode = 'hang';
  for (const sid of ['s1', 's2', 's3']) await pending.add(tenant, { sid });
  await until(() => state.calls.length === 1, 'the first call');
  await pending.add(tenant, { sid: 's4' });
  await sleep(INTERVAL_MS * 5);
  t.same(state.calls, [{ sid: 's1' }], 'one call in all: no second round beside the first, one timer for many adds');
});

t.test('a failure other than the store\'s does not hold up the others; that logout stays pending, warned of once, and is tried again', async (t) => {
  const { pending, state, logs, refused } = setUp(t);
  state.mode = 'error';
  await pending.add(tenant, { sid: 's1' });
  await pending.add(tenant, { sid: 's2' });
  await until(() => state.calls.filter((c) => c.sid === 's1').length >= 3, 'three tries of s1');
  t.ok(state.calls.some((c) => c.sid === 's2'), 'the next one is tried in the same round (only the store being away ends a round)');
  t.equal(pending.size, 2, 'a failed logout is not dropped: it must not be lost');
  t.ok(await refused('s1'), 'and its sessions are still refused');
  const warned = warnings(logs, /pending back-channel logout failed; trying again/);
  t.equal(warned.length, 2, 'one warning per logout, not one per round');
  t.match(warned[0], { tenant: 'mva', reason: 'the session record is damaged', level: 'warn' });
  state.mode = 'ok';
  await until(() => pending.size === 0, 'applied');
  t.notOk(await refused('s1'), 'applied once the failure is gone');
});

t.test('a logout accepted again while a round is ending it stays pending, and moves to the end of the line', async (t) => {
  const { pending, state, release, refused } = setUp(t);
  state.mode = 'hang';
  await pending.add(tenant, { sid: 's1' });
  await until(() => state.calls.length === 1, 'the first call');
  await pending.add(tenant, { sid: 's1' });
  state.mode = 'down';
  release();
  await sleep(INTERVAL_MS * 3);
  t.equal(pending.size, 1, 'the second acceptance is not ended by the round that began before it');
  t.ok(await refused('s1'), 'still refused');
});

t.test('a logout accepted again takes one place only: at the bound, it does not push another out', async (t) => {
  const { pending, state, logs } = setUp(t, { maxEntries: 2 });
  state.mode = 'hang';
  await pending.add(tenant, { sid: 's1' });
  await pending.add(tenant, { sid: 's2' });
  await pending.add(tenant, { sid: 's1' });
  t.equal(pending.size, 2);
  t.equal(warnings(logs, /too many pending/).length, 0, 'nothing made room');
  await pending.add(tenant, { sid: 's3' });
  await until(() => state.calls.length === 1, 'the first call');
  t.same(state.calls, [{ sid: 's1' }], 's2 made room: s1, accepted again, is now younger than s2');
});

t.test('at most MAX_PENDING_LOGOUTS are pending when no bound is given (bounded memory)', async (t) => {
  const { pending, logs } = setUp(t, { intervalMs: 60_000 });
  for (let i = 0; i <= MAX_PENDING_LOGOUTS; i++) await pending.add(tenant, { sid: `s${i}` });
  t.equal(pending.size, MAX_PENDING_LOGOUTS);
  t.match(warnings(logs, /too many pending/), [{ tenant: 'mva', pending: MAX_PENDING_LOGOUTS, level: 'warn' }], 'once, naming the tenant and how many are pending');
});

t.test('stopped and started again before the next try: still one round at a time (the stopped timer does not fire)', async (t) => {
  const { pending, state } = setUp(t);
  state.mode = 'hang';
  await pending.add(tenant, { sid: 's1' });
  await pending.stop();
  await pending.add(tenant, { sid: 's2' });
  await until(() => state.calls.length >= 1, 'the first call');
  await sleep(INTERVAL_MS * 5);
  t.same(state.calls, [{ sid: 's1' }]);
});

t.test('stop during a round: the round ends after the call under way, and no round follows (shutdown)', async (t) => {
  const { pending, state, release } = setUp(t);
  state.mode = 'hang';
  await pending.add(tenant, { sid: 's1' });
  await pending.add(tenant, { sid: 's2' });
  await until(() => state.calls.length === 1, 'the first call');
  state.mode = 'down';
  let done = false;
  const stopped = pending.stop().then(() => (done = true));
  await sleep(INTERVAL_MS * 2);
  t.notOk(done, 'stop waits for the call under way (the store is closed only after it)');
  release();
  await stopped;
  await sleep(INTERVAL_MS * 5);
  t.same(state.calls, [{ sid: 's1' }], 's2 not tried after stop, and no later round');
  t.equal(pending.size, 1);
});

t.test('a journal that cannot be written is logged, not thrown: the logout is still refused and retried here', async (t) => {
  const journal = await LogoutJournal.open(t.testdir(), { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 10, log: captureLogger().logger });
  await journal.close();
  const { pending, logs, refused, state } = setUp(t, { journal });
  await pending.add(tenant, { sid: 's1' });
  t.match(warnings(logs, /not written to the journal/), [{ tenant: 'mva', reason: /closed/, level: 'warn' }]);
  t.ok(await refused('s1'));
  await until(() => state.calls.length > 0, 'tried');
  t.equal(pending.size, 1);
});

t.test('without a journal nothing is logged for it', async (t) => {
  const { pending, logs } = setUp(t, { intervalMs: 60_000 });
  await pending.add(tenant, { sid: 's1' });
  t.same(logs.lines, []);
});

t.test('a finished logout the journal could not record is logged; the process goes on (no unhandled rejection)', async (t) => {
  const journal = await LogoutJournal.open(t.testdir(), { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 10, log: captureLogger().logger });
  t.teardown(() => journal.close());
  journal.done = () => Promise.reject(new Error('ENOSPC: no space left on device'));
  const { pending, logs, state } = setUp(t, { journal });
  state.mode = 'ok';
  await pending.add(tenant, { sid: 's1' });
  await until(() => pending.size === 0, 'applied');
  await until(() => warnings(logs, /finished back-channel logout not written/).length === 1, 'logged');
  t.match(warnings(logs, /finished back-channel logout not written/)[0], { tenant: 'mva', reason: /ENOSPC/ });
});

t.test('from the journal, a logout by sub alone is retried by sub alone (OIDC Back-Channel Logout 1.0 section 2.4)', async (t) => {
  const dir = t.testdir();
  const log = captureLogger().logger;
  const writer = await LogoutJournal.open(dir, { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 10, log });
  await writer.add({ tenant: 'mva', sub: 'u1', at: Date.now() });
  await writer.add({ tenant: 'mva', sid: 's9', at: Date.now() });
  await writer.close();
  const journal = await LogoutJournal.open(dir, { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 10, log });
  t.teardown(() => journal.close());
  const { pending, state } = setUp(t, { journal, tenantById: () => tenant });
  state.mode = 'ok';
  await until(() => pending.size === 0, 'applied');
  t.same(state.calls.map((c) => Object.keys(c)), [['sub'], ['sid']], 'no sid or sub made up');
  await until(() => journal.size === 0, 'both done in the journal');
});
