import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { describeRun, spawnCli } from './helpers/cli.js';
import { startStack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { traceLines, type LogLine } from '../src/cli/audit-trace.js';
import { parseCommand } from '../src/cli/args.js';

const api = { 'x-csrf': '1' };
const cli = (args: string[], stdin?: string) => spawnCli(args, stdin === undefined ? {} : { stdin }).done;

t.test('audit trace follows one session from login through refresh and exchange to logout, in a real log', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const alice = new Browser();
  const bob = new Browser();
  await loginAtLookalike(alice, `${stack.publicUrl}/auth/login?returnTo=/`, { pid: TEST_USERS[0]!.pid });
  await loginAtLookalike(bob, `${stack.publicUrl}/auth/login?returnTo=/`, { pid: TEST_USERS[1]!.pid });
  t.equal((await alice.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api })).status, 200, 'alice refreshes');
  await alice.fetch(`${stack.publicUrl}/mva/innsending/instances`, { method: 'POST', headers: api, body: '' });
  await bob.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api });
  await alice.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { ...api, accept: 'application/json' } });
  await bob.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { ...api, accept: 'application/json' } });

  const [aliceLogin, bobLogin] = stack.audit('login.success');
  const aliceRefresh = stack.audit('token.refresh').find((l) => l.session === aliceLogin!.session)!;
  const exchange = stack.audit('token.exchange')[0]!;
  t.ok(aliceLogin && bobLogin && aliceRefresh && exchange, 'the log has two sessions, a refresh and an exchange');
  const dir = mkdtempSync(join(tmpdir(), 'bff-trace-'));
  const file = join(dir, 'gateway.log');
  // A log as an operator has it: other process lines and a stray non-JSON line mixed in.
  writeFileSync(file, `idporten-bff starting\n${stack.logText()}`);

  // By the access token issued at login: the whole session, and the tokens that replaced it.
  const byToken = await cli(['audit', 'trace', String(aliceLogin!.accessToken), file]);
  t.equal(byToken.code, 0, `found (${describeRun(byToken)})`);
  const events = byToken.stdout.split('\n').filter((l) => /^\d{4}-/.test(l)).map((l) => l.split(/\s+/)[1]);
  for (const event of ['login.success', 'token.refresh', 'token.exchange', 'proxy', 'logout']) t.ok(events.includes(event), `the timeline has ${event}`);
  t.ok(events.indexOf('login.success') < events.indexOf('token.refresh') && events.indexOf('token.refresh') < events.lastIndexOf('logout'), 'in time order');
  t.notOk(byToken.stdout.includes(String(bobLogin!.session)), 'nothing of the other session');
  t.match(byToken.stdout, `# sessions: ${String(aliceLogin!.session)}`);
  t.match(byToken.stdout, `${String(aliceLogin!.accessToken)} → ${String(aliceRefresh.accessToken)}  (refresh (access token))`, 'the refresh link is shown');
  t.match(byToken.stdout, `${String(exchange.accessToken)} → ${String(exchange.altinnToken)}  (altinn exchange)`, 'the exchange link is shown');
  t.match(byToken.stdout, /1 input lines were not JSON/);

  // By session hash, from stdin, as JSON lines: the same session, nothing else.
  const bySession = await cli(['audit', 'trace', String(bobLogin!.session), '--json'], stack.logText());
  t.equal(bySession.code, 0, `found, from stdin (${describeRun(bySession)})`);
  const lines = bySession.stdout.trim().split('\n').map((l) => JSON.parse(l) as LogLine);
  t.ok(lines.length >= 3, 'login, refresh and logout of that session');
  t.ok(lines.every((l) => l.session === bobLogin!.session), 'every line belongs to the session');
  t.same(lines.filter((l) => l.audit).map((l) => l.event), stack.audit().filter((l) => l.session === bobLogin!.session).map((l) => l.event), 'exactly the audit events of that session');

  // By the Altinn token's fingerprint: it leads to its session too.
  const byAltinn = await cli(['audit', 'trace', String(exchange.altinnToken), file]);
  t.match(byAltinn.stdout, /login\.success/);

  const none = await cli(['audit', 'trace', 'NoSuChVaLuE0', file]);
  t.equal(none.code, 1, `nothing matched: exit 1 (${describeRun(none)})`);
  t.match(none.stderr, /nothing in the log mentions NoSuChVaLuE0/);
  const missing = await cli(['audit', 'trace', 'x', join(dir, 'missing.log')]);
  t.equal(missing.code, 2, `unreadable file: exit 2 (${describeRun(missing)})`);
  t.match(missing.stderr, /cannot read .*missing\.log: ENOENT/);
});

t.test('links run forward: a refreshed token leads to its session, not to another session\'s tokens', async (t) => {
  const line = (l: LogLine) => ({ line: l, raw: JSON.stringify(l) });
  const input = [
    line({ time: '2026-01-01T10:00:00Z', audit: true, event: 'login.success', session: 'S1', accessToken: 'A1', refreshToken: 'R1' }),
    line({ time: '2026-01-01T10:00:01Z', audit: true, event: 'login.success', session: 'S2', accessToken: 'B1', refreshToken: 'Q1' }),
    line({ time: '2026-01-01T10:02:00Z', audit: true, event: 'token.refresh', session: 'S1', oldAccessToken: 'A1', accessToken: 'A2', oldRefreshToken: 'R1', refreshToken: 'R2' }),
    line({ time: '2026-01-01T10:03:00Z', audit: true, event: 'token.exchange', session: 'S1', accessToken: 'A2', altinnToken: 'T1' }),
    line({ time: '2026-01-01T10:04:00Z', level: 'warn', msg: 'token revocation failed', token: 'R2' }),
    line({ time: '2026-01-01T10:05:00Z', audit: true, event: 'login.success', session: 'S3', replacedSession: 'S1', accessToken: 'C1' }),
    line({ time: '2026-01-01T10:06:00Z', audit: true, event: 'logout', session: 'S3', channel: 'rp' }),
  ];
  const fromA1 = traceLines('A1', input);
  t.same(fromA1.lines.map((l) => l.event ?? l.msg), ['login.success', 'token.refresh', 'token.exchange', 'token revocation failed', 'login.success', 'logout'], 'session S1, the replaced tokens, and the login that replaced the session');
  t.same(fromA1.sessions, ['S1', 'S3']);
  t.same(fromA1.links.map(([from, to]) => `${from}→${to}`), ['A1→A2', 'R1→R2', 'A2→T1', 'S1→S3']);
  const fromS3 = traceLines('S3', input);
  t.same(fromS3.lines.map((l) => l.session), ['S3', 'S3'], 'a later session does not pull in the one it replaced');
  t.same(traceLines('B1', input).sessions, ['S2']);
});

// Fingerprints and session hashes are base64url (RFC 4648 §5): '-' is in the alphabet, so one value in 64
// begins with it, and one in 4,096 with '--'. Such a value must be traced, not refused as an option.
t.test('a value that begins with a dash is a value: only the known options and what reads as --word are options', async (t) => {
  const trace = (...args: string[]) => parseCommand(['audit', 'trace', ...args]);
  t.same(trace('-6R895lWZJr8'), { kind: 'audit-trace', value: '-6R895lWZJr8', file: undefined, json: false });
  t.same(trace('--json', '-6R895lWZJr8', 'gw.log'), { kind: 'audit-trace', value: '-6R895lWZJr8', file: 'gw.log', json: true });
  t.same(trace('--Zq3_x8Kp0aBc'), { kind: 'audit-trace', value: '--Zq3_x8Kp0aBc', file: undefined, json: false }, 'two dashes and base64url');
  t.same(trace('--', '--json', '-'), { kind: 'audit-trace', value: '--json', file: undefined, json: false }, 'after --, even an option name is the value');
  t.same(trace('--', '-h'), { kind: 'audit-trace', value: '-h', file: undefined, json: false });
  t.same(trace('x', '--help'), { kind: 'audit-help' });
  const typo = trace('--jsno', 'x');
  t.equal(typo.kind, 'usage-error');
  t.match(typo.kind === 'usage-error' && typo.message, /unknown option "--jsno".*audit trace -- VALUE/, 'a mistyped option is refused, with the way to pass a dash value');
  t.match(trace('--output=x', 'y'), { kind: 'usage-error' });
  t.match(trace('--'), { kind: 'usage-error', message: /needs a fingerprint/ });
  t.match(trace('a', 'b', 'c'), { kind: 'usage-error', message: /unexpected argument "c"/ });

  const dir = mkdtempSync(join(tmpdir(), 'bff-trace-dash-'));
  const file = join(dir, 'gateway.log');
  const lines = [
    { time: '2026-01-01T10:00:00Z', audit: true, event: 'login.success', session: '-Hk3v2Xo9qLz', accessToken: '-6R895lWZJr8' },
    { time: '2026-01-01T10:01:00Z', audit: true, event: 'proxy', session: '-Hk3v2Xo9qLz', status: 200 },
    { time: '2026-01-01T10:02:00Z', audit: true, event: 'login.success', session: 'other0000000', accessToken: 'zzzzzzzzzzzz' },
  ];
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const run = await cli(['audit', 'trace', '-6R895lWZJr8', file]);
  t.equal(run.code, 0, `a dash-leading fingerprint is traced (${describeRun(run)})`);
  t.match(run.stdout, '# sessions: -Hk3v2Xo9qLz');
  t.match(run.stdout, /proxy/, 'the session it leads to is followed');
  t.notMatch(run.stdout, 'other0000000');
});
