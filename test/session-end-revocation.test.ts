// Finding: a session that ends without anyone asking (idle timeout, absolute lifetime, replaced by a new login)
// must not leave its refresh token live at ID-porten: ID-porten's own logout does not revoke tokens with API
// scopes, so the gateway revokes them itself, in the background and bounded (src/tokens/revocation.ts), and the
// outcome of that background revocation is logged with token fingerprints so a reviewer can see it happened.
// Rules: RFC 7009 section 2 (the client revokes tokens it no longer needs); OWASP ASVS 5.0 V7.3.1 / V7.3.2
// (inactivity timeout, absolute lifetime) and V7.4.1 (a terminated session allows no further use); RFC 10017,
// the BFF pattern (section 6.1): the BFF owns the tokens' whole lifecycle.
import t, { type Test } from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { fingerprint } from '../src/audit/fingerprint.js';

const user = TEST_USERS[0]!;

async function loggedIn(stack: Stack, browser = new Browser(), who = user) {
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: who.pid });
  const cookie = browser.cookie('localhost', 'bff');
  if (!cookie) throw new Error('no session cookie after login');
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('session not live');
  return { browser, session: loaded.session };
}

async function waitFor(check: () => Promise<boolean> | boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The log line the background revocation writes when it has finished, for this refresh token. */
function finishedLine(stack: Stack, refreshToken: string) {
  return stack.logs.find((l) => l.msg === 'background revocation finished' && l.refreshToken === fingerprint(refreshToken));
}

function checkRevokedInBackground(t: Test, stack: Stack, refreshToken: string, accessToken: string, channel: string) {
  const line = finishedLine(stack, refreshToken)!;
  t.ok(line, `the background revocation's outcome is logged (${channel})`);
  t.equal(line.channel, channel);
  t.equal(line.accessToken, fingerprint(accessToken), 'access token by fingerprint');
  t.same(line.revoked, { refreshToken: true, accessToken: true }, 'both revoked');
  t.equal(line.tenant, 'test');
  t.type(line.session, 'string');
  t.notOk(stack.logText().includes(refreshToken), 'no raw refresh token in any log line');
  t.notOk(stack.logText().includes(accessToken), 'no raw access token in any log line');
  const audit = stack.audit('logout').filter((l) => l.channel === channel);
  t.equal(audit.length, 1, `one logout audit line with channel ${channel}`);
  t.equal(audit[0]!.revoked, 'background');
}

t.test('finding: an idle-timed-out session leaves no live refresh token at ID-porten', async (t) => {
  const stack = await startStack(t, { session: { idleTimeout: '2s' } });
  const { browser, session } = await loggedIn(stack);
  const { refreshToken, accessToken } = session.data.tokens;
  t.equal(await stack.op.isRefreshTokenActive(refreshToken!), true, 'live after login');
  await sleep(2300);
  const res = await browser.fetch(`${stack.publicUrl}/auth/session`);
  t.equal(res.status, 401);
  t.ok(await waitFor(async () => !(await stack.op.isRefreshTokenActive(refreshToken!))), 'revoked at ID-porten soon after the 401');
  t.ok(await waitFor(() => finishedLine(stack, refreshToken!) !== undefined), 'the outcome is logged');
  checkRevokedInBackground(t, stack, refreshToken!, accessToken, 'idle');
});

t.test('finding: a session past its absolute lifetime leaves no live refresh token at ID-porten', async (t) => {
  const stack = await startStack(t, { session: { absoluteLifetime: '3s', idleTimeout: '3s' } });
  const { browser, session } = await loggedIn(stack);
  const { refreshToken, accessToken } = session.data.tokens;
  // Kept busy, so it is the absolute lifetime (not idleness) that ends it.
  for (let i = 0; i < 3; i += 1) {
    await sleep(900);
    t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, `still live after ${i + 1} s`);
  }
  await sleep(600);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401);
  t.ok(await waitFor(async () => !(await stack.op.isRefreshTokenActive(refreshToken!))), 'revoked at ID-porten soon after the 401');
  t.ok(await waitFor(() => finishedLine(stack, refreshToken!) !== undefined), 'the outcome is logged');
  checkRevokedInBackground(t, stack, refreshToken!, accessToken, 'expired');
});

t.test('finding: a session replaced by another user\'s login in the same browser has its refresh token revoked', async (t) => {
  const stack = await startStack(t);
  const { browser, session: first } = await loggedIn(stack);
  // The provider's own login session ends, so the next login is a different user's, under its own authorization.
  browser.forgetCookies(stack.op.issuer);
  const { session: second } = await loggedIn(stack, browser, TEST_USERS[1]!);
  t.not(first.hash, second.hash, 'a new session');
  t.not(first.data.user.sub, second.data.user.sub, 'another user');
  t.ok(await waitFor(async () => !(await stack.op.isRefreshTokenActive(first.data.tokens.refreshToken!))), 'the replaced session\'s refresh token is revoked');
  t.ok(await waitFor(() => finishedLine(stack, first.data.tokens.refreshToken!) !== undefined), 'the outcome is logged');
  checkRevokedInBackground(t, stack, first.data.tokens.refreshToken!, first.data.tokens.accessToken, 'replaced');
  t.equal(await stack.op.isRefreshTokenActive(second.data.tokens.refreshToken!), true, 'the new user\'s refresh token is live');
});

// Finding: revoking a refresh token at a provider that revokes the whole grant with it (oidc-provider does, and so
// does the look-alike; Connect2id, under ID-porten, revokes the authorisation) also killed the refresh token of the
// *new* session when the same user logged in again over the provider's SSO session (a step-up login, a second tab):
// one grant issued both. The lifecycle now destroys the same user's replaced session without revoking its tokens.
t.test('finding: a login that replaces the same user\'s session over the provider\'s SSO session keeps its own refresh token live', async (t) => {
  const stack = await startStack(t);
  const { browser, session: first } = await loggedIn(stack);
  const { session: second } = await loggedIn(stack, browser);
  await stack.gateway.core.lifecycle.settled();
  t.equal((await stack.gateway.core.lifecycle.sessions.loadById(first.id)).state, 'none', 'the replaced session is destroyed');
  t.equal(await stack.op.isRefreshTokenActive(second.data.tokens.refreshToken!), true, 'the new session\'s refresh token is live');
  const refreshed = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { 'x-csrf': '1' } });
  t.equal(refreshed.status, 200, 'the new session can refresh');
  const logout = stack.audit('logout').find((l) => l.channel === 'replaced');
  t.equal(logout?.revoked, 'not revoked', 'the audit line says the tokens were left to expire');
});

// A session ended from a copy read before another instance refreshed it (a kept Redis read, or a read a moment
// before the refresh rotated the refresh token) must revoke the tokens the store holds now, not the copy's: at a
// provider that revokes by token, the rotated-in refresh token would live on with no session holding it (RFC 7009
// section 2). The look-alike revokes the whole grant either way, so here the audit line shows the difference.
t.test('an ending revokes and audits the tokens the store holds now, not those of an older copy of the session', async (t) => {
  const stack = await startStack(t);
  const { browser, session: before } = await loggedIn(stack);
  const refreshed = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: { 'x-csrf': '1' } });
  t.equal(refreshed.status, 200);
  const now = await stack.gateway.core.lifecycle.sessions.loadById(before.id);
  if (now.state !== 'live') throw new Error('no live session after the refresh');
  const latest = now.session.data.tokens;
  t.not(latest.refreshToken, before.data.tokens.refreshToken, 'the refresh rotated the refresh token');
  t.equal(await stack.op.isRefreshTokenActive(latest.refreshToken!), true, 'the rotated-in refresh token is live');

  await stack.gateway.core.lifecycle.end(before, stack.gateway.core.tenants.byId('test')!, 'rp');
  t.equal(await stack.op.isRefreshTokenActive(latest.refreshToken!), false, 'the refresh token the store held is revoked');
  const audit = stack.audit('logout').find((l) => l.channel === 'rp');
  t.equal(audit?.refreshToken, fingerprint(latest.refreshToken), 'the audit line names it');
  t.equal(audit?.accessToken, fingerprint(latest.accessToken));
  t.equal((await stack.gateway.core.lifecycle.sessions.loadById(before.id)).state, 'none', 'and the session is gone');
});
