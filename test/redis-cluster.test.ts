/**
 * Two gateway instances behind one public origin, sharing one Redis: what a horizontally scaled deployment
 * relies on. Instance A listens on the public port; instance B is built from the same normalised config with
 * its own Redis connection on another port, and is reached with the public Host header (the tenant is chosen
 * by Host), as a load balancer would forward it.
 */
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { buildApp, type AppDeps } from '../src/app.js';
import { fingerprint } from '../src/audit/fingerprint.js';
import { TEST_USERS } from '../demo/test-users.js';
import { createRedisStore } from '../src/session/redis-store.js';
import type { SessionStore } from '../src/session/store.js';
import { HoldingStore } from './helpers/holding-store.js';
import { Browser, loginAtLookalike, type BrowserResponse, type FetchInit } from './helpers/browser.js';
import { redisMissingReason, startRedis, type RedisServer } from './helpers/redis.js';
import { captureLogger, startStack, type Stack } from './helpers/stack.js';
import { freePort } from '../demo/free-port.js';
import { startMetricsServer } from '../src/http/metrics-server.js';

const user = TEST_USERS[1]!;
const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const missing = redisMissingReason();
const skip = missing ?? false;
const redis = missing ? undefined : await startRedis(t);

interface Instance {
  name: 'A' | 'B';
  /** An SPA fetch from the public origin that the load balancer sent to this instance. */
  fetch(browser: Browser, path: string, init?: FetchInit): Promise<BrowserResponse>;
}

interface Cluster {
  stack: Stack;
  a: Instance;
  b: Instance;
  /** Audit lines of both instances. */
  audit(event: string): Record<string, unknown>[];
}

let clusters = 0;

interface ClusterOptions {
  accessTokenTtlSeconds?: number;
  /** The look-alike holds each successful refresh answer this long (the token is rotated already). */
  refreshAnswerDelayMs?: number;
  /** Wraps instance B's own Redis store (to hold one of its writes at a chosen moment). */
  wrapStoreB?: (store: SessionStore) => SessionStore;
}

async function startCluster(t: Test, server: RedisServer, opts: ClusterOptions = {}): Promise<Cluster> {
  const keyPrefix = `bff-cluster-${(clusters += 1)}:`;
  const stack = await startStack(t, {
    upstreams: true,
    op: {
      ...(opts.accessTokenTtlSeconds === undefined ? {} : { accessTokenTtlSeconds: opts.accessTokenTtlSeconds }),
      ...(opts.refreshAnswerDelayMs === undefined ? {} : { refreshAnswerDelayMs: opts.refreshAnswerDelayMs }),
    },
    session: { store: { type: 'redis', url: server.url, keyPrefix } },
  });
  // Same config, so buildApp gives B its own Redis connection (createRedisStore) to the same keys.
  const logsB = captureLogger();
  const depsB: AppDeps = { logger: logsB.logger };
  if (opts.wrapStoreB) {
    const { store, lock } = await createRedisStore({ url: server.url, keyPrefix }, logsB.logger);
    Object.assign(depsB, { store: opts.wrapStoreB(store), lock });
  }
  const gatewayB = await buildApp(stack.gateway.core.config, depsB);
  await gatewayB.app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => gatewayB.close());
  await gatewayB.warmUp();
  const portB = (gatewayB.app.server.address() as AddressInfo).port;
  const publicHost = new URL(stack.publicUrl).host;

  const a: Instance = { name: 'A', fetch: (browser, path, init = {}) => browser.fetch(`${stack.publicUrl}${path}`, init) };
  const b: Instance = {
    name: 'B',
    // The browser believes it talks to the public origin: its cookies (scoped by host, not port) go along,
    // and Origin, when sent, is the public one.
    fetch: (browser, path, init = {}) =>
      browser.fetch(`http://localhost:${portB}${path}`, { ...init, origin: stack.publicUrl, headers: { ...init.headers, host: publicHost } }),
  };
  const audit = (event: string) =>
    [...stack.logs, ...logsB.lines].filter((line) => line.audit === true && line.event === event);
  return { stack, a, b, audit };
}

async function login(cluster: Cluster) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${cluster.stack.publicUrl}/auth/login`, { pid: user.pid });
  const cookieValue = browser.cookie('localhost', 'bff')?.value;
  if (!cookieValue) throw new Error('login set no session cookie');
  const loaded = await cluster.stack.gateway.core.lifecycle.sessions.load(cookieValue);
  if (loaded.state !== 'live') throw new Error('no live session after login');
  return { browser, cookieValue, session: loaded.session };
}

/** Requests from a browser that kept this session cookie although the gateway told it to clear it. */
function keptCookie(cookieValue: string) {
  const browser = new Browser();
  return (instance: Instance, path: string, init: FetchInit = {}) =>
    instance.fetch(browser, path, { ...init, headers: { ...init.headers, cookie: `bff=${cookieValue}` } });
}

/** The bearer the echo upstream received (as its fingerprint), or the status when the request failed. */
function bearerSeen(response: BrowserResponse): string {
  if (response.status !== 200) return `status ${response.status}`;
  const echoed = JSON.parse(response.body) as { headers: Record<string, string> };
  return echoed.headers.authorization!.replace(/^Bearer /, '');
}

function problemCode(response: BrowserResponse): unknown {
  return (JSON.parse(response.body) as { code?: unknown }).code;
}

t.test('a session created by a login on A works on B', { skip }, async (t) => {
  const cluster = await startCluster(t, redis!);
  const { browser, session } = await login(cluster);
  const seen = await cluster.b.fetch(browser, '/auth/session');
  t.equal(seen.status, 200);
  t.equal(JSON.parse(seen.body).user.sub, session.data.user.sub, 'B knows the user A logged in');
  const proxied = await cluster.b.fetch(browser, '/mva/echo/from-b', { headers: api });
  t.equal(proxied.status, 200, 'B proxies with the session A created');
  t.equal(bearerSeen(proxied), `fingerprint:${fingerprint(session.data.tokens.accessToken)}`, 'with the access token A stored');
});

// Long enough that 200 requests through two instances, and the checks after them, finish on a busy machine
// before the refreshed token enters its own leeway (the last quarter of its lifetime, here 3 s): until then
// exactly one refresh is the only right answer (see token-refresh.test.ts).
const TTL = 12;

t.test('200 concurrent requests split across A and B right after expiry share exactly one refresh', { skip }, async (t) => {
  const cluster = await startCluster(t, redis!, { accessTokenTtlSeconds: TTL });
  const { stack } = cluster;
  const { browser, session } = await login(cluster);
  const first = session.data.tokens.accessToken;
  await sleep(TTL * 1000 + 100);
  const before = stack.op.stats.refreshGrants;
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => (i % 2 ? cluster.b : cluster.a).fetch(browser, `/mva/echo/item/${i}`, { headers: api })),
  );
  t.same([...new Set(results.map((r) => r.status))], [200], 'all 200 succeed');
  // RFC 6749 section 6 with rotation: the old refresh token is consumed by the first grant, so a second
  // grant from the other instance would have failed with invalid_grant.
  t.equal(stack.op.stats.refreshGrants - before, 1, 'exactly one refresh grant at the provider');
  t.equal(stack.op.stats.refreshGrantErrors, 0, 'no refresh token was presented twice');
  t.equal(cluster.audit('token.refresh').length, 1, 'one token.refresh audit line across both instances');
  const bearers = new Set(results.map(bearerSeen));
  t.equal(bearers.size, 1, 'both instances sent the same refreshed token upstream');
  const refreshed = [...bearers][0]!;
  t.not(refreshed, first, 'and it is a new token');

  for (const instance of [cluster.a, cluster.b, cluster.a, cluster.b]) {
    const later = await instance.fetch(browser, '/mva/echo/later', { headers: api });
    t.equal(later.status, 200);
    t.equal(bearerSeen(later), refreshed, `a later request on ${instance.name} uses the new token`);
  }
  t.equal(stack.op.stats.refreshGrants - before, 1, 'and triggers no further refresh');
});

t.test('logout on A ends the session on B, even for a browser that kept the cookie', { skip }, async (t) => {
  const cluster = await startCluster(t, redis!);
  const { browser, cookieValue } = await login(cluster);
  const kept = keptCookie(cookieValue);
  t.equal((await kept(cluster.b, '/auth/session')).status, 200, 'live on B before the logout');
  const logout = await cluster.a.fetch(browser, '/auth/logout', { method: 'POST', headers: { ...api, accept: 'application/json' } });
  t.equal(logout.status, 200);
  const afterSession = await kept(cluster.b, '/auth/session');
  t.equal(afterSession.status, 401);
  t.equal(problemCode(afterSession), 'login_required');
  const afterProxy = await kept(cluster.b, '/mva/echo/after-logout', { headers: api });
  t.equal(afterProxy.status, 401, 'B no longer proxies for it');
});

t.test('a refresh on A that stores its rotated tokens while a logout on B is between its read and its delete: B finds them and revokes them too', { skip }, async (t) => {
  let storeB!: HoldingStore;
  const cluster = await startCluster(t, redis!, { accessTokenTtlSeconds: 3, refreshAnswerDelayMs: 1_000, wrapStoreB: (store) => (storeB = new HoldingStore(store)) });
  const { browser, cookieValue } = await login(cluster);
  const { op } = cluster.stack;
  await sleep(3100);
  const grants = op.stats.refreshGrants;
  // A redeems the refresh token; the provider rotates it and holds its answer for a second.
  const refreshing = cluster.a.fetch(browser, '/mva/echo/racing-logout', { headers: api });
  while (op.stats.refreshGrants === grants) await sleep(10);
  // Meanwhile the user logs out on B: it reads the session (the old tokens), revokes them, and is held before the delete.
  const hold = storeB.holdNextDelete();
  const revocationsBefore = op.stats.revocations;
  const logout = cluster.b.fetch(browser, '/auth/logout', { method: 'POST', headers: { ...api, accept: 'application/json' } });
  await hold.reached;
  t.equal((await refreshing).status, 200, 'A stored the rotated tokens (over the version it redeemed) and served the request');
  const refreshed = cluster.audit('token.refresh').at(-1);
  hold.release();
  t.equal((await logout).status, 200);
  const line = cluster.audit('logout').at(-1);
  t.equal(line?.refreshToken, refreshed?.refreshToken, 'the logout ended the rotated refresh token, not only the one it read first');
  t.equal(op.stats.revocations - revocationsBefore, 4, 'both generations revoked: refresh and access token of each');
  for (const instance of [cluster.a, cluster.b]) {
    t.equal((await keptCookie(cookieValue)(instance, '/auth/session')).status, 401, `${instance.name}: the session is gone`);
  }
});

t.test('a logout on A while B is refreshing wins: B does not store the new tokens and the session stays ended', { skip }, async (t) => {
  let storeB!: HoldingStore;
  const cluster = await startCluster(t, redis!, { accessTokenTtlSeconds: 3, wrapStoreB: (store) => (storeB = new HoldingStore(store)) });
  const { browser, cookieValue } = await login(cluster);
  const before = cluster.stack.op.stats.refreshGrants;
  await sleep(3100);
  const hold = storeB.holdNextWrite();
  const pending = cluster.b.fetch(browser, '/mva/echo/during-logout', { headers: api });
  // B has the provider's new tokens and is about to store them; the user logs out on A right now.
  await hold.reached;
  t.equal(cluster.stack.op.stats.refreshGrants - before, 1, 'B completed its refresh grant');
  const logout = await cluster.a.fetch(browser, '/auth/logout', { method: 'POST', headers: { ...api, accept: 'application/json' } });
  t.equal(logout.status, 200);
  hold.release();
  const proxied = await pending;
  t.equal(proxied.status, 401, 'the request that triggered the refresh is not served');
  t.equal(problemCode(proxied), 'session_expired');
  const kept = keptCookie(cookieValue);
  for (const instance of [cluster.a, cluster.b]) {
    t.equal((await kept(instance, '/auth/session')).status, 401, `${instance.name}: the session stays ended`);
  }
  t.ok(
    cluster.audit('token.refresh.failure').some((l) => l.reason === 'session ended during refresh'),
    'the dropped tokens are audited',
  );
});

t.test('front-channel logout delivered to B ends a session created on A', { skip }, async (t) => {
  const cluster = await startCluster(t, redis!);
  const { browser, session } = await login(cluster);
  const sid = session.data.user.sid;
  t.type(sid, 'string', 'the ID token carried sid');
  // OIDC Front-Channel Logout 1.0 section 2: the provider loads the RP's URI with iss and sid, without our cookie.
  const iframe = new Browser();
  const query = `iss=${encodeURIComponent(cluster.stack.op.issuer)}&sid=${encodeURIComponent(sid!)}`;
  const res = await cluster.b.fetch(iframe, `/auth/logout/frontchannel?${query}`);
  t.equal(res.status, 200);
  t.equal((await cluster.a.fetch(browser, '/auth/session')).status, 401, 'gone on A');
  t.equal((await cluster.b.fetch(browser, '/auth/session')).status, 401, 'gone on B');
  t.equal(cluster.audit('logout').filter((l) => l.channel === 'frontchannel').length, 1);
});

t.test('Redis down: 503 store_unavailable on both instances, never a 500 or a hang; Redis back: works again', { skip }, async (t) => {
  const cluster = await startCluster(t, redis!);
  // A's internal listener, where /readyz names what is missing (the public one says only not_ready).
  const internalPort = await freePort();
  const internal = await startMetricsServer(cluster.stack.gateway.core, '127.0.0.1', internalPort);
  t.teardown(() => internal.close());
  const { browser } = await login(cluster);
  await redis!.stop();
  t.teardown(() => redis!.start().catch(() => undefined));

  const detail = await fetch(`http://127.0.0.1:${internalPort}/readyz`);
  t.equal(detail.status, 503);
  t.match(await detail.json(), { status: 'not_ready', store: 'unreachable' }, 'A: the internal /readyz says the store is unreachable');
  for (const instance of [cluster.a, cluster.b]) {
    const ready = await instance.fetch(new Browser(), '/readyz');
    t.equal(ready.status, 503, `${instance.name}: not ready`);
    t.same(JSON.parse(ready.body), { status: 'not_ready' }, `${instance.name}: the public /readyz names nothing`);
    const proxied = await instance.fetch(browser, '/mva/echo/down', { headers: api });
    t.equal(proxied.status, 503, `${instance.name}: proxied request gets 503`);
    t.match(proxied.headers.get('content-type'), /^application\/problem\+json/);
    t.equal(problemCode(proxied), 'store_unavailable');
    const session = await instance.fetch(browser, '/auth/session');
    t.equal(session.status, 503, `${instance.name}: /auth/session gets 503`);
    t.equal(problemCode(session), 'store_unavailable');
  }

  await redis!.start();
  for (const instance of [cluster.a, cluster.b]) await readyAgain(instance);
  // This Redis keeps nothing on disk: the restart lost the session, which reads as no session, not an error.
  t.equal((await cluster.a.fetch(browser, '/auth/session')).status, 401, 'the old session is gone');
  const again = await login(cluster);
  for (const instance of [cluster.a, cluster.b]) {
    const proxied = await instance.fetch(again.browser, '/mva/echo/back', { headers: api });
    t.equal(proxied.status, 200, `${instance.name}: proxies again after a new login`);
  }
});

/** Polls /readyz until the instance's Redis client has reconnected (it backs off up to 2 s). */
async function readyAgain(instance: Instance): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    if ((await instance.fetch(new Browser(), '/readyz')).status === 200) return;
    if (attempt >= 100) throw new Error(`${instance.name} did not become ready after Redis came back`);
    await sleep(100);
  }
}
