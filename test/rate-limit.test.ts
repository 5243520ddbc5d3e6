/**
 * Login limits (docs: gateway-contract "Limits and hygiene"). Each anonymous GET /auth/login costs a pushed
 * authorization request with client authentication at ID-porten, and each callback a token request, so both are
 * limited per client address and tenant (OWASP ASVS 5.0 V2.4.1: anti-automation against overuse of costly
 * resources). Over the limit: 429 (RFC 6585 §4) with Retry-After in whole seconds (RFC 9110 §10.2.3) and the
 * gateway's problem JSON (RFC 9457). A browser caught in a redirect loop gets a page that says so.
 */
import Fastify from 'fastify';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike, type IdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { ERROR_PAGE_CSP } from '../src/http/html.js';
import { LOGIN_LOOP } from '../src/http/rate-limit.js';
import { idportenBff } from '../src/plugin.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY, startGateway, startStack } from './helpers/stack.js';

const user = TEST_USERS[0]!;

/** Counts the pushed authorization requests the look-alike accepted (one per login start that reached it). */
function countPar(op: IdportenLookalike): { readonly count: number } {
  const counter = { count: 0 };
  op.provider.on('pushed_authorization_request.success', () => (counter.count += 1));
  return counter;
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, headers });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

function assertRateLimited(t: Test, res: Awaited<ReturnType<typeof get>>, what: string): void {
  t.equal(res.status, 429, `${what}: 429 Too Many Requests`);
  t.match(String(res.headers['retry-after']), /^[1-9]\d*$/, `${what}: Retry-After in whole seconds`);
  t.ok(Number(res.headers['retry-after']) <= 60, `${what}: no longer than the window`);
  t.match(String(res.headers['content-type']), /^application\/problem\+json(;|$)/, `${what}: problem JSON`);
  t.equal(res.headers['cache-control'], 'no-store', `${what}: not cached`);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  t.match(body.traceId, /^[0-9a-f]{32}$/, `${what}: a traceId to quote`);
  t.same(
    { ...body, traceId: undefined },
    {
      type: 'urn:idporten-bff:problem:rate_limited',
      title: 'Too many requests',
      status: 429,
      detail: 'Too many login requests from this address; try again later.',
      code: 'rate_limited',
      traceId: undefined,
    },
    `${what}: exactly the gateway's problem body`,
  );
  t.notOk(Object.keys(res.headers).some((h) => h.startsWith('x-ratelimit')), `${what}: no headers of the limiter's own`);
}

t.test('the 31st login start from one address within a minute gets 429 rate_limited and makes no PAR call; another address behind the trusted proxy is unaffected', async (t) => {
  // Defaults from the configuration: server.rateLimit.login is not written, so 30 a minute.
  const stack = await startStack(t, { server: { trustProxy: ['loopback'] } });
  t.same(stack.gateway.core.config.server.rateLimit.login, { max: 30, windowMs: 60_000 });
  const par = countPar(stack.op);
  const from = (address: string) => ({ 'x-forwarded-for': address });

  for (let i = 1; i <= 30; i++) {
    const res = await get(`${stack.publicUrl}/auth/login`, from('203.0.113.7'));
    if (res.status !== 302) t.fail(`login start ${i} should redirect, got ${res.status}`);
  }
  t.equal(par.count, 30, 'thirty PAR calls for thirty starts');

  const limited = await get(`${stack.publicUrl}/auth/login`, from('203.0.113.7'));
  assertRateLimited(t, limited, 'the 31st start');
  t.equal(par.count, 30, 'the limited start made no PAR call at ID-porten');
  t.equal(limited.headers['set-cookie'], undefined, 'and set no transaction cookie');

  const other = await get(`${stack.publicUrl}/auth/login`, from('203.0.113.8'));
  t.equal(other.status, 302, 'another client address (X-Forwarded-For from a trusted proxy) still logs in');
  t.equal(par.count, 31);
  t.ok(stack.logs.some((l) => l.msg === 'login rate limit exceeded' && l.tenant === 'test' && l.bucket === 'login'), 'the refusal is logged');
});

t.test('without a trusted proxy a client cannot escape the limit by sending its own X-Forwarded-For', async (t) => {
  const stack = await startStack(t, { server: { rateLimit: { login: { max: 3, window: '1m' } } } });
  const par = countPar(stack.op);
  for (let i = 0; i < 3; i++) t.equal((await get(`${stack.publicUrl}/auth/login`, { 'x-forwarded-for': `198.51.100.${i}` })).status, 302);
  assertRateLimited(t, await get(`${stack.publicUrl}/auth/login`, { 'x-forwarded-for': '198.51.100.99' }), 'a fourth start with a new spoofed address');
  t.equal(par.count, 3);
});

t.test('server.trustProxy: true is refused, naming the path and the fix: it would let each login take the client-written X-Forwarded-For as its address', async (t) => {
  await t.rejects(startStack(t, { server: { trustProxy: true } }), {
    name: 'ConfigError',
    message: /^server\.trustProxy: true trusts every peer[^\n]*list the addresses or CIDRs of your proxies/m,
  });
});

t.test('behind a trusted proxy (server.trustProxy lists it), rotating client-written X-Forwarded-For values do not escape the limit', async (t) => {
  const stack = await startStack(t, { server: { trustProxy: ['loopback'], rateLimit: { login: { max: 5, window: '1m' } } } });
  const par = countPar(stack.op);
  // What the proxy passes on: whatever the client wrote, then the address it saw (203.0.113.7) on the right.
  const passed: number[] = [];
  for (let i = 0; i < 40; i++) {
    const res = await get(`${stack.publicUrl}/auth/login`, { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.7` });
    if (res.status === 302) passed.push(i);
  }
  t.same(passed, [0, 1, 2, 3, 4], 'five of forty starts passed, then 429');
  t.equal(par.count, 5);
});

t.test('in library mode, a host whose Fastify trusts every proxy (trustProxy: true) still has its logins counted per client, by the gateway\'s server.trustProxy', async (t) => {
  const op = await startIdportenLookalike({ clients: [] });
  t.teardown(() => op.close());
  const host = Fastify({ trustProxy: true });
  await host.register(idportenBff, {
    config: {
      server: { trustProxy: ['loopback'], rateLimit: { login: { max: 2, window: '1m' } } },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [{ id: 'host', publicUrl: 'http://localhost', idporten: { issuer: op.issuer, clientId: 'c', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } }, routes: [] }],
    },
  });
  t.teardown(() => host.close());
  const callback = (forwardedFor: string) => host.inject({ url: '/auth/callback', remoteAddress: '127.0.0.1', headers: { host: 'localhost', 'x-forwarded-for': forwardedFor } });
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await callback(`198.51.100.${i}, 203.0.113.7`)).statusCode);
  t.same(statuses, [400, 400, 429, 429, 429, 429], 'the third callback from 203.0.113.7 is limited, whatever it wrote first');
  t.equal((await callback('203.0.113.8')).statusCode, 400, 'another client behind the proxy is not');
});

t.test('HEAD /auth/login runs the same handler and counts against the same limit as GET', async (t) => {
  const stack = await startStack(t, { server: { rateLimit: { login: { max: 2, window: '1m' } } } });
  const par = countPar(stack.op);
  t.equal((await get(`${stack.publicUrl}/auth/login`, {}, 'HEAD')).status, 302);
  t.equal((await get(`${stack.publicUrl}/auth/login`)).status, 302);
  t.equal((await get(`${stack.publicUrl}/auth/login`, {}, 'HEAD')).status, 429, 'a third start by HEAD is limited');
  t.equal((await get(`${stack.publicUrl}/auth/login`)).status, 429, 'and so is a GET after it');
  t.equal(par.count, 2);
});

t.test('the callback is limited too, on a counter of its own, and a limited callback reaches no token endpoint', async (t) => {
  const stack = await startStack(t, { server: { rateLimit: { login: { max: 3, window: '1m' } } } });
  for (let i = 0; i < 3; i++) {
    const res = await get(`${stack.publicUrl}/auth/callback?state=s${i}&code=c${i}`);
    t.equal(res.status, 400, `callback ${i + 1}: the unknown transaction's error page`);
  }
  assertRateLimited(t, await get(`${stack.publicUrl}/auth/callback?state=s9&code=c9`), 'the fourth callback');
  t.equal(stack.op.stats.codeGrants, 0, 'no code was exchanged');
  // The login start has its own counter: a real login (start + callback) still works from this address.
  const browser = new Browser();
  const done = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  t.equal(done.status, 429, 'but its callback is over the callback limit');
  t.equal(JSON.parse(done.body).code, 'rate_limited');
  t.equal(stack.op.stats.codeGrants, 0, 'and its code was never exchanged');
});

t.test("one tenant's limit does not touch another tenant's logins from the same address", async (t) => {
  const port = await freePort();
  const origins = { acme: `http://localhost:${port}`, beta: `http://127.0.0.1:${port}` };
  const op = await startIdportenLookalike({ clients: [lookalikeClient('acme-client', origins.acme), lookalikeClient('beta-client', origins.beta)] });
  t.teardown(() => op.close());
  const tenant = (id: 'acme' | 'beta') => ({
    id,
    publicUrl: origins[id],
    idporten: { issuer: op.issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, acrValues: 'idporten-loa-substantial' },
    routes: [],
  });
  const config = normaliseConfig(
    {
      server: { port, rateLimit: { login: { max: 2, window: '1m' } } },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [tenant('acme'), tenant('beta')],
    },
    {},
  );
  await startGateway(t, config);

  t.equal((await get(`${origins.acme}/auth/login`)).status, 302);
  t.equal((await get(`${origins.acme}/auth/login`)).status, 302);
  t.equal((await get(`${origins.acme}/auth/login`)).status, 429, 'acme is over its limit');
  t.equal((await get(`${origins.beta}/auth/login`)).status, 302, 'beta, same address, is not');
  t.equal((await get(`${origins.beta}/auth/login`)).status, 302);
  t.equal((await get(`${origins.beta}/auth/login`)).status, 429, 'until it is over its own');
  t.equal((await get(`${origins.acme}/auth/login`, { host: 'unknown.example' })).status, 421, 'an unknown host is answered 421, not counted as a tenant');
});

t.test('in library mode the limit covers the gateway\'s login routes and not the host application\'s own routes', async (t) => {
  const op = await startIdportenLookalike({ clients: [] });
  t.teardown(() => op.close());
  const host = Fastify();
  host.get('/host/ping', async () => ({ ok: true }));
  await host.register(idportenBff, {
    config: {
      server: { rateLimit: { login: { max: 1, window: '1m' } } },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [{ id: 'host', publicUrl: 'http://localhost', idporten: { issuer: op.issuer, clientId: 'c', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } }, routes: [] }],
    },
  });
  t.teardown(() => host.close());
  for (let i = 0; i < 5; i++) t.equal((await host.inject({ url: '/host/ping', headers: { host: 'localhost' } })).statusCode, 200);
  // No warm-up: the callback answers its error page without ID-porten; the second one is over the limit.
  t.equal((await host.inject({ url: '/auth/callback', headers: { host: 'localhost' } })).statusCode, 400);
  t.equal((await host.inject({ url: '/auth/callback', headers: { host: 'localhost' } })).statusCode, 429);
  t.equal((await host.inject({ url: '/host/ping', headers: { host: 'localhost' } })).statusCode, 200, 'the host route is still not limited');
});

t.test('a browser whose logins came back five times within a minute gets the loop page at the next start instead of another trip to ID-porten; after the window it logs in', async (t) => {
  let offsetMs = 0;
  const stack = await startStack(t, { appDeps: { now: () => Date.now() + offsetMs } });
  const par = countPar(stack.op);
  const browser = new Browser();
  // A redirect loop: every login completes (ID-porten's single sign-on answers at once), yet the page starts
  // another one. The callbacks clear the transaction cookies, so the count has to survive them.
  for (let i = 1; i <= LOGIN_LOOP.maxRoundTrips; i++) {
    const done = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=/app`, { pid: user.pid });
    t.equal(done.url, `${stack.publicUrl}/app`, `login ${i} completes`);
  }
  t.equal(par.count, LOGIN_LOOP.maxRoundTrips);
  t.notOk(browser.cookies(stack.publicUrl).some((c) => c.name.startsWith('bff-login-')), 'no transaction cookie is left over');
  const counter = browser.cookie(stack.publicUrl, 'bff-loop');
  t.ok(counter?.httpOnly, 'the counter cookie is HttpOnly');
  t.equal(counter?.sameSite, 'lax');

  const marker = '<script>alert(1)</script>';
  const start = `${stack.publicUrl}/auth/login?returnTo=${encodeURIComponent(`/${marker}`)}`;
  const loop = await browser.navigate(start);
  t.equal(loop.url, start, 'the browser stays at the gateway');
  t.equal(loop.status, 429);
  t.equal(loop.headers.get('content-type'), 'text/html; charset=utf-8');
  t.equal(loop.headers.get('content-security-policy'), ERROR_PAGE_CSP, 'the error page CSP');
  t.equal(loop.headers.get('cache-control'), 'no-store');
  t.match(loop.headers.get('retry-after'), /^[1-9]\d*$/);
  t.ok(Number(loop.headers.get('retry-after')) <= 60, 'Retry-After no longer than the window');
  t.match(loop.body, /logged in many times within a minute/);
  t.notOk(loop.body.includes('alert(1)') || loop.body.includes('returnTo'), 'nothing from the request is reflected');
  t.equal(loop.headers.get('set-cookie'), null, 'no new transaction cookie');
  t.equal(par.count, LOGIN_LOOP.maxRoundTrips, 'no PAR call for the looping start');
  t.equal(stack.audit('login.failure').filter((e) => e.reason === 'login loop').length, 1, 'audited as a failed start');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the session the loop made is left alone');

  offsetMs = LOGIN_LOOP.windowMs + 1_000;
  const after = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=/app`, { pid: user.pid });
  t.equal(after.url, `${stack.publicUrl}/app`, 'after the window a normal login works');
  t.equal(par.count, LOGIN_LOOP.maxRoundTrips + 1);
});

t.test('login starts that never come back (many tabs, a user who leaves) are no loop: only the per-address limit applies', async (t) => {
  const stack = await startStack(t);
  const browser = new Browser();
  for (let i = 1; i <= 3 * LOGIN_LOOP.maxRoundTrips; i++) {
    const res = await browser.navigate(`${stack.publicUrl}/auth/login`);
    if (res.status !== 200 || !/id="login-form"/.test(res.body)) t.fail(`start ${i} should reach ID-porten's login page, got ${res.status}`);
  }
  const done = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  t.equal(done.url, `${stack.publicUrl}/`, 'and the login after them completes');
});

t.test('the loop counter is sealed: a forged or foreign counter cookie does not trip the breaker', async (t) => {
  const stack = await startStack(t);
  const forged = Buffer.from(JSON.stringify({ n: 99, s: Date.now() })).toString('base64url');
  for (const value of [forged, `v1.k1.${'A'.repeat(16)}.${'B'.repeat(40)}`, 'x'.repeat(4000)]) {
    const res = await get(`${stack.publicUrl}/auth/login`, { cookie: `bff-loop=${value}` });
    t.equal(res.status, 302, 'a counter cookie that does not open counts as none');
  }
});
