/**
 * TokenLifecycle (src/tokens/lifecycle.ts) driven directly, over the real memory store and a small provider on
 * 127.0.0.1 (token and revocation endpoints): a login begins a session and replaces the browser's earlier ones,
 * a cookie finds its live session or ends it at its idle or absolute deadline, a route gets the bearer of its token
 * kind, derived tokens are kept for the access token they came from, and RFC 8707 resource tokens. Listing, handles,
 * ending sessions and provider logouts are in lifecycle-end.test.ts.
 */
import t from 'tap';
import { fingerprint } from '../src/audit/fingerprint.js';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startTelemetry } from '../src/audit/otel.js';
import { GatewayError } from '../src/errors.js';
import { newDpopKey } from '../src/net/dpop.js';
import { SessionManager } from '../src/session/manager.js';
import { TokenLifecycle } from '../src/tokens/lifecycle.js';
import { sessionVersion, type Session } from '../src/tokens/session-data.js';
import { ABSOLUTE_MS, IDLE_MS, lifecycleWorld, START, withData } from './helpers/lifecycle-world.js';

const API = 'https://api.example.no/';
const OTHER = 'https://other.example.no/';
const idOf = (cookieValue: string) => TokenLifecycle.idForCookie(cookieValue)!;

// ---------------------------------------------------------------- begin

t.test('a login begins a session holding its user, binding and tokens, under a brand-new cookie and store key', async (t) => {
  const w = await lifecycleWorld(t);
  const login = w.login('u1', { sid: 'sid-1', claims: { pid: '01017012345', locale: 'nb', amr: ['BankID', 7] } });
  const { cookieValue, session } = await w.lifecycle.begin(w.mva, login, { requestedAcr: 'idporten-loa-substantial', replaces: [undefined], userAgent: 'Firefox on Linux' });
  t.equal(session.id, SessionManager.storeKey(cookieValue), 'the store key is the hash of the cookie value, never the value itself');
  t.equal(TokenLifecycle.idForCookie(cookieValue), session.id);
  t.equal(TokenLifecycle.idForCookie('not a cookie'), undefined, 'a malformed cookie names no session');
  const expected = {
    tenant: 'mva',
    user: { sub: 'u1', pid: '01017012345', acr: 'idporten-loa-high', amr: ['BankID'], locale: 'nb', sid: 'sid-1' },
    idTokenBinding: { iss: w.provider.issuer, aud: 'mva-client', sub: 'u1', acr: 'idporten-loa-high' },
    createdAt: START,
    userAgent: 'Firefox on Linux',
    tokens: { accessToken: login.accessToken, accessTokenIssuedAt: START, accessTokenExpiresAt: START + 120_000, refreshToken: login.refreshToken, idToken: login.idToken, scope: 'openid' },
  };
  t.same(session.data, expected, 'the session as begun');
  const stored = await w.sessions.loadById(session.id, 'mva');
  t.equal(stored.state, 'live');
  t.same(stored.state === 'live' && stored.session.data, expected, 'and as stored');
  t.notOk('resources' in session.data, 'a login that named no resource keeps no list');
  t.notOk('dpop' in session.data, 'nor a DPoP key it has not got');

  const [success] = w.events('login.success');
  t.same(success, {
    event: 'login.success',
    tenant: 'mva',
    session: session.hash,
    sub: 'u1',
    acr: 'idporten-loa-high',
    amr: ['BankID'],
    sid: fingerprint('sid-1'),
    idToken: fingerprint(login.idToken),
    accessToken: fingerprint(login.accessToken),
    refreshToken: fingerprint(login.refreshToken),
    accessTokenExpiresAt: new Date(START + 120_000).toISOString(),
  }, 'one login.success line, tokens as fingerprints only');
  t.notOk('replacedSession' in success! && success.replacedSession !== undefined, 'it replaced nothing');
});

t.test('a login that named resources (RFC 8707) or got DPoP-bound tokens (RFC 9449) keeps them with the session', async (t) => {
  const w = await lifecycleWorld(t);
  const dpopKey = newDpopKey();
  const { session } = await w.begin(w.mva, 'u1', { resources: [API], dpopKey });
  t.same(session.data.resources, [API]);
  t.same(session.data.dpop, dpopKey);
  const { session: none } = await w.begin(w.mva, 'u2', { resources: [] });
  t.notOk('resources' in none.data, 'an empty list is no list');
});

t.test('session fixation (OWASP ASVS 5.0 V7): a login ends the sessions the browser had in the tenant and begins one under a new id; another user\'s tokens are revoked (RFC 7009)', async (t) => {
  const w = await lifecycleWorld(t);
  const first = await w.begin(w.mva, 'u1');
  const fromTransaction = await w.begin(w.mva, 'u3');
  const next = await w.lifecycle.begin(w.mva, w.login('u2'), {
    requestedAcr: 'idporten-loa-substantial',
    replaces: [idOf(first.cookieValue), undefined, idOf(first.cookieValue), idOf(fromTransaction.cookieValue)],
  });
  t.not(next.cookieValue, first.cookieValue, 'a new cookie value');
  t.not(next.session.id, first.session.id, 'under a new store key');
  t.equal((await w.sessions.load(first.cookieValue, 'mva')).state, 'none', 'the old session is gone');
  t.equal((await w.sessions.load(fromTransaction.cookieValue, 'mva')).state, 'none', 'and the one the login transaction named');
  t.equal((await w.lifecycle.current(w.mva, next.cookieValue)).state, 'live');
  const ended = w.logouts();
  t.same(ended.map((l) => [l.session, l.channel, l.revoked]), [[first.session.hash, 'replaced', 'background'], [fromTransaction.session.hash, 'replaced', 'background']], 'each ended once, as replaced');
  t.equal(w.events('login.success').at(-1)!.replacedSession, first.session.hash, 'the login names the session it replaced');
  await w.lifecycle.settled();
  t.same(w.provider.revoked().sort(), [
    `access_token:${first.session.data.tokens.accessToken}`,
    `access_token:${fromTransaction.session.data.tokens.accessToken}`,
    `refresh_token:${first.session.data.tokens.refreshToken}`,
    `refresh_token:${fromTransaction.session.data.tokens.refreshToken}`,
  ].sort(), 'another user\'s tokens are revoked');
});

t.test('the same user logging in again: the old session ends, its tokens are left to expire (they may share the new login\'s authorization)', async (t) => {
  const w = await lifecycleWorld(t);
  const first = await w.begin(w.mva, 'u1');
  await w.lifecycle.begin(w.mva, w.login('u1'), { requestedAcr: 'idporten-loa-substantial', replaces: [idOf(first.cookieValue)] });
  t.equal((await w.sessions.load(first.cookieValue, 'mva')).state, 'none', 'the old session is gone');
  t.same(w.logouts().map((l) => [l.channel, l.reason, l.revoked]), [['replaced', 'same user; the new login may share its authorization', 'not revoked']]);
  await w.lifecycle.settled();
  t.same(w.provider.revoked(), [], 'nothing revoked');
});

t.test('a login replaces only sessions of its own tenant, and ends one found past its deadline all the same', async (t) => {
  const w = await lifecycleWorld(t);
  const stale = await w.begin(w.mva, 'u2');
  w.clock.now += IDLE_MS;
  const foreign = await w.begin(w.skatt, 'u2');
  await w.lifecycle.begin(w.mva, w.login('u1'), { requestedAcr: 'idporten-loa-substantial', replaces: [idOf(foreign.cookieValue), idOf(stale.cookieValue)] });
  t.equal((await w.lifecycle.current(w.skatt, foreign.cookieValue)).state, 'live', 'another tenant\'s session lives on');
  t.same(w.logouts().map((l) => [l.session, l.channel]), [[stale.session.hash, 'replaced']], 'the idle one is ended as replaced');
  t.equal((await w.sessions.loadById(stale.session.id)).state, 'none');
});

// ---------------------------------------------------------------- current, liveNow

t.test('a cookie names its live session in its own tenant only; a malformed, unknown or foreign cookie names none', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue, session } = await w.begin(w.mva, 'u1');
  const live = await w.lifecycle.current(w.mva, cookieValue);
  t.same(live.state === 'live' && live.session.id, session.id);
  t.same(await w.lifecycle.current(w.skatt, cookieValue), { state: 'none' }, 'another tenant\'s cookie');
  t.same(await w.lifecycle.current(w.mva, 'x'), { state: 'none' });
  t.same(await w.lifecycle.current(w.mva, `${cookieValue.slice(0, -2)}AA`), { state: 'none' });
  t.same(await w.lifecycle.current(w.mva, undefined), { state: 'none' });
  t.equal(w.logouts().length, 0, 'none of that ends anything');
});

t.test('idle timeout: activity moves the deadline; a session idle for the timeout is ended as idle and its tokens revoked in the background', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue, session } = await w.begin(w.mva, 'u1');
  w.clock.now += 10 * 60_000;
  t.equal((await w.lifecycle.current(w.mva, cookieValue)).state, 'live');
  const touched = await w.sessions.loadById(session.id, 'mva');
  t.equal(touched.state === 'live' && touched.session.lastSeenAt, w.clock.now, 'the request is recorded as activity');
  w.clock.now += IDLE_MS - 1;
  t.equal((await w.lifecycle.current(w.mva, cookieValue)).state, 'live', 'idle for just under the timeout since that request');
  w.clock.now += IDLE_MS;
  t.same(await w.lifecycle.current(w.mva, cookieValue), { state: 'ended', reason: 'idle' });
  t.equal((await w.sessions.loadById(session.id)).state, 'none', 'destroyed');
  t.same(w.logouts().map((l) => [l.channel, l.revoked]), [['idle', 'background']]);
  await w.lifecycle.settled();
  t.same(w.provider.revoked(), [`refresh_token:${session.data.tokens.refreshToken}`, `access_token:${session.data.tokens.accessToken}`]);
  t.same(await w.lifecycle.current(w.mva, cookieValue), { state: 'none' }, 'and then it names nothing');
});

t.test('absolute timeout: a session in use all along ends at its absolute lifetime, as expired', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue } = await w.begin(w.mva, 'u1');
  while (w.clock.now + 50 * 60_000 < START + ABSOLUTE_MS) {
    w.clock.now += 50 * 60_000;
    t.equal((await w.lifecycle.current(w.mva, cookieValue)).state, 'live');
  }
  w.clock.now = START + ABSOLUTE_MS - 1;
  t.equal((await w.lifecycle.current(w.mva, cookieValue)).state, 'live', 'a millisecond before');
  w.clock.now = START + ABSOLUTE_MS;
  t.same(await w.lifecycle.current(w.mva, cookieValue), { state: 'ended', reason: 'expired' });
  t.same(w.logouts().map((l) => [l.channel, l.revoked]), [['expired', 'background']]);
});

t.test('a session a provider logout named while the store was away is ended when met, its tokens revoked before answering', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue, session } = await w.begin(w.mva, 'u1', { sid: 'sid-1' });
  w.sessions.refuse('mva', { sid: 'sid-1' });
  t.same(await w.lifecycle.current(w.mva, cookieValue), { state: 'ended', reason: 'expired' });
  t.same(w.logouts().map((l) => [l.channel, l.reason, l.revoked]), [['backchannel', 'logout delivered while the store was unreachable', { refreshToken: true, accessToken: true }]]);
  t.same(w.provider.revoked(), [`refresh_token:${session.data.tokens.refreshToken}`, `access_token:${session.data.tokens.accessToken}`], 'revoked already');
});

t.test('liveNow: the live session when nothing is due (no touch), undefined when a touch or a deadline is', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue, session } = await w.begin(w.mva, 'u1');
  t.equal(w.lifecycle.liveNow(w.mva, cookieValue)?.id, session.id);
  t.equal(w.lifecycle.liveNow(w.skatt, cookieValue), undefined, 'not in another tenant');
  w.clock.now += 999;
  t.equal(w.lifecycle.liveNow(w.mva, cookieValue)?.id, session.id, 'within the touch grain');
  w.clock.now += 1;
  t.equal(w.lifecycle.liveNow(w.mva, cookieValue), undefined, 'a touch is due');
  await w.lifecycle.current(w.mva, cookieValue);
  t.equal(w.lifecycle.liveNow(w.mva, cookieValue)?.id, session.id, 'touched: at hand again');
  w.clock.now += IDLE_MS;
  t.equal(w.lifecycle.liveNow(w.mva, cookieValue), undefined, 'idle');
});

// ---------------------------------------------------------------- bearer, refresh

t.test('a route\'s token kind decides its bearer; an unknown kind is the gateway\'s error and needs a session', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  t.equal(await w.lifecycle.bearer('idporten', w.mva, session), session.data.tokens.accessToken);
  t.equal(await w.lifecycle.bearer('none', w.mva, undefined), undefined);
  await t.rejects(w.lifecycle.bearer('kerberos', w.mva, session), { name: 'GatewayError', code: 'internal_error', message: 'Unknown token kind kerberos.' });
  t.same(w.lifecycle.bearerNow('idporten', w.mva, session), { value: session.data.tokens.accessToken });
  t.same(w.lifecycle.bearerNow('none', w.mva, undefined), { value: undefined });
  t.equal(w.lifecycle.bearerNow('kerberos', w.mva, session), undefined, 'not at hand: bearer decides (and refuses)');
  t.equal(w.lifecycle.needsSession('idporten'), true);
  t.equal(w.lifecycle.needsSession('none'), false);
  t.equal(w.lifecycle.needsSession('kerberos'), true, 'an unknown kind is never public');
});

t.test('an access token inside its refresh leeway is refreshed at the token endpoint (RFC 6749 section 6); refreshNow refreshes at once', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  t.equal(w.lifecycle.freshNow(session), session, 'not yet due');
  t.equal(await w.lifecycle.fresh(session, w.mva), session, 'nothing to do');
  w.clock.now += 90_000;
  t.equal(w.lifecycle.freshNow(session), undefined, 'inside the leeway: only fresh can tell');
  const fresh = await w.lifecycle.fresh(session, w.mva);
  t.equal(fresh.data.tokens.accessToken, `at-for-${session.data.tokens.refreshToken}`);
  t.same(w.provider.grants().map((f) => [f.get('grant_type'), f.get('refresh_token')]), [['refresh_token', session.data.tokens.refreshToken]]);
  const forced = await w.lifecycle.refreshNow(fresh, w.mva);
  t.equal(forced.data.tokens.refreshToken, `${fresh.data.tokens.refreshToken}+`, 'refreshed although not due');
  t.equal(w.provider.grants().length, 2);
});

t.test('a refresh token the provider no longer accepts ends the session as expired, with the provider\'s reason', async (t) => {
  const w = await lifecycleWorld(t);
  const { cookieValue, session } = await w.begin(w.mva, 'u1');
  w.provider.state.grant = () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'refresh token revoked' } });
  await t.rejects(w.lifecycle.refreshNow(session, w.mva), { code: 'session_expired' });
  const [failure] = w.events('token.refresh.failure');
  t.same(w.logouts().map((l) => [l.channel, l.reason]), [['expired', failure!.reason]]);
  t.ok(typeof failure!.reason === 'string' && (failure!.reason as string).length > 0, 'a reason is given');
  t.same(await w.lifecycle.current(w.mva, cookieValue), { state: 'none' });
});

t.test('nothing is kept for a session that ended: a request still holding it gets no token from the refresh cooldown', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  w.clock.now += 95_000;
  w.provider.state.grant = () => ({ status: 503, body: { error: 'temporarily_unavailable' } });
  t.equal((await w.lifecycle.fresh(session, w.mva)).data.tokens.accessToken, session.data.tokens.accessToken, 'the provider is away and the token still valid: it is used meanwhile');
  t.equal((await w.lifecycle.fresh(session, w.mva)).data.tokens.accessToken, session.data.tokens.accessToken, 'within the cooldown: not asked again');
  t.equal(w.provider.grants().length, 1);
  await w.lifecycle.end(session, w.mva, 'rp');
  await t.rejects(w.lifecycle.fresh(session, w.mva), { code: 'session_expired' }, 'ended: its token is not handed out');
});

// ---------------------------------------------------------------- derived tokens

/** An exchange that records its calls and answers `token-N` valid for `lifetimeMs`. */
function exchange(w: Awaited<ReturnType<typeof lifecycleWorld>>, lifetimeMs = 3_600_000) {
  const calls: { accessToken: string; session: Session }[] = [];
  const obtain = async (accessToken: string, session: Session) => {
    calls.push({ accessToken, session });
    return { token: `derived-${calls.length}`, expiresAt: w.clock.now + lifetimeMs };
  };
  return { calls, obtain };
}

t.test('a derived token is obtained once from the access token, kept with the session and audited', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  t.equal(w.lifecycle.derivedNow(session, 'altinn'), undefined, 'none yet');
  const { calls, obtain } = exchange(w);
  t.equal(await w.lifecycle.derived(session, w.mva, 'altinn', obtain), 'derived-1');
  t.same(calls.map((c) => [c.accessToken, c.session.id]), [[session.data.tokens.accessToken, session.id]], 'obtained from the session\'s access token');
  const stored = await w.sessions.loadById(session.id, 'mva');
  const kept = stored.state === 'live' ? stored.session : undefined;
  t.same(kept?.data.derived, { altinn: { token: 'derived-1', expiresAt: START + 3_600_000, from: fingerprint(session.data.tokens.accessToken) } }, 'kept in the record with the access token it came from');
  t.equal(await w.lifecycle.derived(kept!, w.mva, 'altinn', obtain), 'derived-1', 'served from the record');
  t.equal(w.lifecycle.derivedNow(kept!, 'altinn'), 'derived-1');
  w.store.failing.get = true;
  t.equal(await w.lifecycle.derived(kept!, w.mva, 'altinn', obtain), 'derived-1', 'a kept token needs neither the store nor the lock');
  w.store.failing.get = false;
  t.equal(calls.length, 1, 'not obtained again');
  t.same(w.events('token.exchange'), [{
    event: 'token.exchange',
    tenant: 'mva',
    session: session.hash,
    sub: 'u1',
    kind: 'altinn',
    accessToken: fingerprint(session.data.tokens.accessToken),
    altinnToken: fingerprint('derived-1'),
    expiresAt: new Date(START + 3_600_000).toISOString(),
  }]);
});

t.test('a derived token is never served once its access token has changed (a refresh), nor from 10 s before its expiry', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const { calls, obtain } = exchange(w);
  await w.lifecycle.derived(session, w.mva, 'altinn', obtain);
  const loaded = await w.sessions.loadById(session.id, 'mva');
  const kept = loaded.state === 'live' ? loaded.session : session;
  const expiresAt = kept.data.derived!.altinn!.expiresAt;
  w.clock.now = expiresAt - 10_001;
  t.equal(w.lifecycle.derivedNow(kept, 'altinn'), 'derived-1', 'before the last 10 s');
  w.clock.now = expiresAt - 10_000;
  t.equal(w.lifecycle.derivedNow(kept, 'altinn'), undefined, 'in the last 10 s: obtained again');
  w.clock.now = START + 1_000;
  const refreshed = withData(kept, (d) => ({ tokens: { ...d.tokens, accessToken: 'at-other', accessTokenIssuedAt: w.clock.now } }));
  t.equal(w.lifecycle.derivedNow(refreshed, 'altinn'), undefined, 'another access token: not this token');
  t.equal(w.lifecycle.derivedNow(kept, 'other-kind'), undefined, 'nor for another kind');

  // A refresh at the token endpoint, then the exchange again: from the new access token.
  w.clock.now = START + 95_000;
  const fresh = await w.lifecycle.fresh(kept, w.mva);
  t.equal(fresh.data.derived, undefined, 'a refresh drops what was derived from the old token');
  t.equal(await w.lifecycle.derived(fresh, w.mva, 'altinn', obtain), 'derived-2');
  t.same(calls.map((c) => c.accessToken), [session.data.tokens.accessToken, fresh.data.tokens.accessToken]);
});

t.test('a short-lived derived token is obtained again in the last quarter of its life, not 10 s before', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const { obtain } = exchange(w, 20_000);
  await w.lifecycle.derived(session, w.mva, 'altinn', obtain);
  const loaded = await w.sessions.loadById(session.id, 'mva');
  const kept = loaded.state === 'live' ? loaded.session : session;
  w.clock.now = START + 15_000 - 1;
  t.equal(w.lifecycle.derivedNow(kept, 'altinn'), 'derived-1', '20 s from the access token\'s issue: 5 s of leeway');
  w.clock.now = START + 15_000;
  t.equal(w.lifecycle.derivedNow(kept, 'altinn'), undefined);
});

t.test('exchanges run once per session and kind: concurrent requests share one, other kinds and sessions have their own', async (t) => {
  const w = await lifecycleWorld(t);
  const a = (await w.begin(w.mva, 'u1')).session;
  const b = (await w.begin(w.mva, 'u2')).session;
  const seen: string[] = [];
  const obtain = (label: string) => async (accessToken: string) => {
    seen.push(`${label} ${accessToken}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { token: `${label} from ${accessToken}`, expiresAt: w.clock.now + 3_600_000 };
  };
  const got = await Promise.all([
    w.lifecycle.derived(a, w.mva, 'altinn', obtain('altinn')),
    w.lifecycle.derived(a, w.mva, 'altinn', obtain('altinn')),
    w.lifecycle.derived(a, w.mva, 'maskinporten', obtain('maskinporten')),
    w.lifecycle.derived(b, w.mva, 'altinn', obtain('altinn')),
  ]);
  const [atA, atB] = [a.data.tokens.accessToken, b.data.tokens.accessToken];
  t.same(got, [`altinn from ${atA}`, `altinn from ${atA}`, `maskinporten from ${atA}`, `altinn from ${atB}`]);
  t.same(seen.sort(), [`altinn ${atA}`, `altinn ${atB}`, `maskinporten ${atA}`]);
  const stored = await w.sessions.loadById(a.id, 'mva');
  t.same(Object.keys(stored.state === 'live' ? stored.session.data.derived ?? {} : {}).sort(), ['altinn', 'maskinporten'], 'both kept, neither overwrote the other');
});

t.test('one span per exchange actually run (altinn.exchange, with its tenant), not per request waiting for it', async (t) => {
  const exporter = new InMemorySpanExporter();
  const otel = (await startTelemetry({ env: {}, exporter }))!;
  t.teardown(() => otel.shutdown());
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const { obtain } = exchange(w);
  await Promise.all([w.lifecycle.derived(session, w.mva, 'altinn', obtain), w.lifecycle.derived(session, w.mva, 'altinn', obtain)]);
  const spans = exporter.getFinishedSpans().filter((s) => s.name.endsWith('.exchange'));
  t.same(spans.map((s) => [s.name, s.attributes['bff.tenant']]), [['altinn.exchange', 'mva']]);
});

t.test('a derived token another request stored meanwhile is taken from the record, not obtained again', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const { calls, obtain } = exchange(w);
  await w.lifecycle.derived(session, w.mva, 'altinn', obtain);
  t.equal(await w.lifecycle.derived(session, w.mva, 'altinn', obtain), 'derived-1', 'an older copy of the session');
  t.equal(calls.length, 1);
});

t.test('no exchange with an expired access token, and none for a session that ended meanwhile', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const { calls, obtain } = exchange(w);
  w.clock.now = session.data.tokens.accessTokenExpiresAt;
  await t.rejects(w.lifecycle.derived(session, w.mva, 'altinn', obtain), { code: 'session_expired' }, 'the access token expired at this instant');
  t.equal(calls.length, 0, 'not presented');
  w.clock.now = START;
  await t.rejects(
    w.lifecycle.derived(session, w.mva, 'altinn', async () => {
      await w.sessions.destroy(session.id);
      return { token: 'late', expiresAt: START + 3_600_000 };
    }),
    { code: 'session_expired' },
    'the session was ended during the exchange: its token is not handed out',
  );
  t.equal(w.events('token.exchange').length, 0);
});

t.test('a refresh elsewhere during an exchange keeps its tokens; the request still uses the token it obtained', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const token = await w.lifecycle.derived(session, w.mva, 'altinn', async () => {
    const rotated = withData(session, (d) => ({ tokens: { ...d.tokens, refreshToken: 'rt-rotated', accessToken: 'at-rotated' } }));
    t.equal(await w.sessions.update(rotated, sessionVersion(session.data)), 'written');
    return { token: 'derived', expiresAt: START + 3_600_000 };
  });
  t.equal(token, 'derived');
  const stored = await w.sessions.loadById(session.id, 'mva');
  t.equal(stored.state === 'live' && stored.session.data.tokens.refreshToken, 'rt-rotated', 'the rotation stays');
});

t.test('a failed exchange is audited with its underlying reason and passed on', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1');
  const err = new GatewayError('upstream_unavailable', 'The Altinn token exchange failed.', { cause: new Error('status 503') });
  await t.rejects(w.lifecycle.derived(session, w.mva, 'altinn', async () => { throw err; }), err);
  const plain = new Error('socket hang up');
  await t.rejects(w.lifecycle.derived(session, w.mva, 'altinn', async () => { throw plain; }), plain);
  t.same(w.events('token.exchange'), [
    { event: 'token.exchange', tenant: 'mva', session: session.hash, sub: 'u1', kind: 'altinn', failed: true, reason: 'status 503' },
    { event: 'token.exchange', tenant: 'mva', session: session.hash, sub: 'u1', kind: 'altinn', failed: true, reason: 'socket hang up' },
  ]);
});

// ---------------------------------------------------------------- resource tokens (RFC 8707)

t.test('a resource token (RFC 8707) is asked for by a refresh grant naming the resource, and only for a resource the login named', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1', { resources: [API] });
  t.equal(w.lifecycle.forResourceNow(session, API), undefined, 'none yet');
  t.equal(await w.lifecycle.forResource(session, w.mva, API), `at-for-${session.data.tokens.refreshToken}`);
  t.same(w.provider.grants().map((f) => [f.get('refresh_token'), f.get('resource')]), [[session.data.tokens.refreshToken, API]]);
  const stored = await w.sessions.loadById(session.id, 'mva');
  const kept = stored.state === 'live' ? stored.session : session;
  t.equal(w.lifecycle.forResourceNow(kept, API), `at-for-${session.data.tokens.refreshToken}`, 'at hand now');
  t.equal(await w.lifecycle.forResource(kept, w.mva, API), `at-for-${session.data.tokens.refreshToken}`, 'not asked for again');
  t.equal(w.provider.grants().length, 1);
  w.clock.now = kept.data.resourceTokens![API]!.accessTokenExpiresAt - 29_000;
  t.equal(w.lifecycle.forResourceNow(kept, API), undefined, 'inside its leeway: refreshed first');

  // A token for a resource the login did not name is never sent, wherever it came from.
  const smuggled = withData(kept, (d) => ({ resourceTokens: { ...d.resourceTokens, [OTHER]: { accessToken: 'other-at', accessTokenIssuedAt: START, accessTokenExpiresAt: START + 3_600_000 } } }));
  w.clock.now = START;
  t.equal(w.lifecycle.forResourceNow(smuggled, OTHER), undefined);
  await t.rejects(w.lifecycle.forResource(smuggled, w.mva, OTHER), { code: 'login_required' });
});

t.test('a resource token that is expired on arrival is not sent: the caller is asked to try again', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1', { resources: [API] });
  // expires_in 1 s, less the second kept for the provider's clock: it expires as it is stored.
  w.provider.state.grant = (form) => ({ status: 200, body: { access_token: 'api-at', token_type: 'Bearer', expires_in: 1, refresh_token: `${form.get('refresh_token')}+` } });
  await t.rejects(w.lifecycle.forResource(session, w.mva, API), { code: 'refresh_in_progress' });
  w.provider.state.grant = (form) => ({ status: 200, body: { access_token: 'api-at-2', token_type: 'Bearer', expires_in: 2, refresh_token: `${form.get('refresh_token')}+` } });
  const stored = await w.sessions.loadById(session.id, 'mva');
  t.equal(await w.lifecycle.forResource(stored.state === 'live' ? stored.session : session, w.mva, API), 'api-at-2', 'one that is still valid is sent');
});

t.test('a refresh elsewhere that wins the race against a resource token\'s grant leaves no token for it: the caller is asked to try again', async (t) => {
  const w = await lifecycleWorld(t);
  const { session } = await w.begin(w.mva, 'u1', { resources: [API] });
  w.provider.state.grant = async (form) => {
    await w.rotate(session.id);
    return { status: 200, body: { access_token: 'api-at', token_type: 'Bearer', expires_in: 120, refresh_token: `${form.get('refresh_token')}+` } };
  };
  await t.rejects(w.lifecycle.forResource(session, w.mva, API), { code: 'refresh_in_progress', message: 'The session is being refreshed; try again.' });
  const stored = await w.sessions.loadById(session.id, 'mva');
  t.equal(stored.state === 'live' && stored.session.data.tokens.refreshToken, `${session.data.tokens.refreshToken}~`, 'the winner\'s tokens stay');
});
