/**
 * Behind Sentinel a rotated refresh token counts only once a replica has it, so that a failover cannot take it
 * back (ID-porten would then see the old token presented again and revoke the grant). What happens when no
 * replica answers: the refresh token is not presented at all — the request gets 503 store_unavailable with
 * Retry-After, the session survives — and refreshes go on as soon as a replica is back. Logins and logouts do not
 * wait for a replica: they stand on the primary.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { redisMissingReason, startRedisSentinel } from './helpers/redis.js';
import { startStack } from './helpers/stack.js';

const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const missing = redisMissingReason();
const TTL_SECONDS = 3;

t.test('no replica confirms a claim: the refresh token is not presented, 503 with Retry-After, and refreshes resume with the replica', { skip: missing ?? false }, async (t) => {
  const sentinel = await startRedisSentinel(t);
  const keyPrefix = 'bff-ack:';
  const stack = await startStack(t, {
    upstreams: true,
    op: { accessTokenTtlSeconds: TTL_SECONDS },
    session: { store: { type: 'redis', sentinel: { nodes: sentinel.nodes, name: sentinel.name, replicaAckTimeout: '300ms' }, keyPrefix } },
  });
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal((await browser.fetch(`${stack.publicUrl}/mva/echo/before`, { headers: api })).status, 200);

  // The replica has the session before it goes away (the login's write waits for it, up to the ack timeout).
  const onReplica = new Redis(sentinel.replica.url, { maxRetriesPerRequest: 1 });
  t.teardown(() => onReplica.disconnect());
  let replicated = 0;
  for (let attempt = 0; attempt < 50 && replicated === 0; attempt += 1) {
    replicated = (await onReplica.keys(`${keyPrefix}*:s`)).length;
    if (replicated === 0) await sleep(100);
  }
  t.ok(replicated >= 1, 'the session is on the replica');
  onReplica.disconnect();

  await sentinel.replica.stop();
  await sleep(TTL_SECONDS * 1000 + 200);
  const grants = stack.op.stats.refreshGrants;
  const refused = await browser.fetch(`${stack.publicUrl}/mva/echo/no-replica`, { headers: api });
  t.equal(refused.status, 503, 'the access token has expired and no replica can confirm the claim');
  t.equal((JSON.parse(refused.body) as { code?: string }).code, 'store_unavailable');
  t.ok(Number(refused.headers.get('retry-after')) >= 1, 'with Retry-After (RFC 9110 section 10.2.3)');
  t.equal(stack.op.stats.refreshGrants, grants, 'the refresh token was not presented to ID-porten');

  // Logging in does not wait for a replica: a primary alone still lets users in.
  const other = new Browser();
  await loginAtLookalike(other, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[1]!.pid });
  t.equal((await other.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'a login without a replica works');
  t.ok(stack.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('not confirmed by 1 replica')), 'and the unconfirmed write is logged');

  await sentinel.replica.start();
  let answer = 0;
  for (let attempt = 0; attempt < 100 && answer !== 200; attempt += 1) {
    answer = (await browser.fetch(`${stack.publicUrl}/mva/echo/replica-back`, { headers: api })).status;
    if (answer !== 200) await sleep(200);
  }
  t.equal(answer, 200, 'with the replica back the session refreshes and works again');
  t.equal(stack.op.stats.refreshGrants, grants + 1, 'one refresh grant, once it could be confirmed');
  t.equal(stack.op.stats.refreshGrantErrors, 0, 'and no refresh token was ever refused by the provider');
});
