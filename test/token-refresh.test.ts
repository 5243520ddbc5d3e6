import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, startStack, type Stack } from './helpers/stack.js';
import { TEST_USERS } from '../demo/test-users.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import type { SessionLock } from '../src/session/store.js';

const user = TEST_USERS[1]!;
const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function login(stack: Stack) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  const loaded = await stack.gateway.core.lifecycle.sessions.load(browser.cookie('localhost', 'bff')!.value);
  if (loaded.state !== 'live') throw new Error('no session');
  return { browser, session: loaded.session };
}

function bearerSeen(body: string): string {
  const echoed = JSON.parse(body) as { headers: Record<string, string> };
  return echoed.headers.authorization!.replace(/^Bearer /, '');
}

// Token lifetimes here are long enough that 200 requests on a busy 2-core machine finish well inside the
// refreshed token's own leeway (a quarter of its lifetime), so exactly one refresh is the only right answer.
const TTL = 8;

t.test('200 concurrent requests right after expiry share exactly one refresh at the provider', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: TTL } });
  const { browser, session } = await login(stack);
  const first = session.data.tokens.accessToken;
  await sleep(TTL * 1000 + 100);
  const before = stack.op.stats.refreshGrants;
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => browser.fetch(`${stack.publicUrl}/mva/echo/item/${i}`, { headers: api })));
  t.same([...new Set(results.map((r) => r.status))], [200], 'all 200 succeed');
  t.equal(stack.op.stats.refreshGrants - before, 1, 'exactly one refresh grant at the provider');
  t.equal(stack.op.stats.refreshGrantErrors, 0, 'no refresh token was presented twice');
  const bearers = new Set(results.map((r) => bearerSeen(r.body)));
  t.equal(bearers.size, 1, 'every upstream call carried the same refreshed token');
  t.not([...bearers][0], first, 'and it is a new token');
  t.equal(stack.audit('token.refresh').length, 1);

  // The rotated refresh token was stored: two more rounds of expiry and refresh still work.
  await sleep(TTL * 1000 + 100);
  const again = await Promise.all(Array.from({ length: 20 }, () => browser.fetch(`${stack.publicUrl}/mva/echo/again`, { headers: api })));
  t.same([...new Set(again.map((r) => r.status))], [200], 'second expiry: all succeed');
  t.equal(stack.op.stats.refreshGrants - before, 2, 'one refresh per expiry');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the session still works');
  const refresh = stack.audit('token.refresh')[0]!;
  t.equal(refresh.rotated, true, 'the provider rotated the refresh token');
  t.match(refresh.accessToken, /^[A-Za-z0-9_-]{12}$/, 'fingerprints, not tokens, in the audit log');
});

t.test('a revoked grant ends the session: 401 session_expired, and the session is gone', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 3 } });
  const { browser, session } = await login(stack);
  // Revoke the refresh token at the provider behind the gateway's back (RFC 7009).
  const res = await fetch(`${stack.op.issuer}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: session.data.tokens.refreshToken!, token_type_hint: 'refresh_token', client_id: stack.clientId, client_secret: CLIENT_SECRET }),
  });
  t.equal(res.status, 200);
  await sleep(3100);
  const proxied = await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: api });
  t.equal(proxied.status, 401);
  const problem = JSON.parse(proxied.body);
  t.equal(problem.code, 'session_expired');
  t.equal(problem.loginUrl.startsWith(`${stack.publicUrl}/auth/login`), true);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'session gone');
  t.equal(stack.audit('logout').filter((l) => l.channel === 'expired').length, 1);
  t.equal(stack.audit('token.refresh.failure').length, 1);
});

t.test('ID-porten down: 503 idp_unavailable once the token has expired, the session survives and recovers', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: TTL } });
  const { browser } = await login(stack);
  stack.op.setTokenEndpointDown(true);
  // Inside the leeway (2 s for an 8 s token) but not yet expired: the current token is still used.
  await sleep(TTL * 750 + 200);
  const early = await browser.fetch(`${stack.publicUrl}/mva/echo/early`, { headers: api });
  t.equal(early.status, 200, 'a still-valid token is used when the refresh fails');
  t.equal(stack.audit('token.refresh.failure').length, 1, 'the failed refresh is audited');
  await sleep(TTL * 250 + 100);
  const down = await browser.fetch(`${stack.publicUrl}/mva/echo/down`, { headers: api });
  t.equal(down.status, 503);
  t.equal(JSON.parse(down.body).code, 'idp_unavailable');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'session kept');
  stack.op.setTokenEndpointDown(false);
  const back = await browser.fetch(`${stack.publicUrl}/mva/echo/back`, { headers: api });
  t.equal(back.status, 200, 'recovers when the provider is back');
});

t.test('no refresh past the absolute lifetime: 401 session_expired although the refresh token is valid', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 2 }, session: { absoluteLifetime: '3s', idleTimeout: '3s' } });
  const { browser, session } = await login(stack);
  await sleep(2100);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/a`, { headers: api })).status, 200, 'refreshes while inside the lifetime');
  await sleep(1100);
  const res = await browser.fetch(`${stack.publicUrl}/mva/echo/b`, { headers: api });
  t.equal(res.status, 401);
  t.equal(JSON.parse(res.body).code, 'session_expired');
  const latest = await stack.gateway.core.lifecycle.sessions.loadById(session.id);
  t.equal(latest.state, 'none', 'the session record is gone');
  t.equal(stack.audit('logout').filter((l) => l.channel === 'expired').length, 1);
});

t.test('POST /auth/session/refresh refreshes now through the same path and needs X-CSRF', async (t) => {
  const stack = await startStack(t);
  const { browser, session } = await login(stack);
  const refused = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST' });
  t.equal(refused.status, 403);
  const res = await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api });
  t.equal(res.status, 200);
  const body = JSON.parse(res.body);
  t.equal(body.authenticated, true);
  t.equal(body.user.sub, session.data.user.sub);
  t.equal(stack.op.stats.refreshGrants, 1);
  const after = await stack.gateway.core.lifecycle.sessions.loadById(session.id);
  t.equal(after.state, 'live');
  t.not(after.state === 'live' && after.session.data.tokens.accessToken, session.data.tokens.accessToken, 'a new access token is stored');
  t.notOk(res.body.includes(session.data.tokens.accessToken));
});

t.test('a session lock another request holds too long: 503 refresh_in_progress with Retry-After, audited as lock_timeout, and the session survives', async (t) => {
  const memoryLock = new MemorySessionLock();
  // The real memory lock; waiters give up after 300 ms instead of the default, so the test need not wait long.
  const lock: SessionLock = { withLock: (id, fn, opts) => memoryLock.withLock(id, fn, { ...opts, waitMs: 300 }) };
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 3 }, appDeps: { store: new MemorySessionStore(1000), lock } });
  const { browser, session } = await login(stack);
  await sleep(3100);
  let free!: () => void;
  const held = new Promise<void>((resolve) => (free = resolve));
  let holding!: () => void;
  const taken = new Promise<void>((resolve) => (holding = resolve));
  const holder = memoryLock.withLock(session.id, async () => {
    holding();
    await held;
  });
  await taken;
  const before = stack.op.stats.refreshGrants;

  const proxied = await browser.fetch(`${stack.publicUrl}/mva/echo/busy`, { headers: api });
  t.equal(proxied.status, 503);
  t.match(proxied.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(JSON.parse(proxied.body).code, 'refresh_in_progress', 'not store_unavailable: the store is fine');
  t.match(proxied.headers.get('retry-after'), /^[1-9][0-9]*$/, 'with Retry-After in seconds');
  t.same(
    stack.audit('token.refresh.failure').map((l) => l.reason),
    ['lock_timeout'],
    'audited as a lock timeout',
  );
  t.equal(stack.op.stats.refreshGrants - before, 0, 'no refresh was attempted without the lock');

  free();
  await holder;
  const again = await browser.fetch(`${stack.publicUrl}/mva/echo/free`, { headers: api });
  t.equal(again.status, 200, 'once the lock is free the session refreshes and works');
  t.equal(stack.op.stats.refreshGrants - before, 1);
});
