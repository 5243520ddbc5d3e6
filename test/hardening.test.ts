/**
 * Findings of the security review, each pinned by a test that failed before its fix.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { freePort } from '../demo/free-port.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { TEST_USERS } from '../demo/test-users.js';

const user = TEST_USERS[0]!;

// Finding "cookie bomb": a link with a huge returnTo made the login set a transaction cookie of several KB, and
// a page starting many logins pushed the origin's Cookie header past what servers accept (commonly 8 KB), locking
// the user out until the cookies expire. Contract "Limits and hygiene"; OWASP ASVS 5.0 V3.3 (cookie setup) and
// RFC 6265 section 6.1 (user agents need only keep 4096 bytes per cookie).
t.test('cookie bomb: an overlong returnTo is refused and many logins keep the Cookie header small', async (t) => {
  // Over fifty login starts from one address: above the default server.rateLimit.login (30 a minute), which is
  // not what this test is about (test/rate-limit.test.ts is).
  const stack = await startStack(t, { server: { rateLimit: { login: { max: 100, window: '1m' } } } });
  const host = new URL(stack.publicUrl).host;

  const overlong = `/${'a'.repeat(2048)}`; // 2,049 bytes
  const refused = await stack.gateway.app.inject({ method: 'GET', url: `/auth/login?returnTo=${encodeURIComponent(overlong)}`, headers: { host } });
  t.equal(refused.statusCode, 400, 'returnTo over 2,048 bytes: 400');
  t.equal(refused.json().code, 'invalid_request');
  t.notOk(refused.headers['set-cookie'], 'no transaction cookie for a refused login');
  // Bytes, not characters: 1,025 two-byte characters are 2,051 bytes.
  const multibyte = await stack.gateway.app.inject({ method: 'GET', url: `/auth/login?returnTo=${encodeURIComponent(`/${'é'.repeat(1025)}`)}`, headers: { host } });
  t.equal(multibyte.statusCode, 400, 'returnTo over 2,048 UTF-8 bytes: 400');

  // Values at the limit, some of them characters that grow threefold when percent-encoded.
  const longValues = [`/${'a'.repeat(2047)}`, `/${'"'.repeat(2047)}`, `/a${'é'.repeat(1023)}`, `/p?${'q'.repeat(2045)}`];
  t.ok(longValues.every((v) => Buffer.byteLength(v) === 2048), 'every value is exactly at the limit');
  const browser = new Browser();
  for (let i = 0; i < 50; i++) {
    const value = longValues[i % longValues.length]!;
    const started = await browser.navigate(`${stack.publicUrl}/auth/login?returnTo=${encodeURIComponent(value)}`);
    if (started.status !== 200) t.fail(`login ${i} did not reach the provider: ${started.status}`);
  }
  const header = browser.cookies(stack.publicUrl).map((c) => `${c.name}=${c.value}`).join('; ');
  t.ok(Buffer.byteLength(header) < 6 * 1024, `Cookie header after 50 logins: ${Buffer.byteLength(header)} bytes, well under 8 KB`);
  for (const c of browser.cookies(stack.publicUrl)) t.ok(c.name.length + c.value.length <= 4096, `${c.name}: within 4096 bytes`);

  const final = await loginAtLookalike(browser, `${stack.publicUrl}/auth/login?returnTo=${encodeURIComponent(longValues[0]!)}`, { pid: user.pid });
  t.equal(new URL(final.url).origin, stack.publicUrl, 'the login lands back on the tenant');
  const session = await browser.fetch(`${stack.publicUrl}/auth/session`);
  t.equal(session.status, 200);
  t.equal(JSON.parse(session.body).authenticated, true, 'the user can still log in');
  const afterLogin = browser.cookies(stack.publicUrl).map((c) => `${c.name}=${c.value}`).join('; ');
  t.ok(Buffer.byteLength(afterLogin) < 8 * 1024, `Cookie header after the login: ${Buffer.byteLength(afterLogin)} bytes`);
});

// Finding "405 not 400": a GET carrying Content-Type (with or without a body) to a POST-only route was reported
// to answer 400. RFC 9110 section 15.5.6: a method the target does not support gets 405 with Allow, whatever the
// request carries. The method check runs in onRequest, before Fastify looks at the body (it treats GET as
// bodyless and never calls a content-type parser for it), so this pins that order.
t.test('405 not 400: a GET with Content-Type to a POST-only proxied route answers 405 with Allow', async (t) => {
  const stack = await startStack(t, { upstreams: true });
  const port = Number(new URL(stack.publicUrl).port);
  const head = `GET /mva/validering HTTP/1.1\r\nHost: localhost:${port}\r\nX-CSRF: 1\r\nCookie: bff=x\r\nConnection: close\r\n`;
  const requests: Record<string, string> = {
    'no body, content-type: application/json': `${head}Content-Type: application/json\r\n\r\n`,
    'content-length body': `${head}Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}`,
    'chunked body': `${head}Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n`,
    'empty content-type': `${head}Content-Type:\r\n\r\n`,
    'invalid media type': `${head}Content-Type: not a type\r\nContent-Length: 1\r\n\r\nx`,
  };
  for (const [name, raw] of Object.entries(requests)) {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(raw);
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    const [headText = '', body = ''] = Buffer.concat(chunks).toString('utf8').split('\r\n\r\n');
    t.match(headText, /^HTTP\/1\.1 405 /, `${name}: 405`);
    t.match(headText, /\r\nallow: POST\r\n/i, `${name}: Allow: POST`);
    t.match(body, /"code":"method_not_allowed"/, `${name}: method_not_allowed`);
  }
  t.equal(stack.skatteetaten!.requests.length, 0, 'nothing reached the upstream');
});

// Finding "token work before the CSRF check": a first-party top-level navigation without X-CSRF was let through
// the CSRF step only so that, without a session, it could be sent to the login page; but it then asked for the
// bearer, which refreshes an expired access token (or exchanges it for an Altinn token), only to be refused with
// 403 afterwards. OWASP ASVS 5.0 V3.5 (cross-origin request forgery defences run before the request has any
// effect): the refused request may learn whether there is a live session, nothing more.
t.test('a same-origin navigation without X-CSRF is refused before any refresh or exchange runs', async (t) => {
  const ttl = 2;
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: ttl } });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  await new Promise((resolve) => setTimeout(resolve, ttl * 1000 + 200));

  const refreshesBefore = stack.op.stats.refreshGrants;
  const exchangesBefore = stack.altinn!.stats.exchanges;
  for (const initiator of [stack.publicUrl, undefined]) {
    for (const path of ['/mva/echo/report.pdf', '/mva/innsending/instances/1/pdf']) {
      const answer = await browser.navigate(`${stack.publicUrl}${path}`, initiator === undefined ? {} : { initiator });
      t.equal(answer.status, 403, `${path}, Sec-Fetch-Site ${initiator ? 'same-origin' : 'none'}: 403`);
      t.equal(JSON.parse(answer.body).code, 'csrf_failed');
    }
  }
  t.equal(stack.op.stats.refreshGrants, refreshesBefore, 'no refresh ran for the refused navigations');
  t.equal(stack.audit('token.refresh').length, 0, 'no token.refresh audit line');
  t.equal(stack.altinn!.stats.exchanges, exchangesBefore, 'no Altinn exchange ran');
  t.same(stack.skatteetaten!.requests, [], 'nothing reached the upstream');

  // The access token really was due: the same request with X-CSRF refreshes it.
  const api = await browser.fetch(`${stack.publicUrl}/mva/echo/report.pdf`, { headers: { 'x-csrf': '1' } });
  t.equal(api.status, 200);
  t.equal(stack.op.stats.refreshGrants, refreshesBefore + 1, 'an API call with X-CSRF refreshes');

  // Without a session the navigation still goes to the login page.
  const stranger = new Browser();
  const redirected = await stranger.navigate(`${stack.publicUrl}/mva/echo/report.pdf`, { initiator: stack.publicUrl });
  t.equal(new URL(stranger.history[0]!.headers.get('location')!, stack.publicUrl).pathname, '/auth/login', 'no session: redirect to the login');
  t.equal(redirected.status, 200, 'and on to the provider');
});

// Finding "monitoring is public": the public /readyz told anyone the session store's state and each tenant's
// provider state, and /metrics could be read on the public port. OWASP ASVS 5.0 V13.4 (no unneeded information
// from operational endpoints); contract "Limits and hygiene". The detail belongs on the internal listener.
t.test('monitoring is not public: /readyz says only ready or not, the detail is on the internal listener', async (t) => {
  const metricsPort = await freePort();
  const stack = await startStack(t, { server: { metricsPort } });
  const internal = await startMetricsServer(stack.gateway.core, '127.0.0.1', metricsPort);
  t.teardown(() => internal.close());

  const ready = await fetch(`${stack.publicUrl}/readyz`);
  t.equal(ready.status, 200);
  t.equal(ready.headers.get('cache-control'), 'no-store');
  t.same(await ready.json(), { status: 'ready' }, 'public /readyz: the status and nothing else');
  const detail = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
  t.equal(detail.status, 200);
  t.equal(detail.headers.get('cache-control'), 'no-store');
  t.same(await detail.json(), { status: 'ready', store: 'ready', tenants: { test: { idporten: 'ready' } } }, 'internal /readyz: store and tenants');

  const publicMetrics = await fetch(`${stack.publicUrl}/metrics`);
  t.equal(publicMetrics.status, 404, 'no /metrics on the public port');
  t.match(publicMetrics.headers.get('content-type'), /^application\/problem\+json/);
  t.match(await publicMetrics.text(), /"code":"route_not_found"/);
  const internalMetrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  t.equal(internalMetrics.status, 200);
  t.match(await internalMetrics.text(), /bff_/, '/metrics on the internal listener');

  // Not ready: the public answer still names nothing.
  stack.gateway.core.lifecycle.sessions.ping = async () => {
    throw new Error('store at 10.0.0.5:6379 is down');
  };
  const notReady = await fetch(`${stack.publicUrl}/readyz`);
  t.equal(notReady.status, 503);
  t.same(await notReady.json(), { status: 'not_ready' });
  const notReadyDetail = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
  t.equal(notReadyDetail.status, 503);
  t.match(await notReadyDetail.json(), { status: 'not_ready', store: 'unreachable' });
});

// Finding "slow clients are unbounded": server.requestTimeout / server.headersTimeout were read from the config
// but never reached Node's server, so a client trickling its headers (slowloris) held a connection for as long
// as it liked. OWASP ASVS 5.0 V13 (resource limits); RFC 9110 section 15.5.9 (408 Request Timeout).
t.test('slow clients are bounded: a client trickling headers is cut off after server.headersTimeout', async (t) => {
  const stack = await startStack(t, { server: { requestTimeout: '3s', headersTimeout: '1s' } });
  t.equal(stack.gateway.app.server.headersTimeout, 1000, 'Node server headersTimeout from the config');
  t.equal(stack.gateway.app.server.requestTimeout, 3000, 'Node server requestTimeout from the config');
  const port = Number(new URL(stack.publicUrl).port);
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const started = Date.now();
  socket.write(`GET /healthz HTTP/1.1\r\nHost: localhost:${port}\r\n`);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const trickle = setInterval(() => socket.write(`X-Slow-${Date.now()}: 1\r\n`), 200);
  const closed = once(socket, 'close').then(() => Date.now() - started);
  const deadline = new Promise<number>((resolve) => setTimeout(() => resolve(-1), 5000));
  const elapsed = await Promise.race([closed, deadline]);
  clearInterval(trickle);
  socket.destroy();
  t.ok(elapsed > 0, `the connection was closed (after ${elapsed} ms)`);
  t.ok(elapsed >= 900 && elapsed < 3000, 'after about headersTimeout, well before requestTimeout');
  t.match(received, /^(HTTP\/1\.1 408 |$)/, 'answered 408, or closed without an answer');
  t.equal((await fetch(`${stack.publicUrl}/healthz`)).status, 200, 'other clients are served');
});
