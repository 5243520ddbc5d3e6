import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';

const user = TEST_USERS[0]!;

async function loggedIn(stack: Stack, opts: { acr?: string } = {}) {
  const browser = new Browser();
  const qs = opts.acr ? `?acr=${opts.acr}` : '';
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login${qs}`, { pid: user.pid, ...(opts.acr ? { acr: opts.acr } : {}) });
  const cookie = browser.cookie('localhost', 'bff');
  if (!cookie) throw new Error('no session cookie after login');
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('session not live');
  return { browser, cookie, session: loaded.session };
}

const json = { 'x-csrf': '1', accept: 'application/json' };

t.test('session and login-transaction cookies carry the contract attributes on plain-http localhost', async (t) => {
  const stack = await startStack(t);
  const browser = new Browser();
  const start = await browser.fetch(`${stack.publicUrl}/auth/login`);
  t.equal(start.status, 302);
  const txCookie = start.headers.getSetCookie().find((c) => c.startsWith('bff-login-'));
  t.ok(txCookie, 'a login-transaction cookie is set');
  t.match(txCookie!, /; HttpOnly/);
  t.match(txCookie!, /; SameSite=Lax/);
  t.match(txCookie!, /; Path=\//);
  t.match(txCookie!, /; Max-Age=600/);
  t.notMatch(txCookie!, /Domain=/i);
  t.notMatch(txCookie!, /Secure/, 'no Secure on plain-http localhost');
  const location = new URL(start.headers.get('location')!);
  t.equal(location.origin, stack.op.issuer, 'redirects to the provider');
  t.ok(location.searchParams.has('request_uri'), 'uses PAR since the provider offers it');

  const { browser: b2 } = await loggedIn(stack);
  const sessionSetCookie = b2.history.flatMap((r) => r.headers.getSetCookie()).find((c) => c.startsWith('bff='));
  t.ok(sessionSetCookie);
  t.match(sessionSetCookie!, /^bff=[A-Za-z0-9_-]{43};/, '256-bit opaque value');
  t.match(sessionSetCookie!, /; HttpOnly/);
  t.match(sessionSetCookie!, /; SameSite=Strict/);
  t.match(sessionSetCookie!, /; Path=\//);
  t.notMatch(sessionSetCookie!, /Domain=|Secure|Max-Age|Expires/i);
});

t.test('on an https publicUrl cookies are __Host- prefixed and Secure', async (t) => {
  // TLS ends at a load balancer in front; the gateway itself is reached over http here.
  const stack = await startStack(t, { httpsPublicUrl: true });
  const host = new URL(stack.publicUrl).host;
  const login = await stack.gateway.app.inject({ method: 'GET', url: '/auth/login', headers: { host } });
  t.equal(login.statusCode, 302);
  const tx = String(login.headers['set-cookie']);
  t.match(tx, /^__Host-bff-login-[A-Za-z0-9_-]{16}=/, 'transaction cookie has the __Host- prefix');
  t.match(tx, /; Max-Age=600/);
  t.match(tx, /; Path=\//);
  t.match(tx, /; HttpOnly/);
  t.match(tx, /; Secure/);
  t.match(tx, /; SameSite=Lax/);
  t.notMatch(tx, /Domain=/i);
  const location = new URL(login.headers.location as string);
  t.equal(location.origin, stack.op.issuer);

  // Log in at the provider; its redirect back to the https callback cannot be followed here (no TLS in front),
  // so the callback is delivered to the gateway directly, with the transaction cookie the browser would send.
  const browser = new Browser();
  await loginAtLookalike(browser, location.toString(), { pid: user.pid }).catch(() => undefined);
  const back = browser.history.map((r) => r.headers.get('location')).find((l) => l?.startsWith(`${stack.publicUrl}/auth/callback`));
  t.ok(back, 'the provider redirected to the https callback');
  const callbackUrl = new URL(back!);
  const callback = await stack.gateway.app.inject({ method: 'GET', url: `${callbackUrl.pathname}${callbackUrl.search}`, headers: { host, cookie: tx.split(';')[0]! } });
  t.equal(callback.statusCode, 302, 'the login completes');
  const session = ([] as string[]).concat(callback.headers['set-cookie'] ?? []).find((c) => c.startsWith('__Host-bff='));
  t.ok(session, 'a __Host-bff session cookie is set');
  t.match(session!, /^__Host-bff=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Strict$/, 'exactly: opaque value, Path=/, HttpOnly, Secure, SameSite=Strict, no Domain, no Max-Age');

  const logout = await stack.gateway.app.inject({ method: 'POST', url: '/auth/logout', headers: { host, 'x-csrf': '1', accept: 'application/json' } });
  const cleared = String(logout.headers['set-cookie']);
  t.match(cleared, /^__Host-bff=;/, 'the session cookie is __Host-bff');
  t.match(cleared, /; Path=\//);
  t.match(cleared, /; HttpOnly/);
  t.match(cleared, /; Secure/);
  t.match(cleared, /; SameSite=Strict/);

  const { cookiePolicy, sessionCookieAttributes } = await import('../src/session/cookies.js');
  const policy = cookiePolicy(stack.publicUrl, 'bff', 'strict');
  t.same(sessionCookieAttributes(policy), { httpOnly: true, secure: true, sameSite: 'strict', path: '/' }, 'the session cookie is set with the same attributes');
});

t.test('GET /auth/session is a 401 problem with loginUrl when there is no live session, whatever the cookie', async (t) => {
  const stack = await startStack(t);
  const { cookie } = await loggedIn(stack);
  const host = new URL(stack.publicUrl).host;
  const variants = {
    none: undefined,
    tampered: cookie.value.slice(0, -1) + (cookie.value.endsWith('A') ? 'B' : 'A'),
    truncated: cookie.value.slice(0, 20),
    unknown: 'A'.repeat(43),
    oversized: 'A'.repeat(8000),
    garbage: '%00%ff;;"\\',
  };
  for (const [name, value] of Object.entries(variants)) {
    const res = await stack.gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host, ...(value !== undefined ? { cookie: `bff=${value}` } : {}) } });
    t.equal(res.statusCode, 401, `${name}: 401`);
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${name}: problem json`);
    const body = res.json();
    t.equal(body.code, 'login_required');
    t.equal(body.loginUrl, `${stack.publicUrl}/auth/login`);
  }
  const ok = await stack.gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host, cookie: `bff=${cookie.value}` } });
  t.equal(ok.statusCode, 200, 'the real cookie still works');
});

t.test('a request for idporten-loa-high gets a session at that level', async (t) => {
  const stack = await startStack(t);
  const { browser } = await loggedIn(stack, { acr: 'idporten-loa-high' });
  const body = JSON.parse((await browser.fetch(`${stack.publicUrl}/auth/session`)).body);
  t.equal(body.user.acr, 'idporten-loa-high');
});

t.test('the session store holds no cookie value and no readable token', async (t) => {
  const store = new MemorySessionStore(100);
  const stack = await startStack(t, { appDeps: { store, lock: new MemorySessionLock() } });
  const { cookie, session } = await loggedIn(stack);
  t.equal(session.id, SessionManager.storeKey(cookie.value), 'keyed by a hash of the cookie');
  t.equal(await store.get(cookie.value), undefined, 'the cookie value itself is no key');
  const stored = await store.get(session.id);
  t.ok(stored);
  // The sealed bytes as text, so a token stored in the clear would show.
  const dump = JSON.stringify({ ...stored, sealed: stored!.sealed.toString('latin1') });
  t.notOk(dump.includes(cookie.value), 'no cookie value at rest');
  for (const token of [session.data.tokens.accessToken, session.data.tokens.refreshToken!, session.data.tokens.idToken, user.pid]) {
    t.notOk(dump.includes(token), 'no token or pid readable at rest');
  }
});

t.test('POST /auth/logout needs X-CSRF; then revokes tokens, ends the session and returns the end-session URL', async (t) => {
  const stack = await startStack(t);
  const { browser, session } = await loggedIn(stack);
  const refreshToken = session.data.tokens.refreshToken!;
  t.equal(await stack.op.isRefreshTokenActive(refreshToken), true);

  // A cross-site form post: no X-CSRF, foreign Origin.
  const forged = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' }, body: '', origin: 'http://evil.example' });
  t.equal(forged.status, 403);
  t.equal(JSON.parse(forged.body).code, 'csrf_failed');
  const crossOrigin = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: json, origin: 'http://evil.example' });
  t.equal(crossOrigin.status, 403, 'foreign Origin refused even with X-CSRF');
  // Neither X-CSRF nor Origin (a client that hides where it came from) is refused too.
  const cookieHeader = `bff=${browser.cookie('localhost', 'bff')!.value}`;
  const anonymous = await stack.gateway.app.inject({ method: 'POST', url: '/auth/logout', headers: { host: new URL(stack.publicUrl).host, cookie: cookieHeader } });
  t.equal(anonymous.statusCode, 403);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'session survived the forged logouts');
  t.equal(stack.audit('csrf.reject').length, 3);

  const res = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: json });
  t.equal(res.status, 200);
  const { logoutUrl } = JSON.parse(res.body);
  // The contract's "More endpoints": logoutUrl is a gateway URL serving the self-posting end-session form, so no
  // token is in a JSON body or URL a page can read (test/logout-handle.test.ts follows it to the form).
  const url = new URL(logoutUrl);
  t.equal(`${url.origin}${url.pathname}`, `${stack.publicUrl}/auth/logout/continue`);
  t.notOk(res.body.includes(session.data.tokens.idToken!), 'no ID token in the JSON body');
  t.notOk(url.searchParams.has('id_token_hint'));
  const form = await browser.navigate(logoutUrl, { initiator: stack.publicUrl });
  t.match(form.body, new RegExp(`action="${stack.op.issuer}/endsession"`));
  t.match(form.body, new RegExp(`name="post_logout_redirect_uri" value="${stack.publicUrl}/"`));
  t.notMatch(form.body, /name="state"/, 'no state: ID-porten would append it to the post-logout URI the user lands on');
  t.match(res.headers.getSetCookie().join('\n'), /bff=;/, 'cookie cleared');

  t.equal(await stack.op.isRefreshTokenActive(refreshToken), false, 'the provider reports the refresh token revoked');
  t.ok(stack.op.stats.revocations >= 2, 'refresh and access token revoked');
  const stale = await stack.gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host: new URL(stack.publicUrl).host, cookie: `bff=${browser.cookie('localhost', 'bff')?.value ?? ''}` } });
  t.equal(stale.statusCode, 401);
  const logout = stack.audit('logout');
  t.equal(logout.length, 1);
  t.equal(logout[0]!.channel, 'rp');
});

t.test('the logout page auto-posts to end_session_endpoint and the user lands back on the tenant', async (t) => {
  const stack = await startStack(t);
  const { browser, cookie } = await loggedIn(stack);
  const page = await browser.navigate(`${stack.publicUrl}/auth/logout`, { method: 'POST', body: '', initiator: stack.publicUrl, headers: { 'x-csrf': '1' } });
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /text\/html/);
  t.match(page.body, new RegExp(`action="${stack.op.issuer}/endsession"`));
  const csp = page.headers.get('content-security-policy')!;
  t.match(csp, new RegExp(`form-action [^;]*${stack.op.issuer}`), 'CSP allows posting to the provider');
  t.match(csp, new RegExp(`form-action [^;]*${stack.publicUrl}`), 'CSP allows the redirect back');
  const final = await browser.followAutoSubmit(page);
  const landed = new URL(final.url);
  t.equal(`${landed.origin}${landed.pathname}`, `${stack.publicUrl}/`, 'back on the tenant root');
  const after = await stack.gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host: new URL(stack.publicUrl).host, cookie: `bff=${cookie.value}` } });
  t.equal(after.statusCode, 401, 'the old cookie is dead');
});

t.test('a same-origin HTML form post may log out without X-CSRF (Origin proves it)', async (t) => {
  const stack = await startStack(t);
  const { browser } = await loggedIn(stack);
  const res = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: '' });
  t.equal(res.status, 200);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401);
});

t.test('front-channel logout ends every session with that sid; a wrong iss is 400', async (t) => {
  const stack = await startStack(t);
  const { browser, session } = await loggedIn(stack);
  const sid = session.data.user.sid;
  t.type(sid, 'string', 'the ID token carried sid');
  const outsider = new Browser();
  const wrong = await outsider.fetch(`${stack.publicUrl}/auth/logout/frontchannel?iss=${encodeURIComponent('https://evil.example')}&sid=${sid}`);
  t.equal(wrong.status, 400);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'wrong iss ended nothing');
  const res = await outsider.fetch(`${stack.publicUrl}/auth/logout/frontchannel?iss=${encodeURIComponent(stack.op.issuer)}&sid=${sid}`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  t.notOk(res.headers.get('x-frame-options'), 'may be framed by ID-porten');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401);
  t.equal(stack.audit('logout').filter((l) => l.channel === 'frontchannel').length, 1);
});

t.test('back-channel logout from the provider ends the session; forged logout tokens are refused', async (t) => {
  const stack = await startStack(t);
  const { browser, session } = await loggedIn(stack);
  const { SignJWT, generateKeyPair } = await import('jose');
  const { privateKey } = await generateKeyPair('RS256');
  const forged = await new SignJWT({ sid: session.data.user.sid, events: { 'http://schemas.openid.net/event/backchannel-logout': {} }, jti: 'x1' })
    .setProtectedHeader({ alg: 'RS256', kid: 'not-the-ops' })
    .setIssuer(stack.op.issuer)
    .setAudience(stack.clientId)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(privateKey);
  const outsider = new Browser();
  for (const body of [`logout_token=${forged}`, 'logout_token=', 'nothing=1', `logout_token=${'a'.repeat(100)}`]) {
    const res = await outsider.fetch(`${stack.publicUrl}/auth/logout/backchannel`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    t.equal(res.status, 400, `refused: ${body.slice(0, 30)}`);
  }
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'forgeries ended nothing');

  // The user logs out at the provider directly: it delivers a real logout token to our back-channel endpoint.
  const endSession = new URL(`${stack.op.issuer}/endsession`);
  endSession.searchParams.set('client_id', stack.clientId);
  endSession.searchParams.set('post_logout_redirect_uri', `${stack.publicUrl}/`);
  const done = await browser.followAutoSubmit(await browser.navigate(endSession.toString()));
  t.equal(new URL(done.url).origin, stack.publicUrl);
  await waitFor(async () => stack.audit('logout').some((l) => l.channel === 'backchannel'));
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'the session ended');
});

t.test('idle timeout ends a session that sees no requests', async (t) => {
  const stack = await startStack(t, { session: { idleTimeout: '2s' } });
  const { browser } = await loggedIn(stack);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200);
  await new Promise((r) => setTimeout(r, 2300));
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401);
  t.equal(stack.audit('logout').filter((l) => l.channel === 'idle').length, 1);
});

async function waitFor(check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}

t.test('logging in again replaces the session: the old one is destroyed and its refresh token revoked', async (t) => {
  const stack = await startStack(t);
  const { browser, cookie, session } = await loggedIn(stack);
  // Another user on the same browser: the provider's login session ended, so this login has its own authorization.
  // (The same user's re-login is covered in session-end-revocation.test.ts: its tokens are left to expire.)
  browser.forgetCookies(stack.op.issuer);
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[1]!.pid });
  const second = browser.cookie('localhost', 'bff')!;
  t.not(second.value, cookie.value, 'a new cookie value');
  t.equal((await stack.gateway.core.lifecycle.sessions.load(cookie.value)).state, 'none', 'the old session is gone');
  await waitFor(async () => !(await stack.op.isRefreshTokenActive(session.data.tokens.refreshToken!)));
  t.pass('the old refresh token is revoked at the provider');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the new session works');
});
