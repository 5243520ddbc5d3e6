/**
 * Which bearer goes to which route, and when it is refreshed: the pure decisions of src/tokens/ checked directly,
 * with no login in front (the flows through a real provider are in token-refresh.test.ts, resource-indicators.test.ts
 * and altinn-exchange.test.ts). refresh-policy.ts: when an access token is refreshed; resource-tokens.ts: what a
 * refresh grant for the session or for one RFC 8707 resource changes in the session; kinds/: what each
 * `routes[].token` sends upstream.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { GatewayError } from '../src/errors.js';
import type { TokenSet } from '../src/idporten/client.js';
import { newDpopKey } from '../src/net/dpop.js';
import type { Tenant } from '../src/tenant/tenant.js';
import { TOKEN_KINDS, type TokenSource } from '../src/tokens/kinds/index.js';
import { accessTokenValid, needsRefresh, refreshLeeway, tokenNeedsRefresh } from '../src/tokens/refresh-policy.js';
import { grantedResource, resourceTarget, SESSION_TOKEN, usableResourceToken } from '../src/tokens/resource-tokens.js';
import type { Session, SessionData } from '../src/tokens/session-data.js';

const NOW = 1_800_000_000_000;
const API = 'https://api.example.no/';
const OTHER = 'https://other.example.no/';

function sessionData(over: Partial<SessionData> = {}): SessionData {
  return {
    tenant: 'mva',
    user: { sub: 'sub-1', acr: 'idporten-loa-high', amr: ['BankID'] },
    idTokenBinding: {},
    createdAt: NOW - 60_000,
    tokens: { accessToken: 'at-1', accessTokenIssuedAt: NOW - 60_000, accessTokenExpiresAt: NOW + 60_000, refreshToken: 'rt-1', idToken: 'id-1', scope: 'openid' },
    ...over,
  } as SessionData;
}

function session(data: SessionData): Session {
  return { id: 'id', hash: 'hash', data, lastSeenAt: NOW };
}

// ---------------------------------------------------------------- refresh-policy.ts

t.test('refresh leeway: the configured leeway, but never more than a quarter of the token\'s lifetime', async (t) => {
  const lifetime = (ms: number) => ({ accessTokenIssuedAt: NOW, accessTokenExpiresAt: NOW + ms });
  t.equal(refreshLeeway(lifetime(120_000), 30_000), 30_000, 'a 120 s token gets its 30 s');
  t.equal(refreshLeeway(lifetime(120_000), 10_000), 10_000, 'a smaller configured leeway is kept');
  t.equal(refreshLeeway(lifetime(8_000), 30_000), 2_000, 'an 8 s token is refreshed in its last quarter, not on every request');
  t.equal(refreshLeeway({ accessTokenIssuedAt: NOW, accessTokenExpiresAt: NOW - 5_000 }, 30_000), 0, 'an expiry before the issue time gives no leeway, never a negative one');
});

t.test('an access token is refreshed from the start of its leeway on, and sent until it expires', async (t) => {
  const data = sessionData({ tokens: { ...sessionData().tokens, accessTokenIssuedAt: NOW - 100_000, accessTokenExpiresAt: NOW + 20_000 } });
  const expiresAt = NOW + 20_000;
  // 120 s lifetime, 30 s leeway: refresh from expiresAt - 30 s on.
  t.notOk(needsRefresh(data, 30_000, expiresAt - 30_001), 'before the leeway');
  t.ok(needsRefresh(data, 30_000, expiresAt - 30_000), 'at its start (inclusive)');
  t.ok(needsRefresh(data, 30_000, expiresAt + 1), 'after expiry');
  t.ok(tokenNeedsRefresh(data.tokens, 30_000, expiresAt - 30_000));
  t.notOk(tokenNeedsRefresh(data.tokens, 30_000, expiresAt - 30_001));
  t.ok(accessTokenValid(data, expiresAt - 1), 'valid until its expiry');
  t.notOk(accessTokenValid(data, expiresAt), 'not at its expiry (exp is the first moment it is not valid)');
});

// ---------------------------------------------------------------- resource-tokens.ts

const grant = (over: Partial<TokenSet> = {}): TokenSet => ({ accessToken: 'at-new', accessTokenExpiresAt: NOW + 120_000, refreshToken: 'rt-new', idToken: 'id-new', scope: 'openid profile', ...over }) as TokenSet;

t.test('a refresh of the session\'s token replaces its tokens, drops what was derived from the old one, keeps the resource tokens', async (t) => {
  const resourceTokens = { [API]: { accessToken: 'api-at', accessTokenIssuedAt: NOW, accessTokenExpiresAt: NOW + 60_000 } };
  const before = sessionData({ derived: { altinn: { token: 'altinn', expiresAt: NOW + 60_000, from: 'x' } }, resourceTokens });
  const after = SESSION_TOKEN.apply(before, grant(), NOW);
  t.same(after.tokens, { accessToken: 'at-new', accessTokenIssuedAt: NOW, accessTokenExpiresAt: NOW + 120_000, refreshToken: 'rt-new', idToken: 'id-new', scope: 'openid profile' });
  t.equal(after.derived, undefined, 'an Altinn token of the old access token is not sent with the new one');
  t.equal(after.resourceTokens, resourceTokens, 'resource tokens live on their own grants (RFC 8707)');
  t.equal(after.user, before.user);
  t.equal(SESSION_TOKEN.resource, undefined, 'the grant names no resource');
  // A provider that does not rotate refresh tokens (RFC 6749 section 6) sends none: the old one stays, as do the ID token and scope.
  const kept = SESSION_TOKEN.apply(before, grant({ refreshToken: undefined, idToken: undefined, scope: undefined }), NOW);
  t.same([kept.tokens.refreshToken, kept.tokens.idToken, kept.tokens.scope], ['rt-1', 'id-1', 'openid']);
  t.equal(SESSION_TOKEN.needs, needsRefresh);
  t.equal(SESSION_TOKEN.valid, accessTokenValid);
});

t.test('a refresh for one resource (RFC 8707) sets that resource\'s token alone and rotates the refresh token', async (t) => {
  const other = { accessToken: 'other-at', accessTokenIssuedAt: NOW, accessTokenExpiresAt: NOW + 60_000 };
  const derived = { altinn: { token: 'altinn', expiresAt: NOW + 60_000, from: 'x' } };
  const before = sessionData({ derived, resourceTokens: { [OTHER]: other } });
  const target = resourceTarget(API);
  t.equal(target.resource, API, 'the grant names the resource');
  t.equal(resourceTarget(API), target, 'one target per resource (it keys single-flight and cooldowns)');
  t.not(resourceTarget(OTHER), target);
  const after = target.apply(before, grant(), NOW);
  t.same(after.resourceTokens, { [OTHER]: other, [API]: { accessToken: 'at-new', accessTokenIssuedAt: NOW, accessTokenExpiresAt: NOW + 120_000 } });
  t.same(after.tokens, { ...before.tokens, refreshToken: 'rt-new', idToken: 'id-new' }, 'the session\'s own access token and scope are untouched');
  t.equal(after.derived, derived, 'what was derived from the session\'s access token stays');
  const kept = target.apply(sessionData(), grant({ refreshToken: undefined, idToken: undefined }), NOW);
  t.same([kept.tokens.refreshToken, kept.tokens.idToken], ['rt-1', 'id-1'], 'no rotation: the old refresh and ID token stay');
  t.same(Object.keys(kept.resourceTokens!), [API], 'the first resource token of a session');
});

t.test('a resource token is needed when missing or inside its leeway, sent until it expires, and only for its own resource', async (t) => {
  const expiresAt = NOW + 20_000;
  const data = sessionData({ resourceTokens: { [API]: { accessToken: 'api-at', accessTokenIssuedAt: NOW - 100_000, accessTokenExpiresAt: expiresAt } } });
  const target = resourceTarget(API);
  t.ok(resourceTarget(OTHER).needs(data, 30_000, NOW), 'another resource has none: needed');
  t.ok(target.needs(sessionData(), 30_000, NOW), 'a session with no resource tokens at all');
  t.notOk(target.needs(data, 30_000, expiresAt - 30_001), 'before its leeway');
  t.ok(target.needs(data, 30_000, expiresAt - 30_000), 'inside its leeway');
  t.ok(target.valid(data, expiresAt - 1));
  t.notOk(target.valid(data, expiresAt), 'not at its expiry');
  t.notOk(resourceTarget(OTHER).valid(data, NOW), 'another resource\'s token is never valid for this one');
  t.notOk(target.valid(sessionData(), NOW));
  t.equal(usableResourceToken(data, API, 30_000, expiresAt - 30_001), 'api-at');
  t.equal(usableResourceToken(data, API, 30_000, expiresAt - 30_000), undefined, 'to be refreshed first');
  t.equal(usableResourceToken(data, OTHER, 30_000, NOW), undefined);
});

t.test('a resource is asked for only when the login named it: a resource added later needs a new login (RFC 8707 section 2)', async (t) => {
  t.doesNotThrow(() => grantedResource(session(sessionData({ resources: [OTHER, API] })), API));
  for (const resources of [undefined, [], [OTHER], [`${API}x`]]) {
    t.throws(() => grantedResource(session(sessionData({ resources })), API), { name: 'GatewayError', code: 'login_required', message: /resource was not part of this session's login/ }, JSON.stringify(resources));
  }
});

// ---------------------------------------------------------------- kinds/

/** A token source that records what a kind asked of it. */
function source(opts: { freshNow?: boolean; derivedNow?: string; resourceNow?: string } = {}) {
  const calls: string[] = [];
  const src: TokenSource = {
    async fresh(s) {
      calls.push('fresh');
      return session({ ...s.data, tokens: { ...s.data.tokens, accessToken: 'at-fresh' } });
    },
    async derived(s, _tenant, kind, obtain) {
      calls.push(`derived ${kind}`);
      return (await obtain(s.data.tokens.accessToken, s)).token;
    },
    freshNow: (s) => (calls.push('freshNow'), opts.freshNow ? s : undefined),
    derivedNow: (_s, kind) => (calls.push(`derivedNow ${kind}`), opts.derivedNow),
    async forResource(_s, _tenant, resource) {
      calls.push(`forResource ${resource}`);
      return `token for ${resource}`;
    },
    forResourceNow: (_s, resource) => (calls.push(`forResourceNow ${resource}`), opts.resourceNow),
    upstreamNonces: undefined,
  };
  return { src, calls };
}

const tenant = (config: Record<string, unknown> = {}) => ({ id: 'mva', config }) as unknown as Tenant;

t.test('the kinds a route may name: idporten and altinn need a session, none does not', async (t) => {
  t.same([...TOKEN_KINDS.keys()].sort(), ['altinn', 'idporten', 'none']);
  for (const [name, kind] of TOKEN_KINDS) t.equal(kind.name, name);
  t.equal(TOKEN_KINDS.get('idporten')!.needsSession, true);
  t.equal(TOKEN_KINDS.get('altinn')!.needsSession, true);
  t.equal(TOKEN_KINDS.get('none')!.needsSession, false);
});

t.test('token: none sends no bearer and asks nothing of the session', async (t) => {
  const none = TOKEN_KINDS.get('none')!;
  const { src, calls } = source();
  t.equal(await none.bearer(src, tenant(), undefined), undefined);
  t.same(none.bearerNow(src, tenant(), undefined), { value: undefined }, 'at hand at once: no bearer');
  t.same(calls, []);
});

t.test('token: idporten sends the session\'s fresh access token, or for a route with a resource that resource\'s own token (RFC 8707)', async (t) => {
  const idporten = TOKEN_KINDS.get('idporten')!;
  const s = session(sessionData());
  let { src, calls } = source();
  t.equal(await idporten.bearer(src, tenant(), s), 'at-fresh', 'refreshed if needed');
  t.same(calls, ['fresh']);
  ({ src, calls } = source());
  t.equal(await idporten.bearer(src, tenant(), s, API), `token for ${API}`, 'never the session\'s own token');
  t.same(calls, [`forResource ${API}`]);

  ({ src, calls } = source({ freshNow: true }));
  t.same(idporten.bearerNow(src, tenant(), s), { value: 'at-1' }, 'at hand when no refresh is due');
  ({ src } = source({ freshNow: false }));
  t.equal(idporten.bearerNow(src, tenant(), s), undefined, 'a refresh is due: only bearer can tell');
  ({ src, calls } = source({ freshNow: true, resourceNow: 'api-at' }));
  t.same(idporten.bearerNow(src, tenant(), s, API), { value: 'api-at' });
  t.same(calls, [`forResourceNow ${API}`], 'the resource\'s token, not the session\'s');
  ({ src } = source({ freshNow: true }));
  t.equal(idporten.bearerNow(src, tenant(), s, API), undefined, 'no usable resource token: only bearer can tell');
});

t.test('token: altinn sends the Altinn token exchanged for the fresh ID-porten token, as Bearer or with a DPoP proof (altinn.dpop)', async (t) => {
  const altinn = TOKEN_KINDS.get('altinn')!;
  const seen: IncomingHttpHeaders[] = [];
  const exp = Math.floor(NOW / 1000) + 3600;
  const jwt = [{ alg: 'RS256' }, { exp }, 'sig'].map((p) => Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)).toString('base64url')).join('.');
  let status = 200;
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(status, { 'content-type': 'text/plain' }).end(jwt);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const exchangeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/exchange?x=1`;
  // Each tenant object gets its own HTTP client, so each test case makes one.
  const s = session(sessionData({ dpop: newDpopKey(), tokens: { ...sessionData().tokens, accessTokenExpiresAt: Date.now() + 3_600_000 } }));

  let { src, calls } = source();
  t.equal(await altinn.bearer(src, tenant({ altinn: { exchangeUrl } }), s), jwt);
  t.same(calls, ['fresh', 'derived altinn'], 'exchanged from the fresh access token, cached as a derived token');
  t.equal(seen[0]!.authorization, 'Bearer at-fresh');
  t.equal(seen[0]!.dpop, undefined);

  ({ src } = source());
  t.equal(await altinn.bearer(src, tenant({ altinn: { exchangeUrl, dpop: true } }), s), jwt);
  t.equal(seen[1]!.authorization, 'DPoP at-fresh', 'a DPoP-bound token goes as DPoP (RFC 9449 section 7)');
  const proof = JSON.parse(Buffer.from(String(seen[1]!.dpop).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  t.equal(proof.htm, 'GET');
  t.equal(proof.htu, exchangeUrl.split('?')[0], 'htu without the query (RFC 9449 section 4.2)');
  t.type(proof.ath, 'string', 'bound to the access token sent');

  status = 401;
  ({ src } = source());
  await t.rejects(altinn.bearer(src, tenant({ altinn: { exchangeUrl } }), s), { name: 'GatewayError', code: 'upstream_unavailable', message: 'The Altinn token exchange failed.', cause: { name: 'AltinnExchangeError', kind: 'rejected' } }, 'a failed exchange is upstream_unavailable');

  ({ src, calls } = source());
  await t.rejects(altinn.bearer(src, tenant({}), s), { name: 'GatewayError', code: 'internal_error', message: 'This tenant has no Altinn exchange configured.' }, 'no exchange configured');
  t.same(calls, [], 'nothing refreshed for a tenant that cannot exchange');

  // A session key that cannot sign is the gateway's fault, not Altinn's: it is not reported as the exchange failing.
  const badKey = session({ ...s.data, dpop: { ...s.data.dpop!, crv: 'P-384' as 'P-256' } });
  status = 200;
  ({ src } = source());
  const thrown = await altinn.bearer(src, tenant({ altinn: { exchangeUrl, dpop: true } }), badKey).then(() => undefined, (err: unknown) => err);
  t.ok(thrown instanceof Error && !(thrown instanceof GatewayError), `any other error passes unchanged (${String(thrown)})`);

  ({ src, calls } = source({ freshNow: true, derivedNow: 'altinn-cached' }));
  t.same(altinn.bearerNow(src, tenant({ altinn: { exchangeUrl } }), s), { value: 'altinn-cached' });
  t.same(calls, ['freshNow', 'derivedNow altinn']);
  ({ src, calls } = source({ freshNow: false, derivedNow: 'altinn-cached' }));
  t.equal(altinn.bearerNow(src, tenant({ altinn: { exchangeUrl } }), s), undefined, 'the access token is due a refresh: its Altinn token is not sent');
  t.same(calls, ['freshNow']);
  ({ src } = source({ freshNow: true }));
  t.equal(altinn.bearerNow(src, tenant({ altinn: { exchangeUrl } }), s), undefined, 'none cached');
  ({ src, calls } = source({ freshNow: true, derivedNow: 'altinn-cached' }));
  t.equal(altinn.bearerNow(src, tenant({}), s), undefined, 'no exchange configured');
  t.same(calls, []);
});
