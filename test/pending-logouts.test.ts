/**
 * Pending provider logouts (the back-channel logouts the store could not apply): how often they are tried, what a
 * round costs while the store is away, what a restart restores from the journal, and their bounds (age, number).
 * `end` stands for the lifecycle's ending of a provider session and fails like the store does while `storeDown`;
 * the refusals are a real SessionManager's.
 */
import t, { type Test } from 'tap';
import type { SessionConfig } from '../src/config/types.js';
import { StoreUnavailableError } from '../src/errors.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import type { Tenant } from '../src/tenant/tenant.js';
import { LogoutJournal } from '../src/tokens/logout-journal.js';
import { PendingLogouts, type ProviderSession } from '../src/tokens/pending-logouts.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { sessionRecord } from './helpers/session-record.js';
import { captureLogger } from './helpers/stack.js';

const HOUR = 3_600_000;
const INTERVAL_MS = 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tenant = { id: 'mva' } as Tenant;

function setUp(t: Test, opts: { maxEntries?: number; now?: () => number; journal?: LogoutJournal; tenantById?: (id: string) => Tenant | undefined } = {}) {
  const config = { absoluteLifetimeMs: 8 * HOUR, idleTimeoutMs: HOUR } as SessionConfig;
  const sessions = new SessionManager<SessionData>({ store: new MemorySessionStore(10), lock: new MemorySessionLock(), keys: new KeyRing([{ id: 'k', secret: Buffer.alloc(32, 5) }]), config });
  const state = { storeDown: true, calls: [] as ProviderSession[] };
  const logs = captureLogger();
  const pending = new PendingLogouts({
    sessions,
    end: async (_tenant, who) => {
      state.calls.push(who);
      if (state.storeDown) throw new StoreUnavailableError();
    },
    log: logs.logger,
    now: opts.now ?? Date.now,
    maxAgeMs: config.absoluteLifetimeMs,
    intervalMs: INTERVAL_MS,
    ...opts,
  });
  t.teardown(() => pending.stop());
  const refused = async (sid: string) => {
    const { session } = await sessions.create(sessionRecord({ tenant: 'mva', sub: 'u1', sid }));
    return (await sessions.loadById(session.id)).state === 'expired';
  };
  return { pending, state, logs, refused };
}

/** Waits until nothing is pending (at most 5 s). */
async function applied(pending: PendingLogouts): Promise<void> {
  const end = Date.now() + 5_000;
  while (pending.size > 0 && Date.now() < end) await sleep(5);
  if (pending.size > 0) throw new Error('still pending after 5 s');
}

t.test('a pending logout is refused at once, tried every interval while the store is away, and applied within one interval of its return', async (t) => {
  const { pending, state, refused } = setUp(t);
  await pending.add(tenant, { sid: 's1', sub: 'u1' });
  t.ok(await refused('s1'), 'refused on this instance at once');
  await sleep(INTERVAL_MS * 10.5);
  // A backoff doubling from one interval would have tried 3 times by now.
  t.ok(state.calls.length >= 6 && state.calls.length <= 10, `tried every interval, no growing backoff (${state.calls.length} tries in 10.5 intervals)`);
  state.storeDown = false;
  const back = Date.now();
  await applied(pending);
  const took = Date.now() - back;
  t.ok(took <= INTERVAL_MS * 4, `within about an interval of the store answering (${took} ms; interval ${INTERVAL_MS} ms)`);
  t.notOk(await refused('s1'), 'the refusal ends with it');
  const calls = state.calls.length;
  await sleep(INTERVAL_MS * 3);
  t.equal(state.calls.length, calls, 'nothing pending: nothing runs');
});

t.test('a round ends at the first store failure: one store call a round, however many are pending', async (t) => {
  const { pending, state } = setUp(t);
  for (const sid of ['s1', 's2', 's3']) await pending.add(tenant, { sid });
  await sleep(INTERVAL_MS * 2.5);
  t.same(new Set(state.calls.map((c) => c.sid)), new Set(['s1']), 'only the oldest is tried while the store is away');
  state.storeDown = false;
  const calls = state.calls.length;
  await applied(pending);
  t.equal(state.calls.length, calls + 3, 'all three applied in one round once the store answered');
});

t.test('a logout pending longer than the session absolute lifetime is dropped without a try', async (t) => {
  let now = Date.now();
  const { pending, state, refused, logs } = setUp(t, { now: () => now });
  await pending.add(tenant, { sid: 's1' });
  now += 8 * HOUR;
  await sleep(INTERVAL_MS * 2.5);
  t.equal(pending.size, 0);
  t.same(state.calls, [], 'not tried');
  t.notOk(await refused('s1'), 'nor refused any longer');
  t.ok(logs.lines.some((l) => /older than the session absolute lifetime/.test(String(l.msg))), 'logged');
});

t.test('at most maxEntries are pending: the oldest makes room, logged, and is done in the journal', async (t) => {
  const journal = await LogoutJournal.open(t.testdir(), { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 2, log: captureLogger().logger });
  t.teardown(() => journal.close());
  const { pending, logs } = setUp(t, { maxEntries: 2, journal });
  for (const sid of ['s1', 's2', 's3']) await pending.add(tenant, { sid });
  t.equal(pending.size, 2);
  await pending.stop();
  await sleep(10);
  t.equal(journal.size, 2, 'the journal holds the two still pending');
  t.ok(logs.lines.some((l) => /too many pending back-channel logouts/.test(String(l.msg))));
});

t.test('from the journal: refused from the start and retried; an entry of a tenant no longer configured is dropped with a log line', async (t) => {
  const dir = t.testdir();
  const log = captureLogger().logger;
  const writer = await LogoutJournal.open(dir, { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 100, log });
  await writer.add({ tenant: 'mva', sid: 's1', sub: 'u1', at: Date.now() });
  await writer.add({ tenant: 'gone', sid: 's2', at: Date.now() });
  await writer.close();
  const journal = await LogoutJournal.open(dir, { now: Date.now, maxAgeMs: 8 * HOUR, maxEntries: 100, log });
  t.teardown(() => journal.close());
  const { pending, state, refused, logs } = setUp(t, { journal, tenantById: (id) => (id === 'mva' ? tenant : undefined) });
  t.equal(pending.size, 1);
  t.ok(await refused('s1'), 'this instance refuses the session before the store answers');
  t.match(logs.lines.find((l) => /tenant is no longer configured/.test(String(l.msg))), { tenant: 'gone', level: 'warn' });
  state.storeDown = false;
  await applied(pending);
  t.ok(state.calls.length > 0 && state.calls.every((c) => c.sid === 's1' && c.sub === 'u1'), 'the entry of the configured tenant, tried with its sid and sub');
  t.equal(journal.size, 0, 'both done in the journal');
});

t.test('stop ends the retries (shutdown); a later logout starts them again', async (t) => {
  const { pending, state } = setUp(t);
  await pending.add(tenant, { sub: 'u1' });
  await pending.stop();
  const calls = state.calls.length;
  await sleep(INTERVAL_MS * 3);
  t.equal(state.calls.length, calls, 'no round after stop');
  await pending.add(tenant, { sub: 'u2' });
  await sleep(INTERVAL_MS * 1.5);
  t.ok(state.calls.length > calls, 'tried again');
});
