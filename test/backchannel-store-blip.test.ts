/**
 * ID-porten delivers a back-channel logout once and never retries it. A session store that is unreachable at
 * that moment must not let the session live on: the gateway refuses the session when it next sees it, and
 * keeps ending it in the background until the store is back — within a second of Redis answering, for every
 * instance, and, with `session.journalDir`, across a kill of the instance that accepted it. Also: what a reader
 * of Redis learns after a login.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { forkChild } from '../bench/ipc.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { JOURNAL_FILE } from '../src/tokens/logout-journal.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import type { SessionConfig } from '../src/config/types.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { sessionRecord } from './helpers/session-record.js';
import { redisMissingReason, startRedis, type RedisServer } from './helpers/redis.js';
import { captureLogger, startGateway, startStack, type Stack } from './helpers/stack.js';

const user = TEST_USERS[0]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const missing = redisMissingReason();
const skip = missing ?? false;
/**
 * From Redis answering again to the logout applied for every instance, the contract says 1 s; the bound here
 * leaves room for a machine shared with other test runs, and for the Redis client's own reconnect delay (ioredis
 * backs off between attempts: about 0.85 s after an 8 s outage, 2 s after a longer one). The measured times are printed.
 */
const APPLIED_BOUND_MS = 3_000;
/**
 * How long Redis stays down after the logout. Retries that back off (500 ms doubling up to 30 s, as before) applied
 * the logout 7.5 s after Redis answered again after an outage this long.
 */
const OUTAGE_AFTER_LOGOUT_MS = 8_000;

async function loggedIn(stack: Stack) {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: user.pid });
  const cookie = browser.cookie('localhost', 'bff');
  if (!cookie) throw new Error('no session cookie after login');
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookie.value);
  if (loaded.state !== 'live') throw new Error('session not live');
  return { browser, cookie, session: loaded.session };
}

async function waitFor(check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error('condition not met in time');
}

/** The user logs out at the provider, which delivers the logout token to the gateway once, now (OIDC BCL 1.0 section 2.5). */
async function logoutAtProvider(stack: Stack, browser: Browser): Promise<void> {
  const endSession = new URL(`${stack.op.issuer}/endsession`);
  endSession.searchParams.set('client_id', stack.clientId);
  endSession.searchParams.set('post_logout_redirect_uri', `${stack.publicUrl}/`);
  await browser.followAutoSubmit(await browser.navigate(endSession.toString()));
}

/**
 * Milliseconds from `since` until the session's record is gone from Redis (`exists` 0) and, when asked, until
 * `refused` holds; polled every 10 ms, for at most 15 s.
 */
async function whenEnded(since: number, exists: () => Promise<number>, refused?: () => Promise<boolean>): Promise<{ gone: number; refused: number }> {
  let gone: number | undefined;
  let refusedAt = refused ? undefined : 0;
  while ((gone === undefined || refusedAt === undefined) && Date.now() - since < 15_000) {
    if (gone === undefined && (await exists()) === 0) gone = Date.now() - since;
    if (refusedAt === undefined && (await refused!())) refusedAt = Date.now() - since;
    await sleep(10);
  }
  return { gone: gone ?? Infinity, refused: refusedAt ?? Infinity };
}

/**
 * A login through the stack's gateway, which then hands the public address to an instance in a process of its own
 * (with `session.journalDir` when `journal`); Redis stops, the provider delivers the logout to that instance, which
 * is killed (SIGKILL: no shutdown) while Redis is still down. Redis stays stopped; `client` is not connected yet.
 */
async function outageWithRestart(t: Test, opts: { journal: boolean }) {
  const redis = await startRedis(t, { persist: true });
  const keyPrefix = opts.journal ? 'bff-journal:' : 'bff-no-journal:';
  const journalDir = opts.journal ? t.testdir() : undefined;
  const stack = await startStack(t, { session: { store: { type: 'redis', url: redis.url, keyPrefix }, ...(journalDir ? { journalDir } : {}) } });
  const { browser, session } = await loggedIn(stack);
  await stack.gateway.close();
  const receiver = await forkChild(new URL('./helpers/gateway-process.ts', import.meta.url));
  t.teardown(() => receiver.kill());
  await receiver.call('startOnConfiguredPort', stack.rawConfig);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the instance in its own process serves the session');

  await redis.stop();
  await logoutAtProvider(stack, browser);
  await receiver.kill();
  return { stack, browser, session, client: raw(t, redis), keyPrefix, journalDir, redis };
}

/** The next instance on the public address, from the same configuration; its audit lines of logouts. */
async function nextInstance(t: Test, stack: Stack): Promise<{ audit: () => Record<string, unknown>[] }> {
  const logs = captureLogger();
  await startGateway(t, normaliseConfig(stack.rawConfig, {}), { logger: logs.logger });
  return { audit: () => logs.lines.filter((l) => l.audit === true && l.event === 'logout') };
}

function raw(t: Test, redis: RedisServer): Redis {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true });
  t.teardown(() => client.disconnect());
  return client;
}

/** Every key and everything stored under it, as one text (what a reader of Redis sees). */
async function dump(client: Redis, prefix: string): Promise<string> {
  const parts: string[] = [];
  for (const key of await client.keys(`${prefix}*`)) {
    const type = await client.type(key);
    const value =
      type === 'hash' ? await client.hgetall(key) : type === 'set' ? await client.smembers(key) : type === 'string' ? await client.get(key) : type;
    parts.push(`${key} ${JSON.stringify(value)}`);
  }
  return parts.join('\n');
}

t.test('a back-channel logout that arrives while Redis is down still ends the session once Redis is back', { skip }, async (t) => {
  // Persistent, so the session survives the outage: only the logout can end it.
  const redis = await startRedis(t, { persist: true });
  const keyPrefix = 'bff-blip:';
  const stack = await startStack(t, { session: { store: { type: 'redis', url: redis.url, keyPrefix } } });
  const { browser, session } = await loggedIn(stack);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200);

  await redis.stop();
  await logoutAtProvider(stack, browser);
  t.equal(stack.audit('logout').length, 0, 'nothing could be ended while Redis was down');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 503, 'meanwhile the session gets 503, not 500');

  await redis.start();
  const client = raw(t, redis);
  await client.connect();
  t.equal(await client.exists(`${keyPrefix}{${session.id}}:s`), 1, 'the session outlived the outage in Redis');
  t.same(await client.keys(`${keyPrefix}{r:*`), [], 'the failed delivery\'s jti was not recorded as used');
  await waitFor(async () => (await browser.fetch(`${stack.publicUrl}/readyz`)).status === 200);

  const next = await browser.fetch(`${stack.publicUrl}/auth/session`);
  t.equal(next.status, 401, 'the session\'s next request is refused');
  await waitFor(async () => (await client.exists(`${keyPrefix}{${session.id}}:s`)) === 0);
  t.pass('and the session is gone from Redis');
  const logouts = stack.audit('logout');
  t.equal(logouts.length, 1, 'ended once');
  t.equal(logouts[0]!.channel, 'backchannel');
});

t.test('Redis back: a logout accepted during the outage ends the session for every instance within about a second', { skip }, async (t) => {
  const redis = await startRedis(t, { persist: true });
  const keyPrefix = 'bff-pending:';
  const stack = await startStack(t, { session: { store: { type: 'redis', url: redis.url, keyPrefix } } });
  // A second instance on the same Redis, reached as the load balancer would: the public Host, another address.
  const rawConfig = stack.rawConfig as { server: Record<string, unknown> };
  const otherLogs = captureLogger();
  const other = await startGateway(t, normaliseConfig({ ...rawConfig, server: { ...rawConfig.server, port: 0 } }, {}), { logger: otherLogs.logger });
  const otherPort = (other.app.server.address() as AddressInfo).port;
  const { browser, cookie, session } = await loggedIn(stack);
  const onOther = () =>
    new Browser().fetch(`http://127.0.0.1:${otherPort}/auth/session`, { origin: stack.publicUrl, headers: { host: new URL(stack.publicUrl).host, cookie: `bff=${cookie.value}` } });
  t.equal((await onOther()).status, 200, 'the other instance serves the session');

  await redis.stop();
  await logoutAtProvider(stack, browser);
  t.equal(stack.audit('logout').length, 0, 'nothing could be ended while Redis was down');
  await sleep(OUTAGE_AFTER_LOGOUT_MS);

  await redis.start();
  const back = Date.now();
  const client = raw(t, redis);
  await client.connect();
  const { gone, refused } = await whenEnded(back, () => client.exists(`${keyPrefix}{${session.id}}:s`), async () => (await onOther()).status === 401);
  t.comment(`Redis answering again → session gone from Redis after ${gone} ms, refused by the other instance after ${refused} ms`);
  t.ok(gone < APPLIED_BOUND_MS, `the logout is applied ${gone} ms after Redis answers again (contract: 1 s; bound here ${APPLIED_BOUND_MS} ms)`);
  t.ok(refused < APPLIED_BOUND_MS, `the other instance refuses the session ${refused} ms after Redis answers again`);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'and so does the instance that accepted the logout');
  const logouts = [...stack.audit('logout'), ...otherLogs.lines.filter((l) => l.audit === true && l.event === 'logout')];
  t.equal(logouts.length, 1, 'ended once, by the instance that accepted the logout');
  t.equal(logouts[0]!.channel, 'backchannel');
});

t.test('with session.journalDir, a logout accepted during the outage outlives a kill of the instance that accepted it', { skip }, async (t) => {
  const { stack, browser, session, client, keyPrefix, journalDir, redis } = await outageWithRestart(t, { journal: true });
  const text = readFileSync(join(journalDir!, JOURNAL_FILE), 'utf8');
  t.match(text, /"op":"add"/, 'on disk before the delivery was answered (the instance was killed without a shutdown)');
  t.notOk(text.includes(session.data.tokens.accessToken) || text.includes(session.data.tokens.refreshToken!) || text.includes(session.id), 'no token and no session key in the journal');
  const next = await nextInstance(t, stack);
  t.equal(next.audit().length, 0, 'nothing is ended before Redis answers');

  await redis.start();
  const back = Date.now();
  await client.connect();
  const { gone } = await whenEnded(back, () => client.exists(`${keyPrefix}{${session.id}}:s`));
  t.comment(`Redis answering again → session ended by the restarted instance after ${gone} ms`);
  t.ok(gone < APPLIED_BOUND_MS, `applied ${gone} ms after Redis answers again (bound here ${APPLIED_BOUND_MS} ms)`);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401);
  t.match(next.audit(), [{ channel: 'backchannel' }], 'ended once, as a back-channel logout');
  t.equal(next.audit().length, 1);
});

t.test('without session.journalDir the same logout is lost with the instance: the session lives on (as docs/threat-model.md says)', { skip }, async (t) => {
  const { stack, browser, session, client, keyPrefix, redis } = await outageWithRestart(t, { journal: false });
  const next = await nextInstance(t, stack);
  await redis.start();
  await client.connect();
  await waitFor(async () => (await browser.fetch(`${stack.publicUrl}/readyz`)).status === 200);
  // Several retry intervals and reconnects: nothing is pending on the restarted instance.
  await sleep(APPLIED_BOUND_MS);
  t.equal(await client.exists(`${keyPrefix}{${session.id}}:s`), 1, 'the session is still in Redis');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'and still served: it ends at its idle or absolute timeout, or the next logout');
  t.equal(next.audit().length, 0);
});

t.test('the replay cache of logout tokens lives in Redis, shared by every instance', { skip }, async (t) => {
  const redis = await startRedis(t);
  const stack = await startStack(t, { session: { store: { type: 'redis', url: redis.url, keyPrefix: 'bff-replay:' } } });
  const { session } = await loggedIn(stack);
  const sessions = stack.gateway.core.lifecycle.sessions;
  const key = `logout-jti:${session.data.tenant}:j1`;
  t.equal(await sessions.remembered(key), false);
  t.equal(await sessions.remember(key, 60_000), true);
  const client = raw(t, redis);
  await client.connect();
  t.same(await client.keys('bff-replay:{r:*'), [`bff-replay:{r:${key}}`], 'the replay cache lives in Redis, shared by every instance');
});

t.test('after a login, Redis holds neither the sid nor the sub: index keys are HMACs under the session key ring', { skip }, async (t) => {
  const redis = await startRedis(t);
  const keyPrefix = 'bff-dump:';
  const stack = await startStack(t, { session: { store: { type: 'redis', url: redis.url, keyPrefix } } });
  const { browser, session } = await loggedIn(stack);
  const { sid, sub } = session.data.user;
  t.type(sid, 'string');
  const client = raw(t, redis);
  await client.connect();
  const text = await dump(client, keyPrefix);
  t.equal((await client.keys(`${keyPrefix}*`)).length, 3, 'the session and its two indexes');
  t.notOk(text.includes(sid!), 'no sid anywhere in Redis');
  t.notOk(text.includes(sub), 'no sub anywhere in Redis');
  t.notOk(text.includes(user.pid), 'no national identity number');
  // Front-channel logout still finds it: the gateway computes the same HMAC.
  const iframe = new Browser();
  const res = await iframe.fetch(`${stack.publicUrl}/auth/logout/frontchannel?iss=${encodeURIComponent(stack.op.issuer)}&sid=${encodeURIComponent(sid!)}`);
  t.equal(res.status, 200);
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 401, 'found by sid and ended');
});

t.test('index lookups find sessions indexed under an older key of the ring', async (t) => {
  const config = { absoluteLifetimeMs: 3_600_000, idleTimeoutMs: 1_800_000 } as SessionConfig;
  const store = new MemorySessionStore(10);
  const lock = new MemorySessionLock();
  const oldKey = { id: 'k1', secret: Buffer.alloc(32, 1) };
  const newKey = { id: 'k2', secret: Buffer.alloc(32, 2) };
  const before = new SessionManager<SessionData>({ store, lock, keys: new KeyRing([oldKey]), config });
  const { session } = await before.create(sessionRecord({ sid: 's-1' }));
  const after = new SessionManager<SessionData>({ store, lock, keys: new KeyRing([newKey, oldKey]), config });
  t.same((await after.findBySid('test', 's-1')).map((s) => s.id), [session.id], 'by sid, after the rotation');
  t.same((await after.findBySub('test', 'sub-1')).map((s) => s.id), [session.id], 'by sub');
  t.same(await after.findBySid('other-tenant', 's-1'), [], 'never across tenants');
});

t.test('a refused provider session loads as refused until it is unrefused; other sessions are unaffected', async (t) => {
  const config = { absoluteLifetimeMs: 3_600_000, idleTimeoutMs: 1_800_000 } as SessionConfig;
  const sessions = new SessionManager<SessionData>({ store: new MemorySessionStore(10), lock: new MemorySessionLock(), keys: new KeyRing([{ id: 'k', secret: Buffer.alloc(32, 3) }]), config });
  const a = await sessions.create(sessionRecord({ sid: 's-a' }));
  const b = await sessions.create(sessionRecord({ sid: 's-b' }));
  sessions.refuse('test', { sid: 's-a', sub: 'sub-1' });
  t.match(await sessions.load(a.cookieValue), { state: 'expired', reason: 'refused' });
  t.match(await sessions.load(b.cookieValue), { state: 'live' });
  sessions.refuse('test', { sid: 's-b', sub: 'someone-else' });
  t.match(await sessions.load(b.cookieValue), { state: 'live' }, 'a refusal for sid and sub needs both to match');
  sessions.unrefuse('test', { sid: 's-a', sub: 'sub-1' });
  t.match(await sessions.load(a.cookieValue), { state: 'live' });
});
