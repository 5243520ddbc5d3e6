/**
 * src/tokens/revocation.ts directly: RFC 7009 revocation of a session's tokens at a real revocation endpoint on
 * 127.0.0.1, through a real IdportenClient. What it promises: the refresh token first (the long-lived one), then the
 * access token, then the RFC 8707 resource tokens; each with its token_type_hint (RFC 7009 section 2.1); best effort
 * (a failure is logged with a fingerprint, never thrown, and the rest is still revoked); in the background at most
 * 4 at once and at most 10 000 waiting.
 */
import t from 'tap';
import { fingerprint } from '../src/audit/fingerprint.js';
import { Revoker, type WarningLog } from '../src/tokens/revocation.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { sessionRecord } from './helpers/session-record.js';
import { errorAnswer, startTokenEndpoint, type Answer } from './helpers/token-endpoint.js';

function captureLog() {
  const warned: { fields: Record<string, unknown>; message: string }[] = [];
  const infos: { fields: Record<string, unknown>; message: string }[] = [];
  const log: WarningLog = {
    warn: (fields, message) => warned.push({ fields: fields as Record<string, unknown>, message }),
    info: (fields, message) => infos.push({ fields: fields as Record<string, unknown>, message }),
  };
  return { log, warned, infos };
}

const API = 'https://api.example.no/';
const OTHER = 'https://other.example.no/';

function held(tokens: Partial<SessionData['tokens']>, resourceTokens?: Record<string, string>): { hash: string; data: SessionData } {
  const data = sessionRecord({ tenant: 'mva' });
  data.tokens = { ...data.tokens, ...tokens };
  if (resourceTokens) {
    data.resourceTokens = Object.fromEntries(Object.entries(resourceTokens).map(([r, at]) => [r, { accessToken: at, accessTokenIssuedAt: 0, accessTokenExpiresAt: 1 }]));
  }
  return { hash: 'session-hash', data };
}

t.test('RFC 7009: the refresh token is revoked first, then the access token, then each resource token, each with its hint', async (t) => {
  const op = await startTokenEndpoint(t);
  const { log, warned } = captureLog();
  const outcome = await new Revoker(log).revoke(op.tenant(), held({ refreshToken: 'rt-1', accessToken: 'at-1' }, { [API]: 'api-at', [OTHER]: 'other-at' }));
  t.same(op.revocations, [
    { token: 'rt-1', hint: 'refresh_token' },
    { token: 'at-1', hint: 'access_token' },
    { token: 'api-at', hint: 'access_token' },
    { token: 'other-at', hint: 'access_token' },
  ]);
  t.strictSame(outcome, { refreshToken: true, accessToken: true, resourceTokens: true });
  t.same(warned, [], 'nothing to warn about');
});

t.test('a session without resource tokens reports none, and a token it does not hold is not sent', async (t) => {
  const op = await startTokenEndpoint(t);
  const { log } = captureLog();
  const revoker = new Revoker(log);
  const outcome = await revoker.revoke(op.tenant(), held({ refreshToken: undefined, accessToken: 'at-1' }));
  t.same(op.revocations, [{ token: 'at-1', hint: 'access_token' }], 'no refresh token: only the access token');
  t.strictSame(outcome, { refreshToken: false, accessToken: true }, 'no resourceTokens key without resource tokens');
  const empty = await revoker.revoke(op.tenant(), held({ refreshToken: 'rt-2', accessToken: 'at-2' }, {}));
  t.strictSame(empty, { refreshToken: true, accessToken: true }, 'an empty resource token map is none');
  op.revocations.length = 0;
  const none = await revoker.revoke(op.tenant(), held({ refreshToken: undefined, accessToken: '' }));
  t.strictSame(none, { refreshToken: false, accessToken: false }, 'nothing held: nothing reported as revoked');
  t.same(op.revocations, [], 'and nothing sent');
});

t.test('best effort: a revocation that fails is logged with a fingerprint, never thrown, and the other tokens are still revoked', async (t) => {
  const op = await startTokenEndpoint(t);
  op.onRevoke = ({ token }): Answer => (token === 'rt-1' || token === 'api-at' ? errorAnswer(503, 'temporarily_unavailable') : { status: 200 });
  const { log, warned } = captureLog();
  const tenant = op.tenant('tenant-a');
  const outcome = await new Revoker(log).revoke(tenant, held({ refreshToken: 'rt-1', accessToken: 'at-1' }, { [API]: 'api-at', [OTHER]: 'other-at' }));
  t.strictSame(outcome, { refreshToken: false, accessToken: true, resourceTokens: false }, 'one failed resource token makes resourceTokens false');
  t.same(op.revocations.map((r) => r.token), ['rt-1', 'at-1', 'api-at', 'other-at'], 'every token was still tried, in order');
  t.equal(warned.length, 2);
  t.same(warned[0], { fields: { tenant: 'tenant-a', session: 'session-hash', token: fingerprint('rt-1'), reason: 'revocation: provider answered 503' }, message: 'token revocation failed' });
  t.same(warned[1]!.fields.token, fingerprint('api-at'));
  t.notOk(JSON.stringify(warned).includes('rt-1'), 'the token itself is never logged');

  // The last resource token failing (not only the first) also counts.
  op.revocations.length = 0;
  op.onRevoke = ({ token }): Answer => (token === 'other-at' ? errorAnswer(503, 'temporarily_unavailable') : { status: 200 });
  const last = await new Revoker(log).revoke(tenant, held({ refreshToken: 'rt-1', accessToken: 'at-1' }, { [API]: 'api-at', [OTHER]: 'other-at' }));
  t.strictSame(last, { refreshToken: true, accessToken: true, resourceTokens: false });
});

t.test('background revocation: at most 4 at once, each logged when it finished, and settled() waits for all of them', async (t) => {
  const op = await startTokenEndpoint(t);
  const releases: (() => void)[] = [];
  let inFlight = 0;
  let most = 0;
  op.onRevoke = () =>
    new Promise<Answer>((resolve) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      releases.push(() => {
        inFlight -= 1;
        resolve({ status: 200 });
      });
    });
  const { log, infos, warned } = captureLog();
  const revoker = new Revoker(log);
  const tenant = op.tenant();
  for (let i = 0; i < 6; i += 1) revoker.inBackground(tenant, { hash: `h${i}`, data: held({ refreshToken: `rt-${i}`, accessToken: `at-${i}` }).data }, 'idle');
  let settled = false;
  const done = revoker.settled().then(() => (settled = true));
  const waitFor = async (n: number) => {
    while (releases.length < n) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  await waitFor(4);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(releases.length, 4, 'four revocations at once, the other two wait');
  // Release them one by one: each freed place goes to the next one waiting.
  let released = 0;
  while (op.revocations.length < 12 || released < op.revocations.length) {
    await waitFor(released + 1);
    t.notOk(settled, 'settled() waits while revocations are queued or running');
    releases[released]!();
    released += 1;
  }
  await done;
  t.equal(most, 4, 'never more than four at once');
  t.equal(op.revocations.length, 12, 'both tokens of six sessions');
  t.equal(infos.length, 6);
  const first = infos.find((i) => i.fields.session === 'h0')!;
  t.same(first, {
    fields: { tenant: 'mva', session: 'h0', channel: 'idle', refreshToken: fingerprint('rt-0'), accessToken: fingerprint('at-0'), revoked: { refreshToken: true, accessToken: true } },
    message: 'background revocation finished',
  });
  t.same(warned, []);
});

t.test('background revocation: at most 10 000 wait; beyond that the tokens are left to expire, with a warning', async (t) => {
  const op = await startTokenEndpoint(t);
  const releases: (() => void)[] = [];
  op.onRevoke = () => new Promise<Answer>((resolve) => releases.push(() => resolve({ status: 200 })));
  const { log, warned, infos } = captureLog();
  const revoker = new Revoker(log);
  const tenant = op.tenant();
  // Four that hold the running places, then sessions with nothing to revoke (no request each), to fill the queue.
  for (let i = 0; i < 4; i += 1) revoker.inBackground(tenant, { hash: `run${i}`, data: held({ refreshToken: undefined, accessToken: `at-${i}` }).data });
  const nothing = held({ refreshToken: undefined, accessToken: '' });
  for (let i = 0; i < 9_999; i += 1) revoker.inBackground(tenant, nothing);
  t.same(warned, [], '9 999 waiting: room for one more');
  revoker.inBackground(tenant, nothing);
  t.same(warned, [], 'the 10 000th waits too');
  revoker.inBackground(tenant, { hash: 'over', data: held({ refreshToken: 'rt-over', accessToken: 'at-over' }).data }, 'expired');
  t.same(warned, [
    {
      fields: { tenant: 'mva', session: 'over', channel: 'expired', refreshToken: fingerprint('rt-over'), accessToken: fingerprint('at-over') },
      message: 'revocation backlog full; tokens left to expire at ID-porten',
    },
  ]);
  while (releases.length < 4) await new Promise((resolve) => setTimeout(resolve, 5));
  for (const release of releases) release();
  await revoker.settled();
  t.equal(infos.length, 4 + 10_000, 'every queued one ran');
  t.notOk(op.revocations.some((r) => r.token === 'rt-over' || r.token === 'at-over'), 'the refused one was not revoked');
});
