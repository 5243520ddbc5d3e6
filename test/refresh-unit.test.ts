/**
 * src/tokens/refresh.ts directly: the Refresher with the real memory store and session manager, and a real token
 * endpoint on 127.0.0.1 reached through a real IdportenClient (the flows through the gateway are in
 * token-refresh.test.ts, refresh-claim.test.ts and refresh-store-pause.test.ts). The rules it holds:
 *
 * - a refresh token is presented at most once (RFC 6749 section 6 and 10.4: a rotated refresh token presented again
 *   is taken for theft, and ID-porten revokes the grant), so the claim on it is recorded in the store before it is
 *   presented, and the rotated tokens are written by compare-and-set on the version redeemed;
 * - a rotated refresh token that cannot be stored is revoked (RFC 7009), not left alive unheld;
 * - concurrent callers share one refresh; a caller that finds the tokens refreshed meanwhile uses them;
 * - after ID-porten failed, it is not asked again for the cooldown while the old access token still works;
 * - invalid_grant (a dead refresh chain) or a refreshed ID token that breaks the binding ends the session, an
 *   RFC 8707 invalid_target does not.
 */
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import t from 'tap';
import { startTelemetry } from '../src/audit/otel.js';
import { fingerprint } from '../src/audit/fingerprint.js';
import { LockLostError, LockTimeoutError } from '../src/errors.js';
import { sessionVersion, type Session } from '../src/tokens/session-data.js';
import { API, claimable, COOLDOWN_MS, OTHER, sameTokens, sleep, TIMING, until, world } from './helpers/refresh-world.js';
import { errorAnswer, rotate } from './helpers/token-endpoint.js';

// ---------------------------------------------------------------- when a refresh token is presented

/** Holds the provider's next grant until the returned function is called; it then rotates as usual. */
function holdNextGrant(w: Awaited<ReturnType<typeof world>>): () => void {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  w.op.nextGrants.push(async (_call, n) => {
    await held;
    return rotate(n);
  });
  return release;
}

t.test('an access token outside its leeway is sent as it is: nothing is presented', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 100_000 });
  t.equal(await w.refresher.fresh(session, w.tenant), session, 'the same session back, not even read again');
  t.equal(w.refresher.freshNow(session), session, 'at hand without a refresh');
  const resourceTokens = { [API]: { accessToken: 'api-0', accessTokenIssuedAt: w.clock.now, accessTokenExpiresAt: w.clock.now + 100_000 } };
  const withApi = await w.login({ expiresIn: 100_000, resourceTokens });
  t.equal(await w.refresher.freshForResource(withApi, w.tenant, API), withApi, 'a resource token outside its leeway');
  t.same(w.op.grants, [], 'no grant');
  const due = await w.login();
  t.equal(w.refresher.freshNow(due), undefined, 'a due token: only fresh() can tell');
});

t.test('RFC 6749 section 6: a due token is refreshed with the session\'s refresh token; the rotated tokens are stored and audited', async (t) => {
  const w = await world(t);
  const session = await w.login();
  const askedAt = w.clock.now;
  w.op.nextGrants.push((_call, n) => {
    w.clock.now += 1_000;
    return rotate(n);
  });
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.same(w.op.grants, [{ grantType: 'refresh_token', refreshToken: 'rt-0', resource: null, clientId: 'client-1' }]);
  t.equal(fresh.data.tokens.accessToken, 'at-g1');
  t.equal(fresh.data.tokens.refreshToken, 'rt-g1');
  t.equal(fresh.data.tokens.accessTokenIssuedAt, askedAt + 1_000, 'the session\'s token counts as issued when the answer came');
  t.not(fresh.data, session.data, 'a new record; the loaded one is left as it was');
  t.equal(session.data.tokens.refreshToken, 'rt-0');
  const stored = await w.stored(session);
  t.same(stored.tokens, fresh.data.tokens, 'the store holds the rotated tokens');
  t.same(w.audit('token.refresh'), [
    {
      tenant: 'mva',
      session: session.hash,
      sub: 'sub-1',
      oldAccessToken: fingerprint('at-0'),
      accessToken: fingerprint('at-g1'),
      oldRefreshToken: fingerprint('rt-0'),
      refreshToken: fingerprint('rt-g1'),
      rotated: true,
      expiresAt: new Date(fresh.data.tokens.accessTokenExpiresAt).toISOString(),
    },
  ]);
  t.same(w.audit('token.refresh.failure'), []);
  t.match(await claimable(w, session), { state: 'claimed' }, 'the write lifted the claim');
  t.equal(await w.refresher.fresh(fresh, w.tenant), fresh, 'refreshed: not again');
  t.equal(w.op.grants.length, 1);
});

t.test('a provider that does not rotate (RFC 6749 section 6: refresh_token is optional) keeps the refresh token; audited as not rotated', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push((_call, n) => rotate(n, { refresh_token: undefined }));
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(fresh.data.tokens.refreshToken, 'rt-0');
  t.match(w.audit('token.refresh'), [{ rotated: false, refreshToken: fingerprint('rt-0') }]);
  const again = await w.login({ refreshToken: 'rt-same' });
  w.op.nextGrants.push((_call, n) => rotate(n, { refresh_token: 'rt-same' }));
  await w.refresher.fresh(again, w.tenant);
  t.match(w.audit('token.refresh')[1], { rotated: false }, 'the same refresh token back is no rotation');
});

t.test('concurrent callers of one session share one refresh; another instance finds it done under the lock and presents nothing', async (t) => {
  const w = await world(t);
  const session = await w.login();
  const release = holdNextGrant(w);
  const a = w.refresher.fresh(session, w.tenant);
  const b = w.refresher.fresh(session, w.tenant);
  const c = w.other.fresh(session, w.tenant);
  await until(() => w.op.grants.length === 1, 'the grant');
  release();
  const [ra, rb, rc] = await Promise.all([a, b, c]);
  t.equal(ra, rb, 'one flight, one answer');
  t.equal(rc.data.tokens.accessToken, 'at-g1', 'the other instance uses the tokens stored meanwhile');
  t.equal(w.op.grants.length, 1, 'rt-0 presented once');
});

t.test('a resource refresh after a session refresh presents the rotated refresh token, never the redeemed one (RFC 6749 section 10.4)', async (t) => {
  const w = await world(t);
  const session = await w.login();
  const release = holdNextGrant(w);
  const own = w.refresher.fresh(session, w.tenant);
  const api = w.refresher.freshForResource(session, w.tenant, API);
  await until(() => w.op.grants.length === 1, 'the first grant');
  await sleep(50);
  t.equal(w.op.grants.length, 1, 'the resource refresh waits for the session\'s (one lock per session)');
  release();
  const [, forApi] = await Promise.all([own, api]);
  t.same(w.op.grants.map((g) => [g.refreshToken, g.resource]), [['rt-0', null], ['rt-g1', API]]);
  t.equal(forApi.data.resourceTokens?.[API]?.accessToken, 'at-g2');
  t.equal(forApi.data.tokens.accessToken, 'at-g1', 'the session\'s token from the first refresh stays');
  t.equal((await w.stored(session)).tokens.refreshToken, 'rt-g2');
});

t.test('RFC 8707: a resource refresh names the resource, sets that resource\'s token alone, and is audited with it', async (t) => {
  const w = await world(t);
  const previous = { accessToken: 'api-0', accessTokenIssuedAt: w.clock.now - 100_000, accessTokenExpiresAt: w.clock.now + 5_000 };
  const session = await w.login({ expiresIn: 100_000, resourceTokens: { [API]: previous } });
  const askedAt = w.clock.now;
  w.op.nextGrants.push((_call, n) => {
    w.clock.now += 1_000;
    return rotate(n);
  });
  const fresh = await w.refresher.freshForResource(session, w.tenant, API);
  t.same(w.op.grants.map((g) => [g.refreshToken, g.resource]), [['rt-0', API]]);
  t.match(fresh.data.resourceTokens?.[API], { accessToken: 'at-g1', accessTokenIssuedAt: askedAt }, 'a resource token counts as issued when it was asked for');
  t.equal(fresh.data.tokens.accessToken, 'at-0', 'the session\'s own token is untouched');
  t.same(w.audit('token.refresh'), [
    {
      tenant: 'mva',
      session: session.hash,
      sub: 'sub-1',
      resource: API,
      oldAccessToken: fingerprint('api-0'),
      accessToken: fingerprint('at-g1'),
      oldRefreshToken: fingerprint('rt-0'),
      refreshToken: fingerprint('rt-g1'),
      rotated: true,
      expiresAt: new Date(fresh.data.resourceTokens![API]!.accessTokenExpiresAt).toISOString(),
    },
  ]);
  // Another resource has no token yet: asked for, with its own grant.
  await w.refresher.freshForResource(fresh, w.tenant, OTHER);
  t.same(w.op.grants.map((g) => [g.refreshToken, g.resource]), [['rt-0', API], ['rt-g1', OTHER]]);
});

t.test('a refreshed ID token\'s acr becomes the session\'s (OIDC Core 2); without an ID token the acr stays', async (t) => {
  const w = await world(t);
  const session = await w.login();
  const idToken = await w.op.idToken({ sub: 'sub-1', acr: 'idporten-loa-high' });
  w.op.nextGrants.push((_call, n) => rotate(n, { id_token: idToken }));
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(fresh.data.user.acr, 'idporten-loa-high');
  t.equal(fresh.data.tokens.idToken, idToken);
  t.equal((await w.stored(session)).user.acr, 'idporten-loa-high', 'stored');
  const plain = await w.login();
  const kept = await w.refresher.fresh(plain, w.tenant);
  t.equal(kept.data.user.acr, 'idporten-loa-substantial');
});

// ---------------------------------------------------------------- compare-and-set, and rotated tokens that cannot be stored

t.test('compare-and-set: a rotation stored elsewhere during the grant wins; the rotated token from here is revoked (RFC 7009)', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push(async (_call, n) => {
    await w.rotateElsewhere(session, 'rt-elsewhere');
    return rotate(n);
  });
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(fresh.data.tokens.refreshToken, 'rt-elsewhere', 'the stored rotation is the answer');
  t.equal(fresh.data.tokens.accessToken, 'at-elsewhere');
  t.equal((await w.stored(session)).tokens.refreshToken, 'rt-elsewhere', 'not overwritten');
  await until(() => w.op.revocations.length === 1, 'the revocation');
  t.same(w.op.revocations, [{ token: 'rt-g1', hint: 'refresh_token' }], 'the orphaned refresh token does not live on at ID-porten');
  t.same(w.audit('token.refresh.failure'), [
    { tenant: 'mva', session: session.hash, sub: 'sub-1', reason: 'tokens rotated elsewhere during refresh', accessToken: fingerprint('at-g1'), refreshToken: fingerprint('rt-g1') },
  ]);
  t.same(w.audit('token.refresh'), [], 'no refresh is audited as done');
  t.same(w.ended, []);
});

t.test('compare-and-set lost without a rotated token: nothing to revoke', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push(async (_call, n) => {
    await w.rotateElsewhere(session, 'rt-elsewhere');
    return rotate(n, { refresh_token: undefined });
  });
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(fresh.data.tokens.refreshToken, 'rt-elsewhere');
  await sleep(50);
  t.same(w.op.revocations, [], 'the refresh token presented is not the session\'s any more; nothing was issued to revoke');
  t.match(w.audit('token.refresh.failure'), [{ reason: 'tokens rotated elsewhere during refresh', refreshToken: undefined }]);
});

t.test('a session ended during the grant (a logout) stays ended; the rotated refresh token is revoked and the refresh fails as session_expired', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.onRevoke = () => errorAnswer(503, 'temporarily_unavailable');
  w.op.nextGrants.push(async (_call, n) => {
    await w.sessions.destroy(session.id);
    return rotate(n);
  });
  await t.rejects(w.refresher.fresh(session, w.tenant), { name: 'GatewayError', code: 'session_expired' });
  t.match(await w.sessions.loadById(session.id, 'mva'), { state: 'none' }, 'not brought back by the write');
  await until(() => w.op.revocations.length === 1, 'the revocation');
  t.same(w.op.revocations, [{ token: 'rt-g1', hint: 'refresh_token' }]);
  t.match(w.audit('token.refresh.failure'), [{ reason: 'session ended during refresh', refreshToken: fingerprint('rt-g1') }]);
  await sleep(50);
  t.pass('a revocation that failed is best effort: nothing thrown, no unhandled rejection');
});

t.test('a store that fails the write keeps it and writes it when it answers; the request goes on with the new token', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push((_call, n) => {
    w.store.updatesFail = true;
    return rotate(n);
  });
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(fresh.data.tokens.accessToken, 'at-g1');
  t.match(w.audit('token.refresh'), [{ stored: 'pending', refreshToken: fingerprint('rt-g1') }], 'audited as not stored yet');
  w.store.updatesFail = false;
  await sleep(400);
  t.equal((await w.stored(session)).tokens.refreshToken, 'rt-g1', 'written once the store answered');
  t.same(w.op.revocations, [], 'written: nothing to revoke');
  t.same(w.audit('token.refresh.failure'), []);
  const normal = await w.login();
  await w.refresher.fresh(normal, w.tenant);
  t.notOk('stored' in w.audit('token.refresh')[1]!, 'a write the store took carries no `stored`');
});

t.test('a kept write that finds the session ended when the store answers: the rotated refresh token is revoked', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push((_call, n) => {
    w.store.updatesFail = true;
    return rotate(n);
  });
  await w.refresher.fresh(session, w.tenant);
  await w.sessions.destroy(session.id);
  w.store.updatesFail = false;
  await until(() => w.op.revocations.length === 1, 'the revocation');
  t.same(w.op.revocations, [{ token: 'rt-g1', hint: 'refresh_token' }]);
  t.match(w.audit('token.refresh.failure'), [{ reason: 'session ended during refresh' }]);
});

// ---------------------------------------------------------------- another holder's claim

t.test('another instance holds the claim: a token that still works is sent as it is, nothing presented', async (t) => {
  const w = await world(t);
  const session = await w.login();
  t.match(await w.sessions.claim(session.id, sessionVersion(session.data), 'another-instance', TIMING), { state: 'claimed' });
  sameTokens(t, await w.refresher.fresh(session, w.tenant), session);
  t.same(w.op.grants, []);
});

t.test('another instance holds the claim and the token has expired: wait for its rotated tokens and use them, presenting nothing', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: -1_000 });
  await w.sessions.claim(session.id, sessionVersion(session.data), 'another-instance', TIMING);
  const claimsBefore = w.store.claims;
  const waiting = w.refresher.fresh(session, w.tenant);
  await sleep(300);
  t.same(w.op.grants, [], 'waiting, not presenting');
  const asked = w.store.claims - claimsBefore;
  t.ok(asked >= 1 && asked <= 5, `asks the store again every 100 ms while it waits, not in a tight loop (${asked} claims in 300 ms; a loaded machine may fire fewer timers, never more)`);
  await w.rotateElsewhere(session, 'rt-elsewhere');
  const rotatedAt = Date.now();
  const fresh = await waiting;
  t.ok(Date.now() - rotatedAt < TIMING.ttlMs, 'seen at a poll (every 100 ms), not at the end of the claim\'s lease and grace');
  t.equal(fresh.data.tokens.accessToken, 'at-elsewhere');
  t.same(w.op.grants, []);
});

t.test('a rotation elsewhere that still leaves the token due: the new refresh token is claimed and presented', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: -1_000 });
  await w.sessions.claim(session.id, sessionVersion(session.data), 'another-instance', TIMING);
  const waiting = w.refresher.fresh(session, w.tenant);
  await sleep(150);
  // Stored elsewhere with an access token already expired (by this clock): still due.
  const current = await w.stored(session);
  const next: Session = { ...session, data: { ...current, tokens: { ...current.tokens, accessTokenExpiresAt: w.clock.now - 1, refreshToken: 'rt-elsewhere' } } };
  t.equal(await w.sessions.update(next, sessionVersion(current), { holder: 'another-instance' }), 'written');
  const fresh = await waiting;
  t.same(w.op.grants.map((g) => g.refreshToken), ['rt-elsewhere'], 'the stored token, never rt-0');
  t.equal(fresh.data.tokens.refreshToken, 'rt-g1');
});

t.test('a session that ended while waiting for a claim: session_expired, nothing presented', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: -1_000 });
  await w.sessions.claim(session.id, sessionVersion(session.data), 'another-instance', TIMING);
  const waiting = w.refresher.fresh(session, w.tenant);
  await sleep(150);
  await w.sessions.destroy(session.id);
  await t.rejects(waiting, { code: 'session_expired' });
  t.same(w.op.grants, []);
});

// ---------------------------------------------------------------- ID-porten failing

t.test('ID-porten unavailable: the old token goes on, the claim is lifted, and ID-porten is not asked again for 5 s', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push(() => errorAnswer(503, 'temporarily_unavailable'), () => errorAnswer(503, 'temporarily_unavailable'));
  sameTokens(t, await w.refresher.fresh(session, w.tenant), session, 'the token that still works');
  t.same(w.audit('token.refresh.failure'), [
    { tenant: 'mva', session: session.hash, sub: 'sub-1', reason: 'refresh: provider answered 503', kind: 'unavailable', refreshToken: fingerprint('rt-0') },
  ]);
  t.match(await claimable(w, session), { state: 'claimed' }, 'nothing was redeemed: the claim is lifted at once');
  await sleep(600);
  t.match(await claimable(w, session), { state: 'claimed' }, 'and no longer renewed');
  t.same(w.ended, []);
  w.clock.now += COOLDOWN_MS - 1;
  t.equal(await w.refresher.fresh(session, w.tenant), session, 'inside the cooldown: not even read again');
  t.equal(w.op.grants.length, 1, 'not asked again');
  sameTokens(t, await w.other.fresh(session, w.tenant), session, 'the cooldown is this instance\'s; another asks (and fails too)');
  t.equal(w.op.grants.length, 2);
  w.clock.now += 1;
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(w.op.grants.length, 3, 'asked again after the cooldown');
  t.equal(fresh.data.tokens.accessToken, 'at-g3');
});

t.test('ID-porten unavailable and the token has expired: idp_unavailable, the cooldown does not hold it back, the session lives', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 3_000 });
  w.op.nextGrants.push(() => errorAnswer(503, 'temporarily_unavailable'), () => errorAnswer(500, 'server_error'));
  sameTokens(t, await w.refresher.fresh(session, w.tenant), session);
  w.clock.now += 3_000;
  await t.rejects(
    w.refresher.fresh(session, w.tenant),
    { name: 'GatewayError', code: 'idp_unavailable', message: 'ID-porten could not be reached to refresh the session; try again shortly.', cause: { name: 'OidcError', kind: 'unavailable' } },
    'an expired token is not sent; the provider\'s failure is the cause',
  );
  t.equal(w.op.grants.length, 2, 'asked again inside the cooldown: the old token no longer works');
  t.same(w.ended, []);
  t.equal((await w.stored(session)).tokens.refreshToken, 'rt-0');
});

t.test('the cooldown is per target, a success ends it, and forget() clears it', async (t) => {
  const w = await world(t);
  const resourceTokens = { [API]: { accessToken: 'api-0', accessTokenIssuedAt: w.clock.now - 100_000, accessTokenExpiresAt: w.clock.now + 5_000 } };
  const session = await w.login({ resourceTokens });
  w.op.nextGrants.push(() => errorAnswer(503, 'temporarily_unavailable'));
  sameTokens(t, await w.refresher.freshForResource(session, w.tenant, API), session, 'the API\'s token failed to refresh');
  const own = await w.refresher.fresh(session, w.tenant);
  t.equal(w.op.grants.length, 2, 'the session\'s own token is refreshed all the same');
  t.equal(await w.refresher.freshForResource(own, w.tenant, API), own, 'the API\'s token is still cooling down');
  t.equal(w.op.grants.length, 2);
  const another = await w.login({ expiresIn: 100_000, resourceTokens });
  await w.refresher.freshForResource(another, w.tenant, API);
  t.equal(w.op.grants.length, 3, 'another session\'s token for the same API is not held back');
  w.op.grants.length = 2;
  w.refresher.forget(own);
  await w.refresher.freshForResource(own, w.tenant, API);
  t.equal(w.op.grants.length, 3, 'forgotten: asked again');

  // A failure of the session's token, then a forced refresh that succeeds: the next due refresh is not held back.
  const second = await w.login();
  w.op.nextGrants.push(() => errorAnswer(503, 'temporarily_unavailable'));
  await w.refresher.fresh(second, w.tenant);
  const forced = await w.refresher.refreshNow(second, w.tenant);
  t.equal(w.op.grants.length, 5);
  w.op.nextGrants.push((_call, n) => rotate(n, { expires_in: 8 }));
  const short = await w.refresher.refreshNow(forced, w.tenant);
  t.equal(w.op.grants.length, 6);
  w.clock.now = short.data.tokens.accessTokenExpiresAt - 100;
  await w.refresher.fresh(short, w.tenant);
  t.equal(w.op.grants.length, 7, 'due again within 5 s of the failure, and asked: the success ended the cooldown');

  // forget() for the session's own token.
  const third = await w.login({ expiresIn: 100_000 });
  w.clock.now = Date.now();
  const due = await w.login();
  w.op.nextGrants.push(() => errorAnswer(503, 'temporarily_unavailable'));
  await w.refresher.fresh(due, w.tenant);
  const before = w.op.grants.length;
  w.refresher.forget(third);
  await w.refresher.fresh(due, w.tenant);
  t.equal(w.op.grants.length, before, 'another session forgotten: this one still cools down');
  w.refresher.forget(due);
  await w.refresher.fresh(due, w.tenant);
  t.equal(w.op.grants.length, before + 1, 'forgotten: asked again');
});

t.test('invalid_grant: the refresh chain is dead, the session ends, session_expired', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 100_000 });
  w.op.nextGrants.push(() => errorAnswer(400, 'invalid_grant'));
  await t.rejects(w.refresher.refreshNow(session, w.tenant), { name: 'GatewayError', code: 'session_expired' });
  t.same(w.ended, [{ id: session.id, refreshToken: 'rt-0', reason: 'refresh: invalid_grant' }]);
  t.same(w.audit('token.refresh.failure'), [
    { tenant: 'mva', session: session.hash, sub: 'sub-1', reason: 'refresh: invalid_grant', kind: 'invalid_grant', refreshToken: fingerprint('rt-0') },
  ]);
});

t.test('invalid_grant for a refresh token that another holder rotated meanwhile: the session lives on with the stored tokens', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.op.nextGrants.push(async () => {
    await w.rotateElsewhere(session, 'rt-elsewhere');
    return errorAnswer(400, 'invalid_grant');
  });
  const fresh = await w.refresher.fresh(session, w.tenant);
  t.equal(fresh.data.tokens.refreshToken, 'rt-elsewhere');
  t.same(w.ended, []);
});

t.test('a refreshed ID token for another user breaks the binding (OIDC Core 12.2): the session ends, even if rotated elsewhere meanwhile', async (t) => {
  const w = await world(t);
  const session = await w.login();
  const idToken = await w.op.idToken({ sub: 'someone-else', acr: 'idporten-loa-substantial' });
  w.op.nextGrants.push((_call, n) => rotate(n, { id_token: idToken }));
  await t.rejects(w.refresher.fresh(session, w.tenant), { code: 'session_expired' });
  t.same(w.ended, [{ id: session.id, refreshToken: 'rt-0', reason: 'refreshed id token has another sub' }]);
  t.match(w.audit('token.refresh.failure'), [{ kind: 'rejected' }]);

  const second = await w.login();
  w.op.nextGrants.push(async (_call, n) => {
    await w.rotateElsewhere(second, 'rt-elsewhere');
    return rotate(n, { id_token: idToken });
  });
  await t.rejects(w.refresher.fresh(second, w.tenant), { code: 'session_expired' });
  t.match(w.ended[1], { id: second.id, refreshToken: 'rt-elsewhere', reason: 'refreshed id token has another sub' }, 'the stored session is the one ended');
});

t.test('RFC 8707 invalid_target: no token for that API, the claim is lifted, the session lives on; for the session\'s own token it ends it', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 100_000 });
  w.op.nextGrants.push(() => errorAnswer(400, 'invalid_target'));
  await t.rejects(w.refresher.freshForResource(session, w.tenant, API), {
    name: 'GatewayError',
    code: 'resource_refused',
    message: 'ID-porten refused to issue a token for the API this route calls (invalid_target).',
    cause: { name: 'OidcError', kind: 'invalid_target' },
  });
  t.same(w.ended, []);
  t.equal((await w.stored(session)).tokens.refreshToken, 'rt-0', 'an error answer issued nothing: the refresh token is still the session\'s');
  t.match(await claimable(w, session), { state: 'claimed' }, 'the claim is lifted');
  w.op.nextGrants.push(() => errorAnswer(400, 'invalid_target'));
  await t.rejects(w.refresher.refreshNow(session, w.tenant), { code: 'session_expired' });
  t.match(w.ended, [{ id: session.id, reason: 'refresh: invalid_target' }]);
});

// ---------------------------------------------------------------- no refresh token, forced refreshes, the store failing

t.test('no refresh token: a working token is sent, an expired one ends the session, a resource token cannot be had', async (t) => {
  const w = await world(t);
  const working = await w.login({ refreshToken: undefined });
  t.equal((await w.refresher.fresh(working, w.tenant)).data.tokens.accessToken, 'at-0');
  t.same(w.ended, []);
  await t.rejects(w.refresher.freshForResource(working, w.tenant, API), { code: 'resource_refused', message: 'ID-porten gave this session no refresh token, so no token for this API can be asked for.' });
  t.same(w.ended, [], 'no resource token is no reason to end the session');
  const expired = await w.login({ refreshToken: undefined, expiresIn: -1 });
  await t.rejects(w.refresher.fresh(expired, w.tenant), { code: 'session_expired' });
  t.same(w.ended, [{ id: expired.id, refreshToken: undefined, reason: 'no refresh token' }]);
  t.same(w.op.grants, []);
});

t.test('refreshNow refreshes a token that is not due, shares a running refresh, and takes one done meanwhile instead of another', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 100_000 });
  const [a, b] = await Promise.all([w.refresher.refreshNow(session, w.tenant), w.refresher.refreshNow(session, w.tenant)]);
  t.equal(a, b);
  t.equal(w.op.grants.length, 1);
  t.equal(a.data.tokens.accessToken, 'at-g1');
  const again = await w.other.refreshNow(session, w.tenant);
  t.equal(w.op.grants.length, 1, 'the session as loaded was refreshed meanwhile: no second grant');
  t.equal(again.data.tokens.accessToken, 'at-g1');
  await w.other.refreshNow(again, w.tenant);
  t.equal(w.op.grants.length, 2, 'from the current tokens: refreshed');
});

t.test('the store cannot hold the claim: nothing is presented; a working token is sent, an expired one fails as store_unavailable', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.store.claimsFail = true;
  sameTokens(t, await w.refresher.fresh(session, w.tenant), session);
  const expired = await w.login({ expiresIn: -1 });
  await t.rejects(w.refresher.fresh(expired, w.tenant), { name: 'StoreUnavailableError' });
  t.same(w.op.grants, []);
  t.same(w.audit('token.refresh.failure'), [{ tenant: 'mva', session: expired.hash, sub: 'sub-1', reason: 'store' }]);
});

t.test('concurrent refreshes for two resources are two flights: each gets its own token, presenting each refresh token once', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 100_000 });
  const [api, other] = await Promise.all([w.refresher.freshForResource(session, w.tenant, API), w.refresher.freshForResource(session, w.tenant, OTHER)]);
  t.same(w.op.grants.map((g) => [g.refreshToken, g.resource]), [['rt-0', API], ['rt-g1', OTHER]]);
  t.equal(api.data.resourceTokens?.[API]?.accessToken, 'at-g1');
  t.equal(other.data.resourceTokens?.[OTHER]?.accessToken, 'at-g2');
  t.same(Object.keys((await w.stored(session)).resourceTokens ?? {}).sort(), [API, OTHER]);
});

t.test('a lock that timed out or was lost is audited with its reason and passed on; nothing is presented', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.lock.failWith = new LockTimeoutError();
  await t.rejects(w.refresher.fresh(session, w.tenant), { name: 'LockTimeoutError' });
  w.lock.failWith = new LockLostError();
  await t.rejects(w.refresher.fresh(session, w.tenant), { name: 'LockLostError' });
  w.lock.failWith = new Error('something else');
  await t.rejects(w.refresher.fresh(session, w.tenant), { message: 'something else' });
  t.same(w.audit('token.refresh.failure'), [
    { tenant: 'mva', session: session.hash, sub: 'sub-1', reason: 'lock_timeout' },
    { tenant: 'mva', session: session.hash, sub: 'sub-1', reason: 'lock_lost' },
  ], 'an error of another kind is not a store or lock failure');
  t.same(w.op.grants, []);
});

t.test('a claim the store carried out but did not confirm is lifted: nobody waits out a claim that nothing presents', async (t) => {
  const w = await world(t);
  const session = await w.login();
  w.store.claimsLost = true;
  sameTokens(t, await w.refresher.fresh(session, w.tenant), session, 'the token that still works');
  w.store.claimsLost = false;
  await sleep(20);
  t.match(await claimable(w, session), { state: 'claimed' });
  t.same(w.op.grants, []);
});

t.test('a client that fails before anything reaches ID-porten (its key cannot be used) counts as ID-porten unavailable: the session lives', async (t) => {
  const w = await world(t);
  const session = await w.login();
  const broken = w.op.tenant('mva', { method: 'private_key_jwt', privateKeyJwk: { kty: 'RSA', kid: 'k' } });
  sameTokens(t, await w.refresher.fresh(session, broken), session);
  t.match(w.audit('token.refresh.failure'), [{ reason: 'refresh failed', kind: 'unavailable', refreshToken: fingerprint('rt-0') }]);
  t.same(w.ended, []);
  t.same(w.op.grants, []);
});

t.test('invalid_grant on a resource refresh: the refresh chain is dead for the session too; it ends', async (t) => {
  const w = await world(t);
  const session = await w.login({ expiresIn: 100_000 });
  w.op.nextGrants.push(() => errorAnswer(400, 'invalid_grant'));
  await t.rejects(w.refresher.freshForResource(session, w.tenant, API), { code: 'session_expired' });
  t.same(w.ended, [{ id: session.id, refreshToken: 'rt-0', reason: 'refresh: invalid_grant' }]);
});

t.test('with tracing on, each refresh is a token.refresh span naming its tenant (the fresh and the forced path)', async (t) => {
  const exporter = new InMemorySpanExporter();
  const otel = (await startTelemetry({ env: {}, exporter }))!;
  t.teardown(() => otel.shutdown());
  const w = await world(t);
  const session = await w.login();
  const fresh = await w.refresher.fresh(session, w.tenant);
  await w.refresher.refreshNow(fresh, w.tenant);
  const spans = exporter.getFinishedSpans().filter((s) => s.name === 'token.refresh');
  t.equal(spans.length, 2);
  t.same(spans.map((s) => s.attributes['bff.tenant']), ['mva', 'mva']);
});
