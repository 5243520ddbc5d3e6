/**
 * IdportenClient driven directly (no gateway) against the hostile OP, whose answers a test may bend: the
 * authorization request, the callback checks, the code exchange, the ID token checks, refresh, revocation,
 * end session, back-channel logout tokens, client authentication and the DPoP binding.
 */
import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, UnsecuredJWT, type JWK } from 'jose';
import t, { type Test } from 'tap';
import type { TenantConfig } from '../src/config/types.js';
import { accessTokenExpiry, IdportenClient, type LoginRequest, type LoginTransaction } from '../src/idporten/client.js';
import { OidcError } from '../src/idporten/errors.js';
import { signerFor } from '../src/net/dpop.js';
import { HostileOp } from './helpers/hostile-op.js';
import { RecordingProvider, REDIRECT_URI, tenantFor } from './helpers/client-harness.js';

const CLIENT_ID = 'bff-direct';
const SECRET = 'a-client-secret-that-is-long-enough-for-hs256-0123456789';
const SUBSTANTIAL = 'idporten-loa-substantial';
const HIGH = 'idporten-loa-high';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

const op = await HostileOp.start({ clientId: CLIENT_ID, clientSecret: SECRET, redirectUris: [REDIRECT_URI] });
t.teardown(() => op.close());
t.afterEach(() => {
  op.tamperIdToken = undefined;
  op.tamperAuthorizationResponse = undefined;
  op.tamperTokenResponse = undefined;
});

const baseTenant = tenantFor(op.issuer, CLIENT_ID, { clientAuth: { method: 'client_secret_post', secret: SECRET } });

function withIdporten(extra: Partial<TenantConfig['idporten']>): TenantConfig {
  return { ...baseTenant, idporten: { ...baseTenant.idporten, ...extra } };
}

/** A client on its own recording provider; `clock` records every reading of the client's clock. */
function clientFor(tenant: TenantConfig = baseTenant, rewriteMetadata?: (m: Record<string, unknown>) => void) {
  const provider = new RecordingProvider(tenant.idporten, rewriteMetadata);
  const clock: number[] = [];
  const client = new IdportenClient(tenant, provider, {
    now: () => {
      const now = Date.now();
      clock.push(now);
      return now;
    },
  });
  return { client, provider, clock };
}

async function start(client: IdportenClient, opts: Partial<LoginRequest> = {}) {
  return client.startLogin({ acr: SUBSTANTIAL, locale: 'nb', redirectUri: REDIRECT_URI, ...opts });
}

/** Sends the authorization request to the OP and returns the redirect back to the client (the callback URL). */
async function authorize(url: URL): Promise<URL> {
  const response = await fetch(url, { redirect: 'manual' });
  const location = response.headers.get('location');
  if (!location) throw new Error(`no redirect from the authorization endpoint (${response.status})`);
  return new URL(location);
}

async function login(client: IdportenClient, opts: Partial<LoginRequest> = {}) {
  const { url, transaction } = await start(client, opts);
  const callback = await authorize(url);
  return { url, transaction, callback, tokens: await client.finishLogin(callback, transaction) };
}

async function rejectsWith(t: Tap, promise: Promise<unknown>, kind: OidcError['kind'], reason?: RegExp): Promise<void> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof OidcError, `an OidcError (${String(err)})`);
  if (!(err instanceof OidcError)) return;
  t.equal(err.kind, kind, `kind ${kind}: ${err.reason}`);
  if (reason) t.match(err.reason, reason);
}
type Tap = Test;

t.test('RFC 6749 4.1.1, RFC 7636 4.2 (S256) and OIDC Core 3.1.2.1: the authorization request carries state, nonce and the S256 challenge of a fresh verifier', async (t) => {
  const { client, provider } = clientFor();
  const first = await start(client);
  const second = await start(client);
  const q = first.url.searchParams;
  t.equal(first.url.origin + first.url.pathname, `${op.issuer}/authorize`, 'a plain redirect: the provider offers no PAR endpoint');
  t.equal(provider.to('/par').length, 0);
  t.equal(q.get('client_id'), CLIENT_ID);
  t.equal(q.get('redirect_uri'), REDIRECT_URI);
  t.equal(q.get('response_type'), 'code');
  t.equal(q.get('scope'), 'openid skatteetaten:mvameldingvalidering');
  t.equal(q.get('state'), first.transaction.state);
  t.equal(q.get('nonce'), first.transaction.nonce);
  t.equal(q.get('code_challenge_method'), 'S256');
  t.equal(q.get('code_challenge'), createHash('sha256').update(first.transaction.codeVerifier).digest('base64url'));
  t.ok(first.transaction.codeVerifier.length >= 43, 'RFC 7636 4.1: at least 43 characters');
  t.equal(q.get('acr_values'), SUBSTANTIAL);
  t.equal(q.get('ui_locales'), 'nb');
  for (const absent of ['prompt', 'max_age', 'resource', 'dpop_jkt', 'request_uri']) t.notOk(q.has(absent), `no ${absent}`);
  t.same(Object.keys(first.transaction).sort(), ['acr', 'codeVerifier', 'nonce', 'state'], 'nothing else remembered');
  t.equal(first.transaction.acr, SUBSTANTIAL);
  for (const key of ['state', 'nonce', 'codeVerifier'] as const) {
    t.not(first.transaction[key], second.transaction[key], `a new ${key} per login`);
    t.ok(first.transaction[key].length >= 22, `${key} is random enough to be unguessable`);
  }
  t.equal(client.issuer, op.issuer);
  t.equal(client.provider, provider);
});

t.test('OIDC Core 3.1.2.1 prompt and max_age, RFC 8707 2.1 resource: sent only when asked, max_age 0 included', async (t) => {
  const resources = ['urn:test:one', 'urn:test:two'];
  const { client } = clientFor(withIdporten({ resources }));
  const { url, transaction } = await start(client, { prompt: 'login', maxAge: 0, acr: HIGH, locale: 'en' });
  t.equal(url.searchParams.get('prompt'), 'login');
  t.equal(url.searchParams.get('max_age'), '0');
  t.equal(url.searchParams.get('acr_values'), HIGH);
  t.equal(url.searchParams.get('ui_locales'), 'en');
  t.same(url.searchParams.getAll('resource'), resources, 'one resource parameter each');
  t.equal(transaction.maxAge, 0);
  t.same(transaction.resources, resources);
  t.equal(transaction.acr, HIGH);
  const callback = await authorize(url);
  const tokens = await client.finishLogin(callback, transaction);
  t.same(tokens.resources, resources, 'the login hands its resources on (a refresh may ask only for those)');
});

t.test('a finished login: the code exchange with the verifier, the tokens, and the access token expiry counted from the request (RFC 6749 5.1)', async (t) => {
  const { client, provider, clock } = clientFor();
  const { transaction, tokens } = await login(client);
  const exchange = provider.to('/token');
  t.equal(exchange.length, 1);
  const form = exchange[0]!.body;
  t.equal(form.get('grant_type'), 'authorization_code');
  t.equal(form.get('code_verifier'), transaction.codeVerifier, 'RFC 7636 4.5');
  t.equal(form.get('redirect_uri'), REDIRECT_URI);
  t.equal(form.get('client_secret'), SECRET, 'client_secret_post');
  t.notOk(exchange[0]!.headers.has('authorization'));
  t.notOk(exchange[0]!.headers.has('dpop'));
  t.ok(op.issuedTokens.has(tokens.accessToken));
  t.ok(tokens.refreshToken && op.issuedTokens.has(tokens.refreshToken));
  t.ok(op.issuedTokens.has(tokens.idToken));
  t.equal(tokens.scope, 'openid skatteetaten:mvameldingvalidering');
  t.equal(tokens.idTokenClaims.sub, op.sub);
  t.equal(tokens.idTokenClaims.nonce, transaction.nonce);
  t.equal(tokens.accessTokenExpiresAt, clock[0]! + 120_000 - 1_000, 'expires_in 120 from when the request went out, less a second');
  t.notOk('resources' in tokens);
  t.notOk('dpopKey' in tokens);
});

t.test('RFC 6749 5.1 expires_in: used when positive, 120 s when zero or absent', async (t) => {
  for (const [given, expected] of [[30, 30], [0, 120], [undefined, 120]] as const) {
    op.tamperTokenResponse = (tokens) => {
      if (given === undefined) delete tokens.expires_in;
      else tokens.expires_in = given;
    };
    const { client, clock } = clientFor();
    const { tokens } = await login(client);
    t.equal(tokens.accessTokenExpiresAt, clock[0]! + expected * 1000 - 1000, `expires_in ${String(given)}`);
  }
  t.equal(accessTokenExpiry(10_000, 60), 69_000);
});

t.test('RFC 6749 10.12: a callback whose state is not the transaction\'s is refused', async (t) => {
  const { client, provider } = clientFor();
  const a = await start(client);
  const b = await start(client);
  const callbackA = await authorize(a.url);
  await rejectsWith(t, client.finishLogin(callbackA, b.transaction), 'rejected');
  op.tamperAuthorizationResponse = (params) => params.set('state', 'forged');
  const c = await start(client);
  await rejectsWith(t, client.finishLogin(await authorize(c.url), c.transaction), 'rejected');
  t.equal(provider.to('/token').length, 0, 'no code was exchanged');
});

t.test('RFC 9207: the authorization response must name the issuer when the provider says it does', async (t) => {
  const { client, provider } = clientFor();
  op.tamperAuthorizationResponse = (params) => params.set('iss', 'https://attacker.example');
  const a = await start(client);
  await rejectsWith(t, client.finishLogin(await authorize(a.url), a.transaction), 'rejected');
  op.tamperAuthorizationResponse = (params) => params.delete('iss');
  const b = await start(client);
  await rejectsWith(t, client.finishLogin(await authorize(b.url), b.transaction), 'rejected');
  t.equal(provider.to('/token').length, 0);
});

t.test('RFC 7636 4.6: the code exchange proves the verifier; another verifier gets invalid_grant', async (t) => {
  const { client } = clientFor();
  const { url, transaction } = await start(client);
  const callback = await authorize(url);
  const other: LoginTransaction = { ...transaction, codeVerifier: `${transaction.codeVerifier.slice(1)}x` };
  await rejectsWith(t, client.finishLogin(callback, other), 'invalid_grant');
});

t.test('OIDC Core 3.1.3.7: the ID token is checked (nonce, signature, acr at least the one asked for, auth_time within max_age)', async (t) => {
  const { client } = clientFor();
  op.tamperIdToken = (draft) => void (draft.claims.nonce = 'another-nonce');
  await rejectsWith(t, login(client), 'rejected');

  const stranger = await op.generateKey('op-key-1');
  op.tamperIdToken = (draft) => void (draft.key = stranger.privateKey);
  await rejectsWith(t, login(client), 'rejected', /signature|verif/i);

  op.tamperIdToken = (draft) => void (draft.claims.acr = SUBSTANTIAL);
  await rejectsWith(t, login(client, { acr: HIGH }), 'rejected', /acr/);

  const longAgo = Math.floor(Date.now() / 1000) - 3600;
  op.tamperIdToken = (draft) => void (draft.claims.auth_time = longAgo);
  await rejectsWith(t, login(client, { maxAge: 60 }), 'rejected', /auth_time|max_age/);
  const { tokens } = await login(client);
  t.equal(tokens.idTokenClaims.auth_time, longAgo, 'without max_age an old authentication is accepted');
});

t.test('RFC 6749 section 6 and OIDC Core 12.2: a refresh keeps sub and acr, rotates the refresh token, asks for a resource only when told', async (t) => {
  const { client, provider, clock } = clientFor();
  const { tokens } = await login(client);
  const before = clock.length;
  const refreshed = await client.refresh(tokens.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL });
  const form = provider.to('/token').at(-1)!.body;
  t.equal(form.get('grant_type'), 'refresh_token');
  t.equal(form.get('refresh_token'), tokens.refreshToken);
  t.notOk(form.has('resource'));
  t.not(refreshed.accessToken, tokens.accessToken);
  t.ok(refreshed.refreshToken && refreshed.refreshToken !== tokens.refreshToken, 'the rotated refresh token is handed on');
  t.equal(refreshed.idTokenClaims?.sub, op.sub);
  t.equal(refreshed.accessTokenExpiresAt, clock[before]! + 119_000);

  const withResource = await client.refresh(refreshed.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL }, 'urn:test:one');
  t.same(provider.to('/token').at(-1)!.body.getAll('resource'), ['urn:test:one'], 'RFC 8707 2.2');

  op.tamperTokenResponse = (answer) => void delete answer.id_token;
  const noIdToken = await client.refresh(withResource.refreshToken!, { sub: op.sub, minimumAcr: HIGH });
  t.equal(noIdToken.idToken, undefined);
  t.equal(noIdToken.idTokenClaims, undefined, 'no ID token: nothing to check, nothing claimed');
  t.ok(noIdToken.accessToken);
});

t.test('OIDC Core 12.2: a refreshed ID token with another sub, or an acr below the session\'s, is refused; a spent refresh token is invalid_grant', async (t) => {
  const { client } = clientFor();
  const { tokens } = await login(client);
  await rejectsWith(t, client.refresh(tokens.refreshToken!, { sub: 'someone-else', minimumAcr: SUBSTANTIAL }), 'rejected', /another sub/);
  const again = await login(client);
  op.tamperIdToken = (draft, { grant }) => void (grant === 'refresh_token' && (draft.claims.sub = 'pairwise-sub-9999'));
  await rejectsWith(t, client.refresh(again.tokens.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL }), 'rejected', /another sub/);
  op.tamperIdToken = undefined;
  const third = await login(client);
  await rejectsWith(t, client.refresh(third.tokens.refreshToken!, { sub: op.sub, minimumAcr: HIGH }), 'rejected', /acr/);
  await rejectsWith(t, client.refresh(third.tokens.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL }), 'invalid_grant');
});

t.test('RFC 7009: revocation names the token and its type hint; skipped when the provider has no revocation endpoint; a refusal is an OidcError', async (t) => {
  const { client, provider } = clientFor();
  const { tokens } = await login(client);
  await client.revoke(tokens.refreshToken!, 'refresh_token');
  t.ok(op.revoked.has(tokens.refreshToken!));
  const sent = provider.to('/revoke')[0]!.body;
  t.equal(sent.get('token'), tokens.refreshToken);
  t.equal(sent.get('token_type_hint'), 'refresh_token');
  await client.revoke(tokens.accessToken, 'access_token');
  t.equal(provider.to('/revoke')[1]!.body.get('token_type_hint'), 'access_token');

  const without = clientFor(baseTenant, (m) => void delete m.revocation_endpoint);
  await client.revoke('rt-never-sent', 'refresh_token');
  await without.client.revoke('rt-never-sent-either', 'refresh_token');
  t.equal(without.provider.to('/revoke').length, 0, 'nothing sent');
  t.notOk(op.revoked.has('rt-never-sent-either'));

  const wrongSecret = clientFor(withIdporten({ clientAuth: { method: 'client_secret_post', secret: 'not-the-secret' } }));
  await rejectsWith(t, wrongSecret.client.revoke('rt-x', 'refresh_token'), 'rejected', /revocation/);
});

t.test('OIDC RP-Initiated Logout 1.0: the end-session endpoint and its parameters (id_token_hint, or client_id)', async (t) => {
  const { client } = clientFor();
  t.equal(client.endSessionEndpoint(), undefined, 'not known before the provider is loaded');
  t.notOk(client.ready);
  await client.configuration();
  t.ok(client.ready);
  t.equal(client.endSessionEndpoint(), `${op.issuer}/endsession`);
  t.same(client.endSessionParameters({ idToken: 'id.token.x' }), { post_logout_redirect_uri: baseTenant.idporten.postLogoutRedirectUri, id_token_hint: 'id.token.x' });
  t.same(client.endSessionParameters({}), { post_logout_redirect_uri: baseTenant.idporten.postLogoutRedirectUri, client_id: CLIENT_ID });
  const hinted = clientFor(withIdporten({ logoutHint: 'client_id' })).client;
  t.same(hinted.endSessionParameters({ idToken: 'id.token.x' }), { post_logout_redirect_uri: baseTenant.idporten.postLogoutRedirectUri, client_id: CLIENT_ID });
});

t.test('the Configuration is built once per provider state, and again after the provider reloads', async (t) => {
  const { client, provider } = clientFor();
  const first = await client.configuration();
  t.equal(await client.configuration(), first);
  t.equal(first.clientMetadata().client_id, CLIENT_ID);
  t.equal(first.clientMetadata().id_token_signed_response_alg, 'RS256');
  await provider.load();
  const second = await client.configuration();
  t.not(second, first, 'the new metadata gets a new Configuration');
  t.equal(await client.configuration(), second);
});

async function logoutToken(claims: Record<string, unknown>, key: CryptoKey = op.activeKey.privateKey): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const body = { iss: op.issuer, aud: CLIENT_ID, iat: now, exp: now + 120, jti: randomUUID(), events: { [BACKCHANNEL_EVENT]: {} }, sid: 'sid-1', ...claims };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete (body as Record<string, unknown>)[k];
  return new SignJWT(body).setProtectedHeader({ alg: 'RS256', kid: op.activeKey.kid!, typ: 'logout+jwt' }).sign(key);
}

t.test('OIDC Back-Channel Logout 1.0 2.6: a valid logout token gives its sid and/or sub, jti and exp', async (t) => {
  const { client } = clientFor();
  const now = Math.floor(Date.now() / 1000);
  const bySid = await client.verifyLogoutToken(await logoutToken({ jti: 'jti-1', exp: now + 100 }));
  t.same(bySid, { sid: 'sid-1', jti: 'jti-1', exp: now + 100 });
  t.notOk('sub' in bySid);
  const bySub = await client.verifyLogoutToken(await logoutToken({ sid: undefined, sub: 'sub-1', jti: 'jti-2' }));
  t.equal(bySub.sub, 'sub-1');
  t.notOk('sid' in bySub);
  const both = await client.verifyLogoutToken(await logoutToken({ sub: 'sub-1', aud: ['another-client', CLIENT_ID] }));
  t.equal(both.sid, 'sid-1');
  t.equal(both.sub, 'sub-1');
  const numericSid = await client.verifyLogoutToken(await logoutToken({ sid: 42, sub: 'sub-1' }));
  t.notOk('sid' in numericSid, 'a sid that is not a string is not one');
});

t.test('OIDC Back-Channel Logout 1.0 2.6: a logout token without the event, with a nonce, without a string jti, or without sid and sub is refused', async (t) => {
  const { client } = clientFor();
  const cases: [string, Record<string, unknown>, RegExp?][] = [
    ['no events', { events: undefined }],
    ['events without the back-channel logout member', { events: { 'http://example.com/other': {} } }, /event/],
    ['the event is not an object', { events: { [BACKCHANNEL_EVENT]: true } }, /event/],
    ['the event is null', { events: { [BACKCHANNEL_EVENT]: null } }, /event/],
    ['events is not an object', { events: 'backchannel-logout' }, /event/],
    ['a nonce', { nonce: 'n-1' }, /nonce/],
    ['no jti', { jti: undefined }],
    ['a jti that is not a string', { jti: 12345 }, /jti/],
    ['neither sid nor sub', { sid: undefined }, /neither sid nor sub/],
    ['a sid that is not a string and no sub', { sid: 42 }, /neither sid nor sub/],
    ['another audience', { aud: 'another-client' }],
    ['another issuer', { iss: 'https://attacker.example' }],
  ];
  for (const [name, claims, reason] of cases) {
    await t.test(name, async (t) => rejectsWith(t, client.verifyLogoutToken(await logoutToken(claims)), 'rejected', reason));
  }
  const stranger = await op.generateKey('op-key-1');
  await rejectsWith(t, client.verifyLogoutToken(await logoutToken({}, stranger.privateKey)), 'rejected');
});

t.test('client authentication (RFC 6749 2.3.1, RFC 7523 2.2 / OIDC Core 9): basic, post and private_key_jwt as configured', async (t) => {
  const basic = clientFor(withIdporten({ clientAuth: { method: 'client_secret_basic', secret: 'se:cret/+' } }));
  await basic.client.refresh('rt-unknown', { sub: op.sub, minimumAcr: SUBSTANTIAL }).catch(() => undefined);
  const basicRequest = basic.provider.to('/token')[0]!;
  const [scheme, credentials = ''] = (basicRequest.headers.get('authorization') ?? '').split(' ');
  t.equal(scheme, 'Basic');
  const [user = '', password = ''] = Buffer.from(credentials, 'base64').toString().split(':');
  t.same([decodeURIComponent(user), decodeURIComponent(password)], [CLIENT_ID, 'se:cret/+'], 'RFC 6749 2.3.1: client id and secret, form-encoded');
  t.notOk(basicRequest.body.has('client_secret'));
  t.notOk(basicRequest.body.has('client_assertion'));

  const post = clientFor();
  await post.client.refresh('rt-unknown', { sub: op.sub, minimumAcr: SUBSTANTIAL }).catch(() => undefined);
  t.equal(post.provider.to('/token')[0]!.body.get('client_secret'), SECRET);

  const assertionFor = async (privateKeyJwk: JWK) => {
    const c = clientFor(withIdporten({ clientAuth: { method: 'private_key_jwt', privateKeyJwk: privateKeyJwk as JsonWebKey } }));
    await c.client.refresh('rt-unknown', { sub: op.sub, minimumAcr: SUBSTANTIAL }).catch(() => undefined);
    const form = c.provider.to('/token')[0]!.body;
    t.equal(form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    t.notOk(form.has('client_secret'));
    return form.get('client_assertion') ?? '';
  };
  const ec = await generateKeyPair('ES256', { extractable: true });
  const ecJwk = await exportJWK(ec.privateKey);
  const ecAssertion = await assertionFor({ ...ecJwk, kid: 'ec-key-1' });
  t.same(decodeProtectedHeader(ecAssertion), { alg: 'ES256', kid: 'ec-key-1' }, 'EC without alg: ES256; the kid named');
  const { payload } = await jwtVerify(ecAssertion, ec.publicKey, { audience: op.issuer, issuer: CLIENT_ID, subject: CLIENT_ID });
  t.ok(payload.jti && payload.exp, 'signed with the configured key, iss = sub = client_id, aud = the issuer');

  const rsa = await generateKeyPair('RS256', { extractable: true });
  const rsaJwk = await exportJWK(rsa.privateKey);
  t.same(decodeProtectedHeader(await assertionFor(rsaJwk)), { alg: 'RS256' }, 'RSA without alg: RS256; no kid when none is configured');
  const ps = await assertionFor({ ...rsaJwk, alg: 'PS256' });
  t.same(decodeProtectedHeader(ps), { alg: 'PS256' }, 'the JWK\'s own alg is used');
  await jwtVerify(ps, await importJWK({ ...(await exportJWK(rsa.publicKey)) }, 'PS256'));
});

t.test('RFC 9449 10: dpop_jkt names the session key; the grants carry its proof, and tokens not bound to it are refused', async (t) => {
  const tenant = withIdporten({ dpop: true });
  const { client, provider } = clientFor(tenant);
  const { url, transaction } = await start(client);
  t.ok(transaction.dpopKey, 'the transaction keeps the key');
  const jkt = signerFor(transaction.dpopKey!).jkt;
  t.equal(url.searchParams.get('dpop_jkt'), jkt);

  const { dpopKey: _dropped, ...started } = transaction;
  await rejectsWith(t, client.finishLogin(new URL(`${REDIRECT_URI}?code=x&state=${transaction.state}&iss=${op.issuer}`), started), 'rejected', /DPoP key/);
  t.equal(provider.to('/token').length, 0, 'no grant without the key');

  // The hostile OP issues Bearer tokens: a plain bearer token is not bound to the session's key.
  await rejectsWith(t, client.finishLogin(await authorize(url), transaction), 'rejected', /DPoP/);
  const proof = provider.to('/token')[0]!.headers.get('dpop');
  t.ok(proof, 'the code exchange carries a DPoP proof');
  const header = decodeProtectedHeader(proof!);
  t.equal(await calculateJwkThumbprint(header.jwk as JWK), jkt, 'made with the session key');

  const bound = (jktInToken: string) => (tokens: Record<string, unknown>) => {
    tokens.token_type = 'DPoP';
    tokens.access_token = new UnsecuredJWT({ cnf: { jkt: jktInToken } }).encode();
  };
  op.tamperTokenResponse = bound('another-thumbprint');
  const other = await start(client);
  await rejectsWith(t, client.finishLogin(await authorize(other.url), other.transaction), 'rejected', /cnf\.jkt/);

  const good = await start(client);
  op.tamperTokenResponse = bound(signerFor(good.transaction.dpopKey!).jkt);
  const tokens = await client.finishLogin(await authorize(good.url), good.transaction);
  t.equal(tokens.dpopKey, good.transaction.dpopKey, 'the session is bound to the login\'s key');
  t.same((decodeJwt(tokens.accessToken).cnf as { jkt: string }).jkt, signerFor(good.transaction.dpopKey!).jkt);

  const refreshed = await client.refresh(tokens.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL, dpopKey: good.transaction.dpopKey });
  t.ok(refreshed.accessToken);
  t.ok(provider.to('/token').at(-1)!.headers.get('dpop'), 'the refresh grant carries a proof');
  op.tamperTokenResponse = undefined;
  await rejectsWith(t, client.refresh(refreshed.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL, dpopKey: good.transaction.dpopKey }), 'rejected', /DPoP/);
  const plain = await login(clientFor().client);
  const bearer = await clientFor().client.refresh(plain.tokens.refreshToken!, { sub: op.sub, minimumAcr: SUBSTANTIAL });
  t.ok(bearer.accessToken, 'without a key the refresh is a plain bearer grant');
});

t.test('OIDC Core 3.1.3.7 step 7 and Back-Channel Logout 2.6: the algorithms are the provider\'s (id_token_signing_alg_values_supported)', async (t) => {
  const { client } = clientFor(baseTenant, (m) => void (m.id_token_signing_alg_values_supported = ['ES256']));
  await rejectsWith(t, login(client), 'rejected', /alg|verif/i);
  await rejectsWith(t, client.verifyLogoutToken(await logoutToken({})), 'rejected');
  const { client: withoutList } = clientFor(baseTenant, (m) => void delete m.id_token_signing_alg_values_supported);
  t.ok((await login(withoutList)).tokens.idTokenClaims.sub, 'a provider that names none: RS256');
});

t.test('OIDC Core 3.1.2.1 max_age: auth_time is judged on the client\'s clock', async (t) => {
  const late = new IdportenClient(baseTenant, new RecordingProvider(baseTenant.idporten), { now: () => Date.now() + 3_600_000 });
  await rejectsWith(t, login(late, { maxAge: 600 }), 'rejected', /max_age/);
  t.ok((await login(clientFor().client, { maxAge: 600 })).tokens.idTokenClaims.auth_time, 'on time by the real clock');
});

t.test('OIDC Back-Channel Logout 1.0 2.4: a logout token without exp or iat is refused', async (t) => {
  const { client } = clientFor();
  await rejectsWith(t, client.verifyLogoutToken(await logoutToken({ exp: undefined })), 'rejected');
  await rejectsWith(t, client.verifyLogoutToken(await logoutToken({ iat: undefined })), 'rejected');
});

t.test('concurrent first calls share one Configuration (one build per provider state)', async (t) => {
  const { client } = clientFor();
  const [a, b, c] = await Promise.all([client.configuration(), client.configuration(), client.configuration()]);
  t.equal(b, a);
  t.equal(c, a);
});

t.test('a refusal names the step that failed (code exchange, refresh), for the log', async (t) => {
  const { client } = clientFor();
  const { url, transaction } = await start(client);
  const callback = await authorize(url);
  await rejectsWith(t, client.finishLogin(callback, { ...transaction, codeVerifier: `${transaction.codeVerifier.slice(1)}x` }), 'invalid_grant', /^code exchange: /);
  await rejectsWith(t, client.refresh('rt-unknown', { sub: op.sub, minimumAcr: SUBSTANTIAL }), 'invalid_grant', /^refresh: /);
});

t.test('OIDC Back-Channel Logout 1.0 2.4: a sub that is not a string is not one', async (t) => {
  const { client } = clientFor();
  const result = await client.verifyLogoutToken(await logoutToken({ sub: 42 }));
  t.equal(result.sid, 'sid-1');
  t.notOk('sub' in result);
  await rejectsWith(t, client.verifyLogoutToken(await logoutToken({ sid: undefined, sub: 42 })), 'rejected', /neither sid nor sub/);
});
