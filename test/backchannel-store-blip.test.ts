/**
 * ID-porten delivers a back-channel logout once and never retries it. A session store that is unreachable at
 * that moment must not let the session live on: the gateway refuses the session when it next sees it, and
 * keeps ending it in the background until the store is back. Also: what a reader of Redis learns after a login.
 */
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { TEST_USERS } from '../demo/test-users.js';
import { KeyRing } from '../src/session/key-ring.js';
import { SessionManager } from '../src/session/manager.js';
import { MemorySessionLock, MemorySessionStore } from '../src/session/memory-store.js';
import type { SessionConfig } from '../src/config/types.js';
import type { SessionData } from '../src/tokens/session-data.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { sessionRecord } from './helpers/session-record.js';
import { redisMissingReason, startRedis, type RedisServer } from './helpers/redis.js';
import { startStack, type Stack } from './helpers/stack.js';

const user = TEST_USERS[0]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const missing = redisMissingReason();
const skip = missing ?? false;

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
  // The user logs out at the provider, which delivers the logout token to the gateway once, now.
  const endSession = new URL(`${stack.op.issuer}/endsession`);
  endSession.searchParams.set('client_id', stack.clientId);
  endSession.searchParams.set('post_logout_redirect_uri', `${stack.publicUrl}/`);
  await browser.followAutoSubmit(await browser.navigate(endSession.toString()));
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
