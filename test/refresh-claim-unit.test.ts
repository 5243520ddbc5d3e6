/**
 * src/tokens/refresh.ts, the parts that take the claim's real timing (a 2 s lease, 1.5 s of grace, renewed every
 * 0.5 s); the rest is in refresh-unit.test.ts and refresh-backlog-unit.test.ts. A refresh token is presented at
 * most once (RFC 6749 section 6 and 10.4; ID-porten revokes the grant when a rotated one comes back), so: the claim
 * is recorded before the token is presented and renewed while ID-porten is slow; a claim whose holder died is
 * taken over only after its lease and grace.
 */
import t from 'tap';
import { sessionVersion } from '../src/tokens/session-data.js';
import type { ClaimOutcome } from '../src/session/store.js';
import { sleep, TIMING, world } from './helpers/refresh-world.js';
import { rotate } from './helpers/token-endpoint.js';

t.test('the claim on the refresh token is recorded in the store before it is presented, and kept alive while ID-porten is slow', async (t) => {
  const w = await world(t);
  const session = await w.login();
  let seenByOther: ClaimOutcome | undefined;
  let lateSeen: ClaimOutcome | undefined;
  w.op.nextGrants.push(async (_call, n) => {
    seenByOther = await w.sessions.claim(session.id, sessionVersion(session.data), 'another-instance', TIMING);
    // Past the claim's 2 s lease: without its renewal it would have lapsed (and a first look gives the 1.5 s grace).
    await sleep(2_150);
    lateSeen = await w.sessions.claim(session.id, sessionVersion(session.data), 'another-instance', TIMING);
    return rotate(n);
  });
  await w.refresher.fresh(session, w.tenant);
  t.equal(seenByOther?.state, 'held', 'while the token is presented, nobody else may claim it');
  t.equal(lateSeen?.state, 'held');
  t.ok(lateSeen?.state === 'held' && lateSeen.retryInMs > TIMING.graceMs, `renewed within its lease, not lapsed (${JSON.stringify(lateSeen)})`);
  t.equal((await w.stored(session)).tokens.refreshToken, 'rt-g1');
});

t.test('a claim whose holder died lapses after its lease and grace (2 s + 1.5 s); then it is taken over', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: -1_000 });
  await w.sessions.claim(session.id, sessionVersion(session.data), 'dead-instance', TIMING);
  const started = Date.now();
  const fresh = await w.refresher.fresh(session, w.tenant);
  const waited = Date.now() - started;
  t.ok(waited >= TIMING.ttlMs + TIMING.graceMs - 50, `waited out lease and grace (${waited} ms)`);
  t.ok(waited < 2 * TIMING.ttlMs + TIMING.graceMs, `and taken over once it lapsed, not a lease later (${waited} ms)`);
  t.same(w.op.grants.map((g) => g.refreshToken), ['rt-0']);
  t.equal(fresh.data.tokens.accessToken, 'at-g1');
});
