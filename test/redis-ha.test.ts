/**
 * The gateway on one real Redis server (its request path reading through client tracking), on a real Redis Cluster (three masters, a replica each) and behind a real Sentinel set-up
 * (primary, replica, one Sentinel): two instances share sessions, refresh once between them, log out by
 * sid, and ride out the failover of the master holding the session (503 store_unavailable meanwhile, never
 * a 500; the session works again after the promotion).
 */
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike, type BrowserResponse, type FetchInit } from './helpers/browser.js';
import { redisMissingReason, startRedis, startRedisCluster, startRedisSentinel, type RedisServer } from './helpers/redis.js';
import { startPeerGateway, startStack, type Stack } from './helpers/stack.js';

const user = TEST_USERS[1]!;
const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const missing = redisMissingReason();
const skip = missing ?? false;
const TTL = 4;

interface Pair {
  stack: Stack;
  a: (browser: Browser, path: string, init?: FetchInit) => Promise<BrowserResponse>;
  b: (browser: Browser, path: string, init?: FetchInit) => Promise<BrowserResponse>;
  audit(event: string): Record<string, unknown>[];
  /** Log lines of both instances with this message. */
  logged(msg: string): Record<string, unknown>[];
}

async function twoInstances(t: Test, store: Record<string, unknown>): Promise<Pair> {
  const stack = await startStack(t, { upstreams: true, op: { accessTokenTtlSeconds: TTL }, session: { store: { type: 'redis', ...store } } });
  const { port: portB, logs: linesB } = await startPeerGateway(t, stack);
  const publicHost = new URL(stack.publicUrl).host;
  return {
    stack,
    a: (browser, path, init = {}) => browser.fetch(`${stack.publicUrl}${path}`, init),
    b: (browser, path, init = {}) =>
      browser.fetch(`http://localhost:${portB}${path}`, { ...init, origin: stack.publicUrl, headers: { ...init.headers, host: publicHost } }),
    audit: (event) => [...stack.logs, ...linesB].filter((l) => l.audit === true && l.event === event),
    logged: (msg) => [...stack.logs, ...linesB].filter((l) => l.msg === msg),
  };
}

async function login(pair: Pair) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${pair.stack.publicUrl}/auth/login`, { pid: user.pid });
  const cookie = browser.cookie('localhost', 'bff')!;
  const loaded = await pair.stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('no live session after login');
  return { browser, session: loaded.session };
}

const code = (r: BrowserResponse): unknown => {
  try {
    return (JSON.parse(r.body) as { code?: unknown }).code;
  } catch {
    return undefined;
  }
};

/** Shared sessions, one refresh across both instances, front-channel logout by sid delivered to B. */
async function sharedSessions(t: Test, pair: Pair): Promise<void> {
  const { browser, session } = await login(pair);
  t.equal((await pair.b(browser, '/auth/session')).status, 200, 'a login on A works on B');
  t.equal((await pair.b(browser, '/mva/echo/b', { headers: api })).status, 200, 'B proxies with it');
  t.equal((await pair.a(new Browser(), '/readyz')).status, 200, 'ready: the readiness script runs');

  await sleep(TTL * 1000 + 100);
  const before = pair.stack.op.stats.refreshGrants;
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? pair.b : pair.a)(browser, `/mva/echo/${i}`, { headers: api })));
  t.same([...new Set(results.map((r) => r.status))], [200], 'all 40 requests after expiry succeed');
  t.equal(pair.stack.op.stats.refreshGrants - before, 1, 'with exactly one refresh grant across both instances');
  t.equal(pair.stack.op.stats.refreshGrantErrors, 0);

  const query = `iss=${encodeURIComponent(pair.stack.op.issuer)}&sid=${encodeURIComponent(session.data.user.sid!)}`;
  t.equal((await pair.b(new Browser(), `/auth/logout/frontchannel?${query}`)).status, 200);
  t.equal((await pair.a(browser, '/auth/session')).status, 401, 'logout by sid on B ended it on A');
  t.equal(pair.audit('logout').filter((l) => l.channel === 'frontchannel').length, 1);
}

/** A logout on B ends the session on A at A's next request, for a copy of the cookie too (A had served it a moment ago). */
async function logoutSeenAcross(t: Test, pair: Pair): Promise<void> {
  const { browser } = await login(pair);
  // A copy of the cookie, as someone who stole it would hold it: the browser itself drops its own at logout.
  const stolen = { ...api, cookie: `bff=${browser.cookie('localhost', 'bff')!.value}` };
  for (let i = 0; i < 5; i += 1) t.equal((await pair.a(new Browser(), `/mva/echo/${i}`, { headers: stolen })).status, 200, 'A serves the session (from its kept read after the first)');
  t.ok((await pair.b(browser, '/auth/logout', { method: 'POST', headers: { ...api, accept: 'application/json' } })).status < 400, 'logged out on B');
  const after = await pair.a(new Browser(), '/mva/echo/after', { headers: stolen });
  t.equal(after.status, 401, 'A refuses the next request with the old cookie');
  t.equal(code(after), 'login_required', 'as for no session at all');
}

/** Whether a replica of the server at `url` acknowledged all its writes (WAIT), asked again for up to 20 s. */
async function replicaHasAll(url: string): Promise<boolean> {
  const client = new Redis(url);
  try {
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      if ((await client.wait(1, 1_000)) >= 1) return true;
    }
    return false;
  } finally {
    client.disconnect();
  }
}

/** Polls the session through both instances from the kill until it works again; every answer meanwhile is 503 store_unavailable. */
async function rideOutFailover(t: Test, pair: Pair, browser: Browser, kill: () => Promise<void>): Promise<void> {
  await kill();
  const seen: string[] = [];
  const deadline = Date.now() + 30_000;
  // Back means settled: both instances answer in three rounds in a row. A client may reconnect once more when
  // the Sentinels announce the new primary; a request caught in that moment gets 503 too, and is counted.
  let inARow = 0;
  while (Date.now() < deadline && inARow < 3) {
    const answers = await Promise.all([pair.a(browser, '/auth/session'), pair.b(browser, '/mva/echo/failover', { headers: api })]);
    for (const r of answers) seen.push(r.status === 200 ? '200' : `${r.status} ${String(code(r))}`);
    inARow = answers.every((r) => r.status === 200) ? inARow + 1 : 0;
    await sleep(100);
  }
  const back = inARow >= 3;
  const outage = seen.filter((s) => s !== '200');
  t.ok(back, `the session works again after the failover (${seen.length} requests, ${outage.length} during the outage)`);
  t.ok(outage.length > 0, 'the outage was seen');
  t.same([...new Set(outage)], ['503 store_unavailable'], 'every request meanwhile got 503 store_unavailable, none a 500');
  t.equal((await pair.b(browser, '/auth/session')).status, 200, 'B too');
}

t.test('Redis, one server: the request path reads through client tracking', { skip }, async (t) => {
  const redis = await startRedis(t);
  const pair = await twoInstances(t, { url: redis.url, keyPrefix: 'bff-one:' });
  const deadline = Date.now() + 10_000;
  while (pair.logged('session reads are kept between changes (client tracking on)').length < 2 && Date.now() < deadline) await sleep(10);
  t.equal(pair.logged('session reads are kept between changes (client tracking on)').length, 2, 'both instances keep their reads between changes');
  // Each step below reads on one instance right after the other changed the session: a refresh across both,
  // and a logout on B seen on A at its next request.
  await t.test('shared sessions, one refresh, logout by sid', (t) => sharedSessions(t, pair));
  await t.test('a logout on one instance ends the session on the other at its next request', (t) => logoutSeenAcross(t, pair));
});

t.test('Redis Cluster: three masters with a replica each', { skip }, async (t) => {
  const cluster = await startRedisCluster(t, { replicasPerMaster: 1 });
  const keyPrefix = 'bff-ha:';
  const pair = await twoInstances(t, { cluster: { nodes: cluster.nodes }, keyPrefix });
  await t.test('shared sessions, one refresh, logout by sid', (t) => sharedSessions(t, pair));

  await t.test('killing the master of the session\'s slot: 503 until its replica takes over, then the session works again', async (t) => {
    const { browser, session } = await login(pair);
    const master = await cluster.masterFor(`${keyPrefix}{${session.id}}:s`);
    // The replica has the session before its master dies.
    t.ok(await replicaHasAll(master.url), 'the replica acknowledged every write before the master dies');
    await rideOutFailover(t, pair, browser, () => master.stop());
    t.not((await cluster.masterFor(`${keyPrefix}{${session.id}}:s`)).port, master.port, 'a replica serves the slot now');
  });
});

t.test('Redis Sentinel: primary, replica, one Sentinel', { skip }, async (t) => {
  const sentinel = await startRedisSentinel(t);
  const pair = await twoInstances(t, { sentinel: { nodes: sentinel.nodes, name: sentinel.name }, keyPrefix: 'bff-ha:' });
  await t.test('shared sessions, one refresh, logout by sid', (t) => sharedSessions(t, pair));

  await t.test('SIGKILL of the primary: 503 until Sentinel promotes the replica, then the session works again', async (t) => {
    const { browser } = await login(pair);
    const trackingOn = () => pair.logged('session reads are kept between changes (client tracking on)').length;
    const trackedBefore = trackingOn();
    const primary: RedisServer = sentinel.master;
    t.ok(await replicaHasAll(primary.url), 'the replica acknowledged every write before the primary dies');
    // A rotated refresh token counts only once a replica has it: with the only replica promoted, refreshes wait
    // (503 store_unavailable) until the old primary is back, and Sentinel makes it the new primary's replica.
    let restarted: Promise<void> | undefined;
    await rideOutFailover(t, pair, browser, async () => {
      await primary.stop();
      restarted = (async () => {
        while ((await sentinel.primaryPort()) !== sentinel.replica.port) await sleep(100);
        await primary.start();
      })();
    });
    await restarted;
    t.equal(await sentinel.primaryPort(), sentinel.replica.port, 'Sentinel names the replica as the primary');
    // Both instances set tracking up again on the promoted replica; a kept read still ends with a logout elsewhere.
    const deadline = Date.now() + 10_000;
    while (trackingOn() < trackedBefore + 2 && Date.now() < deadline) await sleep(20);
    t.ok(trackingOn() >= trackedBefore + 2, 'both instances track their reads again after the failover');
    await logoutSeenAcross(t, pair);
  });
});
