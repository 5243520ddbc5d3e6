/**
 * Every 503 the gateway answers says when to try again: `Retry-After` in delta-seconds (RFC 9110 §10.2.3), on
 * RFC 9457 problem JSON and on the answers the gateway writes itself (the login's HTML pages, the back-channel
 * logout's OAuth error, /readyz, Fastify's answer while the server closes). Against real parts: real HTTP, a real
 * redis-server stopped or frozen, the ID-porten look-alike's token endpoint down, a provider that is not there.
 */
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { TEST_USERS } from '../demo/test-users.js';
import { freePort } from '../demo/free-port.js';
import { GatewayError, LockTimeoutError, RETRY_AFTER_SECONDS, type ErrorCode } from '../src/errors.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { PROBLEMS, sendError, type ProblemReply } from '../src/http/problem.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import { createRedisStore, DEFAULT_LOCK_LEASE_MS } from '../src/session/redis-store.js';
import type { SessionLock } from '../src/session/store.js';
import { TRACKED_READ_MAX_AGE_MS } from '../src/session/tracked-reads.js';
import { Browser, loginAtLookalike, type BrowserResponse } from './helpers/browser.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { captureLogger, startStack, type Stack } from './helpers/stack.js';

const user = TEST_USERS[0]!;
const api = { 'x-csrf': '1' };
const ADMIN_CREDENTIAL = 'an-admin-credential-that-is-long-enough-0123456789';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const skipWithoutRedis = redisMissingReason() ?? false;

async function login(stack: Stack) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  const loaded = await stack.gateway.core.lifecycle.sessions.load(browser.cookie('localhost', 'bff')?.value ?? '');
  if (loaded.state !== 'live') throw new Error('no session after login');
  return { browser, session: loaded.session };
}

/** A 503 with Retry-After: `seconds` (RFC 9110 §10.2.3: delta-seconds), and, for problem JSON, its code (RFC 9457). */
function assert503(t: Test, res: { status: number; headers: Headers; body: string }, seconds: number, code: ErrorCode | undefined, what: string): void {
  t.equal(res.status, 503, `${what}: 503`);
  t.equal(res.headers.get('retry-after'), String(seconds), `${what}: Retry-After: ${seconds}`);
  if (code === undefined) return;
  t.match(res.headers.get('content-type'), /^application\/problem\+json/, `${what}: problem JSON`);
  t.equal((JSON.parse(res.body) as { code: string }).code, code, `${what}: ${code}`);
}

/** A lock whose waiters give up after 300 ms instead of the default, so the tests need not wait long. */
const impatient = (lock: SessionLock): SessionLock => ({ withLock: (id, fn, opts) => lock.withLock(id, fn, { ...opts, waitMs: 300 }) });

/** Holds `id`'s lock on `lock` until the returned release is called. */
async function holdLock(lock: SessionLock, id: string): Promise<() => Promise<void>> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let taken!: () => void;
  const holding = new Promise<void>((resolve) => (taken = resolve));
  const holder = lock.withLock(id, async () => {
    taken();
    await released;
  });
  await holding;
  return async () => {
    release();
    await holder;
  };
}

t.test('the code table gives every 503 code a default Retry-After in whole seconds (RFC 9110 §10.2.3), and no other code one', async (t) => {
  const codes503 = Object.entries(PROBLEMS).filter(([, p]) => p.status === 503);
  t.same(codes503.map(([code]) => code).sort(), ['idp_unavailable', 'refresh_in_progress', 'store_unavailable', 'upstream_nonce_required'], 'the 503 codes as they stand');
  // The one 0: a DPoP upstream's nonce demand, already learnt, so the repeat may go at once (the contract's rule).
  const least = (code: string) => (code === 'upstream_nonce_required' || code === 'upstreamNonce' ? 0 : 1);
  for (const [code, problem] of Object.entries(PROBLEMS)) {
    if (problem.status === 503) t.ok(Number.isInteger(problem.retryAfterSeconds) && problem.retryAfterSeconds >= least(code), `${code}: ${problem.retryAfterSeconds} s`);
    // rate_limited (429) carries the limiter's own value; nothing else asks to try again by default.
    else t.equal(problem.retryAfterSeconds, undefined, `${code} (${problem.status}) has no default`);
  }
  for (const [cause, seconds] of Object.entries(RETRY_AFTER_SECONDS)) t.ok(Number.isInteger(seconds) && seconds >= least(cause), `${cause}: ${seconds} s`);
  t.equal(RETRY_AFTER_SECONDS.notReady, Math.max(RETRY_AFTER_SECONDS.store, RETRY_AFTER_SECONDS.idporten), 'a /readyz that is not ready names the longer wait, whatever the cause');
});

t.test("sendError: a GatewayError's own Retry-After wins over its code's default", async (t) => {
  const answer = (err: GatewayError) => {
    const headers = new Map<string, string>();
    const reply: ProblemReply = { code: () => reply, header: (name, value) => (headers.set(name, value), reply), send: () => undefined };
    sendError(reply, err);
    return headers.get('retry-after');
  };
  t.equal(answer(new GatewayError('store_unavailable', 'x')), String(RETRY_AFTER_SECONDS.store), "the code's default");
  t.equal(answer(new GatewayError('store_unavailable', 'x', { retryAfterSeconds: 7 })), '7', 'the error\'s own');
  t.equal(answer(new LockTimeoutError()), String(RETRY_AFTER_SECONDS.sessionLock), 'a lock timeout without a value of its own');
  t.equal(answer(new LockTimeoutError('held', 4)), '4', 'a lock timeout that names its lease');
  t.equal(answer(new GatewayError('internal_error', 'x')), undefined, 'a 500 asks for no retry');
});

t.test('store_unavailable: Redis frozen or down, every answer that needs the store is 503 with Retry-After (RFC 9110 §10.2.3)', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t);
  const metricsPort = await freePort();
  const stack = await startStack(t, {
    upstreams: true,
    session: { store: { type: 'redis', url: redis.url, keyPrefix: 'bff-retry:' } },
    server: { metricsPort, admin: { credential: ADMIN_CREDENTIAL } },
  });
  const internal = await startMetricsServer(stack.gateway.core, '127.0.0.1', metricsPort);
  t.teardown(() => internal.close());
  const { browser, session } = await login(stack);
  const seconds = RETRY_AFTER_SECONDS.store;

  // Frozen (SIGSTOP): connections stay open but nothing answers; the command times out. The session's last read,
  // which this instance may serve again for a moment, has run out first.
  redis.pause();
  await sleep(TRACKED_READ_MAX_AGE_MS + 100);
  assert503(t, await browser.fetch(`${stack.publicUrl}/auth/session`), seconds, 'store_unavailable', 'frozen: GET /auth/session');
  redis.resume();
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'thawed: the session works again');

  // Down (killed): the client fails fast while it reconnects.
  await redis.stop();
  const page = (path: string) => browser.fetch(`${stack.publicUrl}${path}`, { headers: api });
  assert503(t, await page('/auth/session'), seconds, 'store_unavailable', 'down: GET /auth/session');
  assert503(t, await page('/auth/sessions'), seconds, 'store_unavailable', 'down: GET /auth/sessions');
  assert503(t, await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api }), seconds, 'store_unavailable', 'down: POST /auth/session/refresh');
  assert503(t, await page('/mva/echo/x'), seconds, 'store_unavailable', 'down: a proxied route');
  const sid = encodeURIComponent(session.data.user.sid ?? 'sid');
  assert503(t, await new Browser().fetch(`${stack.publicUrl}/auth/logout/frontchannel?iss=${encodeURIComponent(stack.op.issuer)}&sid=${sid}`), seconds, 'store_unavailable', 'down: front-channel logout');
  const admin = await fetch(`http://127.0.0.1:${metricsPort}/admin/tenants/test/users/${encodeURIComponent(session.data.user.sub)}/sessions`, {
    headers: { authorization: `Bearer ${ADMIN_CREDENTIAL}` },
  });
  assert503(t, { status: admin.status, headers: admin.headers, body: await admin.text() }, seconds, 'store_unavailable', 'down: the internal listener\'s admin');

  // Readiness names no cause on the public port, so one value for any.
  assert503(t, await browser.fetch(`${stack.publicUrl}/readyz`), RETRY_AFTER_SECONDS.notReady, undefined, 'down: public /readyz');
  const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
  const detail = await ready.text();
  assert503(t, { status: ready.status, headers: ready.headers, body: detail }, RETRY_AFTER_SECONDS.notReady, undefined, 'down: internal /readyz');
  t.match(JSON.parse(detail), { store: 'unreachable' });
});

t.test('idp_unavailable: the look-alike\'s token endpoint down, each answer is 503 with Retry-After (RFC 9110 §10.2.3)', async (t) => {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 2 } });
  const { browser } = await login(stack);
  const loggedInAt = Date.now();
  const seconds = RETRY_AFTER_SECONDS.idporten;
  stack.op.setTokenEndpointDown(true);

  // A login whose code cannot be exchanged: the callback's HTML page.
  const other = new Browser();
  const form = await other.navigate(`${stack.publicUrl}/auth/login`);
  const callback: BrowserResponse = await other.followAutoSubmit(await other.submitForm(form.body, form.url, 'login-form', { pid: user.pid }));
  t.equal(new URL(callback.url).pathname, '/auth/callback', 'the answer is the callback\'s');
  assert503(t, callback, seconds, undefined, 'GET /auth/callback (HTML)');
  t.match(callback.headers.get('content-type'), /^text\/html/);

  // The first session's token expires: no refresh can be had.
  await sleep(Math.max(0, loggedInAt + 2_100 - Date.now()));
  assert503(t, await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: api }), seconds, 'idp_unavailable', 'a proxied route');
  assert503(t, await browser.fetch(`${stack.publicUrl}/auth/session/refresh`, { method: 'POST', headers: api }), seconds, 'idp_unavailable', 'POST /auth/session/refresh');

  stack.op.setTokenEndpointDown(false);
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/x`, { headers: api })).status, 200, 'and the session recovers');
});

t.test('idp_unavailable: a provider that never answered, login, back-channel logout and /readyz are 503 with Retry-After (RFC 9110 §10.2.3)', async (t) => {
  const stack = await startStack(t, { idporten: { issuer: `http://127.0.0.1:${await freePort()}` } });
  const seconds = RETRY_AFTER_SECONDS.idporten;
  const browser = new Browser();

  const page = await browser.navigate(`${stack.publicUrl}/auth/login`);
  assert503(t, page, seconds, undefined, 'GET /auth/login, a navigation (HTML)');
  t.match(page.headers.get('content-type'), /^text\/html/);
  assert503(t, await browser.fetch(`${stack.publicUrl}/auth/login`), seconds, 'idp_unavailable', 'GET /auth/login, a fetch');

  const backchannel = await fetch(`${stack.publicUrl}/auth/logout/backchannel`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'logout_token=a.b.c',
  });
  assert503(t, { status: backchannel.status, headers: backchannel.headers, body: '' }, seconds, undefined, 'POST /auth/logout/backchannel');
  t.same(await backchannel.json(), { error: 'temporarily_unavailable' }, 'the OAuth-style error (OIDC Back-Channel Logout 1.0 §2.8)');

  assert503(t, await browser.fetch(`${stack.publicUrl}/readyz`), RETRY_AFTER_SECONDS.notReady, undefined, 'GET /readyz');
});

t.test('refresh_in_progress: a lock held in this process answers with the code\'s default Retry-After (RFC 9110 §10.2.3)', async (t) => {
  const lock = new MemorySessionLock();
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 2 }, appDeps: { store: new MemorySessionStore(1000), lock: impatient(lock) } });
  const { browser, session } = await login(stack);
  await sleep(2_100);
  const release = await holdLock(lock, session.id);
  assert503(t, await browser.fetch(`${stack.publicUrl}/mva/echo/busy`, { headers: api }), RETRY_AFTER_SECONDS.sessionLock, 'refresh_in_progress', 'a proxied route');
  await release();
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/free`, { headers: api })).status, 200, 'the lock free, the session refreshes');
});

t.test('refresh_in_progress: a lock another instance holds on Redis names its lease, which wins over the default', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t);
  const connection = { url: redis.url, keyPrefix: 'bff-lease:' };
  const mine = await createRedisStore(connection, captureLogger().logger);
  const theirs = await createRedisStore(connection, captureLogger().logger);
  t.teardown(() => theirs.store.close());
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: 2 }, appDeps: { store: mine.store, lock: impatient(mine.lock) } });
  const { browser, session } = await login(stack);
  await sleep(2_100);
  const release = await holdLock(theirs.lock, session.id);
  const lease = Math.ceil(DEFAULT_LOCK_LEASE_MS / 1000);
  t.not(lease, RETRY_AFTER_SECONDS.sessionLock, 'the lease differs from the default, so the test tells them apart');
  assert503(t, await browser.fetch(`${stack.publicUrl}/mva/echo/busy`, { headers: api }), lease, 'refresh_in_progress', 'a proxied route');
  await release();
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/free`, { headers: api })).status, 200, 'the lock free, the session refreshes');
});

t.test('while the server closes, Fastify\'s own 503 carries Retry-After (RFC 9110 §10.2.3) and closes the connection', async (t) => {
  const stack = await startStack(t, { idporten: { issuer: `http://127.0.0.1:${await freePort()}` } });
  const { server } = stack.gateway.app;
  const port = Number(new URL(stack.publicUrl).port);
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));

  // A request under way when the close begins (its body not all sent) keeps its connection open; a second one,
  // pipelined behind it once the server has stopped listening, arrives while the server closes.
  const seen = new Promise<void>((resolve) => server.once('request', () => resolve()));
  const host = `Host: localhost:${port}\r\n`;
  socket.write(`POST /auth/logout HTTP/1.1\r\n${host}X-CSRF: 1\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=`);
  await seen;
  const closed = stack.gateway.close();
  while (server.listening) await sleep(5);
  // The body's last byte, then the next request.
  socket.write(`bGET /healthz HTTP/1.1\r\n${host}\r\n`);
  await ended;
  await closed;

  const [first = '', second = ''] = answer.split(/(?=HTTP\/1\.1 )/);
  t.match(first, /^HTTP\/1\.1 200 /, 'the request under way is answered as usual');
  const [head = ''] = second.split('\r\n\r\n');
  t.match(head, /^HTTP\/1\.1 503 /, 'the one that arrived while closing: 503');
  t.match(head, new RegExp(`\\r\\nretry-after: ${RETRY_AFTER_SECONDS.closing}\\r\\n`, 'i'), `Retry-After: ${RETRY_AFTER_SECONDS.closing}`);
  t.match(head, /\r\nconnection: close\r\n/i, 'Connection: close: the retry goes over a new connection');
});
