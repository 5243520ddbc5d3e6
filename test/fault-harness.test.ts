/**
 * The fault-injection suite's own parts, on made-up records: the invariants blame what they must and excuse only
 * an instance killed between the provider's answer and the store write; the seeded randomness replays; a loopback
 * connection is traced to the process holding its caller's end.
 */
import { createServer, connect, type AddressInfo } from 'node:net';
import t from 'tap';
import type { TokenGrantRecord } from '../demo/idporten-op.js';
import { checkRun, type RunData } from './faults/invariants.js';
import { processOfPeer } from './faults/peer-process.js';
import { seededRandom } from './faults/random.js';
import type { CallRecord, SessionRecord } from './faults/records.js';

const GATEWAY_A = 101;
const GATEWAY_B = 102;

/** Session s01.1 (grant g1) and s02.1 (grant g2); s01.1's token rt1 was rotated to rt2 by A at t=1000. */
function run(overrides: { grants?: TokenGrantRecord[]; calls?: CallRecord[]; sessions?: SessionRecord[]; killed?: Record<number, number> } = {}): RunData {
  const connections: Record<number, number> = { 1: GATEWAY_A, 2: GATEWAY_B };
  return {
    startedAt: 0,
    sessions: overrides.sessions ?? [
      { session: 's01.1', grantId: 'g1', loggedInAt: 0 },
      { session: 's02.1', grantId: 'g2', loggedInAt: 0 },
    ],
    grants: overrides.grants ?? [
      { grantType: 'authorization_code', at: 0, ok: true, grantId: 'g1', issued: 'rt1', connection: 3 },
      { grantType: 'refresh_token', at: 1000, ok: true, grantId: 'g1', presented: 'rt1', issued: 'rt2', connection: 1 },
    ],
    calls: overrides.calls ?? [],
    accessTokenGrants: new Map([['jti-1', 'g1'], ['jti-2', 'g2']]),
    pidOf: (connection) => connections[connection],
    killedAt: (pid) => overrides.killed?.[pid],
  };
}

const presentedAgain = (at: number, connection = 2): TokenGrantRecord => ({
  grantType: 'refresh_token', at, ok: false, grantId: 'g1', presented: 'rt1', error: 'invalid_grant: refresh token already used', connection,
});
const ended = (at: number): SessionRecord[] => [
  { session: 's01.1', grantId: 'g1', loggedInAt: 0, endedAt: at, endedWith: 'session_expired' },
  { session: 's02.1', grantId: 'g2', loggedInAt: 0 },
];
const call = (session: string, at: number, answer: Partial<CallRecord>): CallRecord => ({ session, instance: GATEWAY_B, sentAt: at, doneAt: at + 5, ...answer });

t.test('a token presented again after its presenter was killed, its rotated token never used: loss and double presentation excused', async (t) => {
  const base = run();
  const verdict = checkRun(run({ grants: [...base.grants, presentedAgain(5000)], sessions: ended(5001), killed: { [GATEWAY_A]: 1002 } }));
  t.same(verdict.violations, []);
  t.same(verdict.excused.map((e) => [e.what, e.session, e.token]), [['presented twice', 's01.1', 'rt1'], ['session lost', 's01.1', 'rt1']]);
  t.match(verdict.excused[0]!.detail, /instance 101 presented it at t\+1\.000s and was killed 2 ms after the provider decided/);
  t.match(verdict.figures, { lost: 1, lostUnavoidable: 1, presentedTwice: 1, presentedTwiceUnavoidable: 1 });
});

t.test('the same, but its presenter still alive when it was presented again: both are violations', async (t) => {
  const base = run();
  const verdict = checkRun(run({ grants: [...base.grants, presentedAgain(5000)], sessions: ended(5001), killed: { [GATEWAY_A]: 6000 } }));
  t.same(verdict.violations.map((v) => [v.invariant, v.session, v.token]), [['presented twice', 's01.1', 'rt1'], ['session lost', 's01.1', 'rt1']]);
  t.match(verdict.violations[0]!.detail, /instance 101, which presented it first, was alive/);
  t.same(verdict.excused, []);
});

t.test('the same, but the rotated token was presented too (so the store had it): a violation', async (t) => {
  const base = run();
  const rotatedUsed: TokenGrantRecord = { grantType: 'refresh_token', at: 3000, ok: true, grantId: 'g1', presented: 'rt2', issued: 'rt3', connection: 2 };
  const verdict = checkRun(run({ grants: [...base.grants, rotatedUsed, presentedAgain(5000)], killed: { [GATEWAY_A]: 1002 } }));
  t.same(verdict.violations.map((v) => v.invariant), ['presented twice']);
  t.match(verdict.violations[0]!.detail, /the token it was rotated to \(rt2\) was presented too/);
});

t.test('a first presentation whose process cannot be told is not excused', async (t) => {
  const base = run();
  const grants = base.grants.map((g) => (g.connection === 1 ? { ...g, connection: 9 } : g));
  const verdict = checkRun(run({ grants: [...grants, presentedAgain(5000)], killed: { [GATEWAY_A]: 1002 } }));
  t.match(verdict.violations[0]?.detail, /could not be told/);
  t.equal(verdict.figures.untraced, 1);
});

t.test('a session ended without any token presented twice: its record was lost', async (t) => {
  const verdict = checkRun(run({ sessions: ended(4000) }));
  t.same(verdict.violations.map((v) => [v.invariant, v.session]), [['session lost', 's01.1']]);
  t.match(verdict.violations[0]!.detail, /no refresh token of its grant was presented twice/);
});

t.test('answers: 503 needs Retry-After, other 5xx and stray statuses are violations, 200s must carry the session\'s own bearer', async (t) => {
  const verdict = checkRun(run({
    calls: [
      call('s01.1', 100, { status: 200, jti: 'jti-1' }),
      call('s01.1', 200, { status: 503, code: 'store_unavailable', retryAfter: '1' }),
      call('s01.1', 300, { status: 503, code: 'store_unavailable' }),
      call('s01.1', 400, { status: 502, code: 'upstream_unavailable' }),
      call('s01.1', 500, { status: 200, jti: 'jti-2' }),
      call('s02.1', 600, { status: 200, jti: 'jti-unknown' }),
      call('s02.1', 700, { status: 401, upstreamError: 'invalid_token' }),
      call('s02.1', 800, { status: 403, code: 'csrf_failed' }),
      call('s02.1', 900, {}),
    ],
  }));
  t.same(verdict.violations.map((v) => [v.invariant, v.session]), [
    ['5xx', 's01.1'],
    ['5xx', 's01.1'],
    ['bearer', 's01.1'],
    ['bearer', 's02.1'],
    ['bearer', 's02.1'],
    ['unexpected answer', 's02.1'],
  ]);
  t.match(verdict.violations[2]!.detail, /the bearer of s02\.1/);
  t.match(verdict.figures, { requests: 9, with503RetryAfter: 1, without503RetryAfter: 1, other5xx: 1, noAnswer: 1 });
});

t.test('the longest unusable time runs from a session\'s first failing answer to its next 200', async (t) => {
  const verdict = checkRun(run({
    calls: [
      call('s01.1', 0, { status: 200, jti: 'jti-1' }),
      call('s01.1', 1000, { status: 503, code: 'store_unavailable', retryAfter: '1' }),
      call('s01.1', 1500, {}),
      call('s01.1', 2000, { status: 503, code: 'store_unavailable', retryAfter: '1' }),
      call('s01.1', 3000, { status: 200, jti: 'jti-1' }),
      call('s02.1', 1000, { status: 503, code: 'store_unavailable', retryAfter: '1' }),
      call('s02.1', 1200, { status: 200, jti: 'jti-2' }),
    ],
  }));
  t.equal(verdict.figures.longestUnusableMs, 2000);
  t.same(verdict.figures.longestUnusable, { session: 's01.1', from: 1005, to: 3005 });
});

t.test('seeded randomness replays, and its streams do not depend on one another', async (t) => {
  const draw = (seed: number, label: string) => Array.from({ length: 5 }, ((r) => () => r.next())(seededRandom(seed).stream(label)));
  t.same(draw(7, 'a'), draw(7, 'a'), 'the same seed and label, the same draws');
  t.not(draw(7, 'a')[0], draw(7, 'b')[0], 'another label, another stream');
  t.not(draw(7, 'a')[0], draw(8, 'a')[0], 'another seed, another stream');
  const r = seededRandom(1);
  for (let i = 0; i < 1000; i += 1) {
    const n = r.int(2, 3);
    if (n < 2 || n > 3) t.fail(`int(2, 3) gave ${n}`);
  }
});

t.test('a loopback connection is traced to the process holding its caller\'s end', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const serverPort = (server.address() as AddressInfo).port;
  const accepted = new Promise<number>((resolve) => server.once('connection', (s) => resolve(s.remotePort!)));
  const socket = connect(serverPort, '127.0.0.1');
  t.teardown(() => socket.destroy());
  const callerPort = await accepted;
  t.equal(processOfPeer(callerPort, serverPort, [process.pid]), process.pid);
  t.equal(processOfPeer(callerPort, serverPort, [process.pid + 1_000_000]), undefined, 'not among the candidates');
  t.equal(processOfPeer(serverPort, callerPort, []), undefined, 'nobody');
});
