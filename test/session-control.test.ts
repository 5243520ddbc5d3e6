/**
 * A user's control over their own sessions (OWASP ASVS 5.0 7.4.5: the user can end one or all of their
 * active sessions; 7.5.2: the user can see their active sessions and end any of them), and an operator's
 * control over a user's sessions on the internal listener. Real gateway, real ID-porten look-alike.
 */
import t, { type Test } from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type Stack, type StackOptions } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { freePort } from '../demo/free-port.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { userAgentSummary } from '../src/http/user-agent.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { maskConfig } from '../src/cli/mask-config.js';
import type { Tenant } from '../src/tenant/tenant.js';
import type { Session } from '../src/tokens/session-data.js';

const ADMIN_CREDENTIAL = 'an-admin-credential-that-is-long-enough-0123456789';
const csrf = { 'x-csrf': '1' };

interface Entry {
  handle: string;
  createdAt: string;
  lastSeenAt: string;
  userAgent: string;
  current: boolean;
}

async function loggedIn(stack: Stack, pid: string = TEST_USERS[0]!.pid): Promise<{ browser: Browser; cookie: string; session: Session }> {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid });
  const cookie = browser.cookie('localhost', 'bff')?.value;
  if (!cookie) throw new Error('no session cookie after login');
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie);
  if (loaded.state !== 'live') throw new Error('session not live');
  return { browser, cookie, session: loaded.session };
}

async function list(stack: Stack, browser: Browser): Promise<Entry[]> {
  const res = await browser.fetch(`${stack.publicUrl}/auth/sessions`);
  if (res.status !== 200) throw new Error(`GET /auth/sessions answered ${res.status}`);
  return JSON.parse(res.body) as Entry[];
}

const isLive = async (stack: Stack, cookie: string) => (await stack.gateway.core.lifecycle.sessions.load(cookie)).state === 'live';
const logoutChannels = (stack: Stack) => stack.audit('logout').map((l) => l.channel);

async function withInternalListener(t: Test, opts: StackOptions = {}, admin: boolean = true) {
  const metricsPort = await freePort();
  const stack = await startStack(t, { ...opts, server: { metricsPort, ...(admin ? { admin: { credential: ADMIN_CREDENTIAL } } : {}) } });
  const internal = await startMetricsServer(stack.gateway.core, '127.0.0.1', metricsPort);
  t.teardown(() => internal.close());
  return { stack, internal: `http://127.0.0.1:${metricsPort}` };
}

t.test('GET /auth/sessions: two browsers of one user see each other, each marked current once, with no id or token (ASVS 7.5.2)', async (t) => {
  const stack = await startStack(t);
  const a = await loggedIn(stack);
  const b = await loggedIn(stack);

  const res = await a.browser.fetch(`${stack.publicUrl}/auth/sessions`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.match(res.headers.get('content-type'), /^application\/json/);
  const fromA = JSON.parse(res.body) as Entry[];
  const fromB = await list(stack, b.browser);
  t.equal(fromA.length, 2, 'both sessions are listed');
  t.same(fromA.map((e) => e.handle).sort(), fromB.map((e) => e.handle).sort(), 'both browsers see the same two sessions');
  t.equal(fromA.filter((e) => e.current).length, 1, 'exactly one is current for A');
  t.equal(fromB.filter((e) => e.current).length, 1, 'exactly one is current for B');
  t.not(fromA.find((e) => e.current)!.handle, fromB.find((e) => e.current)!.handle, 'each browser\'s own session is its current one');
  for (const entry of fromA) {
    t.same(Object.keys(entry).sort(), ['createdAt', 'current', 'handle', 'lastSeenAt', 'userAgent']);
    t.match(entry.handle, /^[A-Za-z0-9_-]{22}$/, 'a handle is not shaped like a 43-character cookie value');
    t.ok(Date.parse(entry.createdAt) <= Date.parse(entry.lastSeenAt), 'ISO times, last seen after creation');
    t.type(entry.userAgent, 'string');
  }
  for (const secret of [a.cookie, b.cookie, a.session.id, b.session.id, a.session.hash, b.session.hash, a.session.data.tokens.refreshToken!, a.session.data.tokens.accessToken]) {
    t.notOk(res.body.includes(secret), 'no cookie value, store key, log hash or token in the list');
  }

  const handleAsCookie = await stack.gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host: new URL(stack.publicUrl).host, cookie: `bff=${fromA[0]!.handle}` } });
  t.equal(handleAsCookie.statusCode, 401, 'a handle is no cookie');
});

t.test('GET /auth/sessions without a live session is 401', async (t) => {
  const stack = await startStack(t);
  const res = await new Browser().fetch(`${stack.publicUrl}/auth/sessions`);
  t.equal(res.status, 401);
  t.equal(JSON.parse(res.body).code, 'login_required');
});

t.test('DELETE /auth/sessions/{handle}: one browser ends the other, revoking its tokens; the other is then 401 (ASVS 7.4.5, 7.5.2)', async (t) => {
  const stack = await startStack(t);
  const a = await loggedIn(stack);
  const b = await loggedIn(stack);
  const other = (await list(stack, b.browser)).find((e) => !e.current)!;
  t.equal(await stack.op.isRefreshTokenActive(a.session.data.tokens.refreshToken!), true);

  const res = await b.browser.fetch(`${stack.publicUrl}/auth/sessions/${other.handle}`, { method: 'DELETE', headers: csrf });
  t.equal(res.status, 204);
  t.equal(res.body, '');
  t.notOk(res.headers.getSetCookie().some((c) => c.startsWith('bff=')), 'ending another session leaves this browser\'s cookie alone');
  t.equal(await stack.op.isRefreshTokenActive(a.session.data.tokens.refreshToken!), false, 'the ended session\'s refresh token is revoked at ID-porten');
  t.equal(await stack.op.isRefreshTokenActive(b.session.data.tokens.refreshToken!), true, 'the remaining session keeps its refresh token');
  t.equal((await a.browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'the ended browser\'s next request is 401');
  t.same((await list(stack, b.browser)).map((e) => e.current), [true], 'only B\'s own session is left');
  const logout = stack.audit('logout');
  t.equal(logout.length, 1);
  t.match(logout[0], { channel: 'user', session: a.session.hash, sub: a.session.data.user.sub, revoked: { refreshToken: true } });

  const again = await b.browser.fetch(`${stack.publicUrl}/auth/sessions/${other.handle}`, { method: 'DELETE', headers: csrf });
  t.equal(again.status, 404, 'an ended session\'s handle is unknown');
  t.equal(JSON.parse(again.body).code, 'route_not_found');
});

t.test('DELETE /auth/sessions/{handle} of the current session ends it and clears the cookie', async (t) => {
  const stack = await startStack(t);
  const a = await loggedIn(stack);
  const own = (await list(stack, a.browser)).find((e) => e.current)!;
  const res = await a.browser.fetch(`${stack.publicUrl}/auth/sessions/${own.handle}`, { method: 'DELETE', headers: csrf });
  t.equal(res.status, 204);
  t.ok(res.headers.getSetCookie().some((c) => /^bff=;/.test(c)), 'the session cookie is cleared');
  t.notOk(a.browser.cookie('localhost', 'bff'), 'the browser holds no session cookie');
  t.notOk(await isLive(stack, a.cookie));
  t.equal(await stack.op.isRefreshTokenActive(a.session.data.tokens.refreshToken!), false);
});

t.test('POST /auth/logout/all ends every session of the user and revokes every refresh token (ASVS 7.4.5)', async (t) => {
  const stack = await startStack(t);
  const a = await loggedIn(stack);
  const b = await loggedIn(stack);
  const stranger = await loggedIn(stack, TEST_USERS[1]!.pid);

  const res = await a.browser.fetch(`${stack.publicUrl}/auth/logout/all`, { method: 'POST', headers: { ...csrf, accept: 'application/json' } });
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.same(JSON.parse(res.body), { ended: 2 });
  t.ok(res.headers.getSetCookie().some((c) => /^bff=;/.test(c)), 'the session cookie is cleared');
  for (const s of [a, b]) {
    t.notOk(await isLive(stack, s.cookie), 'the session is gone');
    t.equal(await stack.op.isRefreshTokenActive(s.session.data.tokens.refreshToken!), false, 'its refresh token is revoked');
  }
  t.equal((await b.browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'the other browser is logged out too');
  t.same(logoutChannels(stack), ['all', 'all']);
  t.ok(await isLive(stack, stranger.cookie), 'another user\'s session is untouched');
  t.equal(await stack.op.isRefreshTokenActive(stranger.session.data.tokens.refreshToken!), true);

  const anonymous = await new Browser().fetch(`${stack.publicUrl}/auth/logout/all`, { method: 'POST', headers: csrf });
  t.equal(anonymous.status, 401, 'without a session there is no user to log out');
});

t.test('another user\'s or another tenant\'s sessions can never be listed or ended', async (t) => {
  const stack = await startStack(t);
  const alice = await loggedIn(stack, TEST_USERS[0]!.pid);
  const bob = await loggedIn(stack, TEST_USERS[1]!.pid);
  t.not(alice.session.data.user.sub, bob.session.data.user.sub);

  const bobsList = await list(stack, bob.browser);
  t.equal(bobsList.length, 1, 'Bob sees only his own session');
  t.ok(bobsList[0]!.current);
  const aliceHandle = (await list(stack, alice.browser))[0]!.handle;
  t.not(bobsList[0]!.handle, aliceHandle);

  const res = await bob.browser.fetch(`${stack.publicUrl}/auth/sessions/${aliceHandle}`, { method: 'DELETE', headers: csrf });
  t.equal(res.status, 404, 'Alice\'s handle used by Bob');
  const unknown = await bob.browser.fetch(`${stack.publicUrl}/auth/sessions/${'A'.repeat(22)}`, { method: 'DELETE', headers: csrf });
  t.equal(unknown.status, 404, 'a handle that never existed');
  // Each answer has its own traceId; everything else must be the same.
  const withoutTrace = (body: string) => ({ ...JSON.parse(body), traceId: undefined });
  t.same(withoutTrace(res.body), withoutTrace(unknown.body), 'the same answer: nothing says the handle exists elsewhere');
  const malformed = await bob.browser.fetch(`${stack.publicUrl}/auth/sessions/${encodeURIComponent(alice.cookie)}`, { method: 'DELETE', headers: csrf });
  t.equal(malformed.status, 404, 'a cookie value is no handle either');
  t.ok(await isLive(stack, alice.cookie), 'Alice\'s session survives');
  t.equal(await stack.op.isRefreshTokenActive(alice.session.data.tokens.refreshToken!), true);
  t.same(stack.audit('logout'), [], 'nothing was ended');

  // The same subject in another tenant: the lifecycle looks sessions up by tenant and subject together.
  const { lifecycle } = stack.gateway.core;
  const elsewhere = { id: 'other-tenant' } as Tenant;
  t.same(await lifecycle.listSessions(elsewhere, alice.session.data.user.sub), [], 'nothing listed under another tenant');
  t.equal(await lifecycle.endByHandle(elsewhere, alice.session.data.user.sub, aliceHandle, 'user'), undefined, 'nothing ended under another tenant');
  t.equal(await lifecycle.endAll(elsewhere, alice.session.data.user.sub, 'all'), 0);
  t.ok(await isLive(stack, alice.cookie));
});

t.test('CSRF: DELETE /auth/sessions/{handle} and POST /auth/logout/all without X-CSRF are 403 and end nothing', async (t) => {
  const stack = await startStack(t);
  const a = await loggedIn(stack);
  const b = await loggedIn(stack);
  const other = (await list(stack, a.browser)).find((e) => !e.current)!;

  const del = await a.browser.fetch(`${stack.publicUrl}/auth/sessions/${other.handle}`, { method: 'DELETE' });
  t.equal(del.status, 403);
  t.equal(JSON.parse(del.body).code, 'csrf_failed');
  const all = await a.browser.fetch(`${stack.publicUrl}/auth/logout/all`, { method: 'POST' });
  t.equal(all.status, 403, 'a same-origin request without X-CSRF (a plain form) is refused too');
  const crossOrigin = await a.browser.fetch(`${stack.publicUrl}/auth/logout/all`, { method: 'POST', headers: csrf, origin: 'https://attacker.example' });
  t.equal(crossOrigin.status, 403, 'a foreign Origin is refused even with X-CSRF');

  for (const s of [a, b]) {
    t.ok(await isLive(stack, s.cookie), 'both sessions survive');
    t.equal(await stack.op.isRefreshTokenActive(s.session.data.tokens.refreshToken!), true);
  }
  t.equal(stack.audit('csrf.reject').length, 3);
  t.same(stack.audit('logout'), []);
});

t.test('admin: the internal listener refuses a missing or wrong credential', async (t) => {
  const { stack, internal } = await withInternalListener(t);
  const a = await loggedIn(stack);
  const url = `${internal}/admin/tenants/test/users/${encodeURIComponent(a.session.data.user.sub)}/sessions`;
  const refusals: Array<[string, Record<string, string>, string]> = [
    ['GET', {}, 'no Authorization'],
    ['GET', { authorization: `Bearer ${ADMIN_CREDENTIAL.slice(0, -1)}x` }, 'a wrong credential'],
    ['GET', { authorization: `Bearer ${ADMIN_CREDENTIAL}x` }, 'a longer credential'],
    ['GET', { authorization: `Basic ${Buffer.from(`admin:${ADMIN_CREDENTIAL}`).toString('base64')}` }, 'another scheme'],
    ['DELETE', {}, 'DELETE without Authorization'],
    ['DELETE', { authorization: 'Bearer wrong' }, 'DELETE with a wrong credential'],
  ];
  for (const [method, headers, what] of refusals) {
    const res = await fetch(url, { method, headers });
    t.equal(res.status, 401, what);
    t.match(res.headers.get('www-authenticate'), /^Bearer /);
    t.equal(res.headers.get('content-type'), 'application/problem+json');
  }
  const unknownPath = await fetch(`${internal}/admin/anything`);
  t.equal(unknownPath.status, 401, 'the credential is checked before anything under /admin/ is looked at');
  t.ok(await isLive(stack, a.cookie), 'nothing was ended');
  t.same(stack.audit('logout'), []);
});

t.test('admin: with the credential an operator lists and ends a user\'s sessions, audited as channel admin', async (t) => {
  const { stack, internal } = await withInternalListener(t);
  const a = await loggedIn(stack);
  const b = await loggedIn(stack);
  const c = await loggedIn(stack);
  const bob = await loggedIn(stack, TEST_USERS[1]!.pid);
  const auth = { authorization: `Bearer ${ADMIN_CREDENTIAL}` };
  const base = `${internal}/admin/tenants/test/users/${encodeURIComponent(a.session.data.user.sub)}/sessions`;

  const listed = await fetch(base, { headers: auth });
  t.equal(listed.status, 200);
  t.equal(listed.headers.get('cache-control'), 'no-store');
  const text = await listed.text();
  const entries = JSON.parse(text) as Array<{ handle: string; session: string }>;
  t.same(entries.map((e) => e.session).sort(), [a, b, c].map((s) => s.session.hash).sort(), 'the user\'s three sessions, by their audit hash');
  for (const s of [a, b, c]) t.notOk(text.includes(s.cookie) || text.includes(s.session.id) || text.includes(s.session.data.tokens.refreshToken!), 'no cookie, store key or token');

  const userHandles = (await list(stack, a.browser)).map((e) => e.handle).sort();
  t.same(entries.map((e) => e.handle).sort(), userHandles, 'the same handles the user sees');

  const one = entries.find((e) => e.session === a.session.hash)!;
  const ended = await fetch(`${base}/${one.handle}`, { method: 'DELETE', headers: auth });
  t.equal(ended.status, 204);
  t.notOk(await isLive(stack, a.cookie));
  t.equal(await stack.op.isRefreshTokenActive(a.session.data.tokens.refreshToken!), false);
  t.equal((await fetch(`${base}/${one.handle}`, { method: 'DELETE', headers: auth })).status, 404, 'an ended handle is unknown');

  const bobsSub = encodeURIComponent(bob.session.data.user.sub);
  const foreign = await fetch(`${internal}/admin/tenants/test/users/${bobsSub}/sessions/${entries.find((e) => e.session === b.session.hash)!.handle}`, { method: 'DELETE', headers: auth });
  t.equal(foreign.status, 404, 'a handle under another user\'s path ends nothing');
  t.equal((await fetch(`${internal}/admin/tenants/nope/users/${bobsSub}/sessions`, { headers: auth })).status, 404, 'an unknown tenant');
  t.ok(await isLive(stack, b.cookie));

  const all = await fetch(base, { method: 'DELETE', headers: auth });
  t.equal(all.status, 200);
  t.same(await all.json(), { ended: 2 });
  for (const s of [b, c]) {
    t.notOk(await isLive(stack, s.cookie));
    t.equal(await stack.op.isRefreshTokenActive(s.session.data.tokens.refreshToken!), false, 'every refresh token is revoked');
  }
  t.same(logoutChannels(stack), ['admin', 'admin', 'admin']);
  t.ok(await isLive(stack, bob.cookie), 'the other user is untouched');
  t.equal((await b.browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401);
});

t.test('admin: absent from the public port, and not mounted without a configured credential', async (t) => {
  const { stack } = await withInternalListener(t);
  const a = await loggedIn(stack);
  const path = `/admin/tenants/test/users/${encodeURIComponent(a.session.data.user.sub)}/sessions`;
  for (const method of ['GET', 'DELETE']) {
    const res = await fetch(`${stack.publicUrl}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_CREDENTIAL}` } });
    t.equal(res.status, 404, `${method} on the public port`);
  }
  t.ok(await isLive(stack, a.cookie));

  const bare = await withInternalListener(t, {}, false);
  const res = await fetch(`${bare.internal}${path}`, { headers: { authorization: `Bearer ${ADMIN_CREDENTIAL}` } });
  t.equal(res.status, 404, 'no credential configured: no admin endpoints');
  t.equal((await fetch(`${bare.internal}/metrics`)).status, 200, 'the rest of the internal listener still serves');
});

t.test('config: server.admin.credential is at least 32 characters, needs the internal listener, and is masked', async (t) => {
  const base = (server: Record<string, unknown>) => ({
    server,
    session: { keys: [{ id: 'k1', secret: Buffer.alloc(32, 7).toString('base64url') }] },
    tenants: [{ id: 'x', publicUrl: 'http://localhost:3000', idporten: { environment: 'test', clientId: 'c', clientAuth: { method: 'client_secret_post', secret: 'a-client-secret-that-is-long-enough-for-hs256-0123456789' } } }],
  });
  t.throws(() => normaliseConfig(base({ metricsPort: 9464, admin: { credential: 'short' } }), {}), /server\.admin\.credential/);
  t.throws(() => normaliseConfig(base({ admin: { credential: ADMIN_CREDENTIAL } }), {}), /needs server\.metricsPort/);
  const config = normaliseConfig(base({ metricsPort: 9464, admin: { credential: '${BFF_ADMIN_TOKEN}' } }), { BFF_ADMIN_TOKEN: ADMIN_CREDENTIAL });
  t.equal(config.server.admin?.credential, ADMIN_CREDENTIAL, 'expanded from the environment');
  t.notOk(JSON.stringify(maskConfig(config)).includes(ADMIN_CREDENTIAL), '--check prints it masked');
});

t.test('userAgentSummary names browser and system from a fixed vocabulary, never echoing the header', async (t) => {
  const cases: Array<[string | undefined, string]> = [
    ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36', 'Chromium on Linux'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0', 'Edge on Windows'],
    ['Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7; rv:127.0) Gecko/20100101 Firefox/127.0', 'Firefox on macOS'],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1', 'Safari on iOS'],
    ['Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36', 'Samsung Internet on Android'],
    ['curl/8.5.0', 'Unknown browser'],
    [undefined, 'Unknown browser'],
    ['<script>alert(1)</script> Windows', 'A browser on Windows'],
  ];
  for (const [ua, expected] of cases) t.equal(userAgentSummary(ua), expected, String(ua));
});
