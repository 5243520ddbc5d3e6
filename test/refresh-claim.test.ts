/**
 * Correctness does not rest on the session lock: an instance that refreshes without it (as one whose lease lapsed
 * would) finds the refresh token claimed in the record by another instance that has presented it and not yet
 * stored the rotated one, and waits for that write instead of presenting the same token (which ID-porten would
 * take for theft and answer by revoking the grant). Two instances on one Redis: C1 refreshes and its write is held
 * back (a slow store), C2 has no lock at all.
 */
import t from 'tap';
import type { AppDeps } from '../src/app.js';
import { createRedisStore } from '../src/session/redis-store.js';
import { TEST_USERS } from '../demo/test-users.js';
import { noLock } from './helpers/broken-variant.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { HoldingStore } from './helpers/holding-store.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { captureLogger, keptCookieSender, startPeerGateway, startStack } from './helpers/stack.js';

const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const missing = redisMissingReason();
/** Long enough that C1's new access token outlives the 3 s its write is held. */
const TTL_SECONDS = 10;

t.test('without any lock, a refresh waits for another instance\'s claim on the refresh token and uses what that one stores', { skip: missing ?? false }, async (t) => {
  const redis = await startRedis(t);
  const keyPrefix = 'bff-claim:';
  const stack = await startStack(t, {
    upstreams: true,
    op: { accessTokenTtlSeconds: TTL_SECONDS },
    session: { store: { type: 'redis', url: redis.url, keyPrefix } },
  });
  const instance = async (wrap: (deps: AppDeps & { store: HoldingStore }) => AppDeps) => {
    const created = await createRedisStore({ url: redis.url, keyPrefix }, captureLogger().logger);
    const store = new HoldingStore(created.store);
    const { port } = await startPeerGateway(t, stack, wrap({ store, lock: created.lock }));
    return { store, port };
  };
  const c1 = await instance((deps) => deps);
  const c2 = await instance((deps) => ({ ...deps, lock: noLock }));

  const login = new Browser();
  await loginAtLookalike(login, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  const cookieValue = login.cookie('localhost', 'bff')?.value;
  if (!cookieValue) throw new Error('login set no session cookie');
  const send = keptCookieSender(stack, cookieValue);

  await sleep(TTL_SECONDS * 1000 + 100);
  const grants = stack.op.stats.refreshGrants;
  const errors = stack.op.stats.refreshGrantErrors;
  // C1 claims the refresh token, presents it, and is held before it stores the rotated one.
  const hold = c1.store.holdNextWrite();
  const onC1 = send(c1.port, '/mva/echo/c1', { headers: api });
  await hold.reached;
  t.equal(stack.op.stats.refreshGrants - grants, 1, 'C1 redeemed the refresh token');
  // C2, with no lock, needs a refresh too (the access token has expired): it finds C1's claim, renewed while C1 works.
  const onC2 = send(c2.port, '/mva/echo/c2', { headers: api });
  await sleep(3_000);
  t.equal(stack.op.stats.refreshGrants - grants, 1, 'C2 did not present the claimed token, 3 s on');
  hold.release();
  t.equal((await onC1).status, 200);
  t.equal((await onC2).status, 200, 'C2 serves the session with what C1 stored');
  t.equal(stack.op.stats.refreshGrants - grants, 1, 'one refresh grant in all');
  t.equal(stack.op.stats.refreshGrantErrors - errors, 0, 'no refresh token presented twice');
});
