import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type JWK,
} from 'jose';
import * as oidc from 'openid-client';
import t, { type Test } from 'tap';
import { ACR_HIGH, ACR_SUBSTANTIAL, startIdportenLookalike, type ClientMetadata, type IdportenLookalike } from '../demo/idporten-op.js';
import { ATTACHMENT_CONTENT_TYPES, ENVELOPE_TYPE, MAX_ATTACHMENTS, MAX_DATA_BYTES, startAltinnLookalike } from '../demo/altinn.js';
import { DEMO_ORGNR, DEVIATING_MVA_MELDING, INVALID_MVA_MELDING, konvolutt, VALID_MVA_MELDING } from '../demo/samples.js';
import { startSkatteetatenLookalike, VALIDATION_SCOPE } from '../demo/skatteetaten.js';
import { TEST_USERS } from '../demo/test-users.js';
import { fingerprint } from '../src/audit/fingerprint.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';

const SECRET = 'a-client-secret-that-is-long-enough-0123456789';
const SCOPES = 'openid profile skatteetaten:mvameldingvalidering skatteetaten:mvameldinginnsending altinn:instances.read altinn:instances.write';
const KARI = TEST_USERS[0]!;
const OLA = TEST_USERS[1]!;

type Tap = Test;

interface Sink {
  url: string;
  requests: { method: string; url: string; body: string }[];
}

/** A stand-in for a relying party's callback / logout endpoints: answers 200 and records what arrives. */
async function startSink(t: Tap): Promise<Sink> {
  const requests: Sink['requests'] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    requests.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString() });
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function startOp(t: Tap, clients: ClientMetadata[], ttl: Partial<{ accessTokenTtlSeconds: number }> = {}): Promise<IdportenLookalike> {
  const op = await startIdportenLookalike({ clients, ...ttl });
  t.teardown(() => op.close());
  return op;
}

function secretClient(clientId: string, sink: Sink, method: 'client_secret_post' | 'client_secret_basic'): ClientMetadata {
  return {
    client_id: clientId,
    client_secret: SECRET,
    token_endpoint_auth_method: method,
    redirect_uris: [`${sink.url}/callback`],
    post_logout_redirect_uris: [`${sink.url}/logged-out`],
  };
}

async function rpConfig(op: IdportenLookalike, clientId: string, auth: oidc.ClientAuth): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(op.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
}

interface LoginOptions {
  pid?: string;
  acrValues?: string;
  chooseAcr?: string;
  par?: boolean;
  browser?: Browser;
  scope?: string;
}

/** Code flow with PKCE S256, state and nonce, driven through the OP's login page like a user. */
async function login(config: oidc.Configuration, sink: Sink, opts: LoginOptions = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const params = {
    redirect_uri: `${sink.url}/callback`,
    scope: opts.scope ?? SCOPES,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    acr_values: opts.acrValues ?? ACR_SUBSTANTIAL,
    ui_locales: 'nb',
  };
  const url = opts.par ? await oidc.buildAuthorizationUrlWithPAR(config, params) : oidc.buildAuthorizationUrl(config, params);
  const browser = opts.browser ?? new Browser();
  const landed = await loginAtLookalike(browser, url.href, {
    pid: opts.pid ?? KARI.pid,
    ...(opts.chooseAcr ? { acr: opts.chooseAcr } : {}),
  });
  const tokens = await oidc.authorizationCodeGrant(config, new URL(landed.url), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  return { tokens, landed, browser };
}

/** The OAuth `error` code a rejected openid-client call carried, or 'resolved'. */
async function oauthError(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return 'resolved';
  } catch (err) {
    return (err as { error?: string }).error;
  }
}

async function verifyAgainstJwks(op: IdportenLookalike, token: string) {
  const jwks = (await (await fetch(op.jwksUri)).json()) as { keys: JWK[] };
  return jwtVerify(token, createLocalJWKSet(jwks), { issuer: op.issuer });
}

t.test('ID-porten look-alike', async (t) => {
  t.test('discovery advertises what ID-porten advertises', async (t) => {
    const op = await startOp(t, []);
    const meta = (await (await fetch(`${op.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    t.equal(meta.issuer, op.issuer);
    t.same(meta.code_challenge_methods_supported, ['S256'], 'PKCE S256 only (RFC 7636)');
    t.equal(meta.pushed_authorization_request_endpoint, `${op.issuer}/par`, 'PAR endpoint (RFC 9126)');
    t.equal(meta.authorization_response_iss_parameter_supported, true, 'RFC 9207 iss in the authorization response');
    t.same(meta.id_token_signing_alg_values_supported, ['RS256']);
    t.same(meta.response_types_supported, ['code'], 'code flow only');
    t.same(meta.subject_types_supported, ['pairwise']);
    t.same(meta.acr_values_supported, [ACR_SUBSTANTIAL, ACR_HIGH]);
    t.ok(meta.revocation_endpoint, 'revocation endpoint');
    t.ok(meta.end_session_endpoint, 'end-session endpoint');
    t.equal(meta.backchannel_logout_supported, true);
    const jwks = (await (await fetch(op.jwksUri)).json()) as { keys: JWK[] };
    t.ok(jwks.keys.length >= 1);
    for (const key of jwks.keys) {
      t.equal(key.alg, 'RS256');
      t.equal(key.d, undefined, 'JWKS never publishes private key material');
    }
  });

  const privateKeyJwt = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = { ...(await exportJWK(privateKeyJwt.publicKey)), kid: 'rp-key-1', alg: 'RS256', use: 'sig' };
  const authMethods: { name: string; metadata: (sink: Sink) => ClientMetadata; auth: () => oidc.ClientAuth; par: boolean }[] = [
    { name: 'client_secret_post', metadata: (s) => secretClient('rp-post', s, 'client_secret_post'), auth: () => oidc.ClientSecretPost(SECRET), par: false },
    { name: 'client_secret_basic', metadata: (s) => secretClient('rp-basic', s, 'client_secret_basic'), auth: () => oidc.ClientSecretBasic(SECRET), par: false },
    {
      name: 'private_key_jwt (with PAR)',
      metadata: (s) => ({
        client_id: 'rp-jwt',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [publicJwk] },
        redirect_uris: [`${s.url}/callback`],
      }),
      auth: () => oidc.PrivateKeyJwt({ key: privateKeyJwt.privateKey, kid: 'rp-key-1' }),
      par: true,
    },
  ];

  for (const method of authMethods) {
    t.test(`code flow with PKCE and ${method.name} yields ID-porten-shaped tokens`, async (t) => {
      const sink = await startSink(t);
      const client = method.metadata(sink);
      const op = await startOp(t, [client]);
      const config = await rpConfig(op, client.client_id, method.auth());
      const { tokens, landed } = await login(config, sink, { par: method.par });

      t.equal(new URL(landed.url).searchParams.get('iss'), op.issuer, 'RFC 9207 iss on the callback');
      const claims = tokens.claims()!;
      t.equal(claims.pid, KARI.pid, 'pid claim');
      t.equal(claims.locale, KARI.locale, 'locale claim');
      t.equal(claims.acr, ACR_SUBSTANTIAL);
      t.same(claims.amr, ['TestID'], 'amr is an array');
      t.type(claims.sid, 'string', 'sid claim');
      t.not(claims.sub, KARI.pid, 'sub is pairwise, not the pid');
      await verifyAgainstJwks(op, tokens.id_token!);

      t.equal(decodeProtectedHeader(tokens.access_token).typ, 'at+jwt', 'access token is a JWT (RFC 9068)');
      const { payload: at } = await verifyAgainstJwks(op, tokens.access_token);
      t.equal(at.scope, SCOPES, 'openid and the API scopes in one access token');
      t.equal(at.pid, KARI.pid);
      t.equal(at.acr, ACR_SUBSTANTIAL);
      t.equal(at.client_id, client.client_id);
      t.equal((at.exp ?? 0) - (at.iat ?? 0), 120, '120 s access tokens by default');
      t.type(tokens.refresh_token, 'string', 'refresh token without offline_access');
      for (const token of [tokens.access_token, tokens.id_token!, tokens.refresh_token!]) {
        t.ok(op.issuedTokens.has(token), 'issued token recorded');
      }
      t.equal(op.stats.codeGrants, 1);
    });
  }

  t.test('sub is pairwise: two clients see different subjects for one user, one client always the same', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp-a', sink, 'client_secret_post'), secretClient('rp-b', sink, 'client_secret_post')]);
    const a = await rpConfig(op, 'rp-a', oidc.ClientSecretPost(SECRET));
    const b = await rpConfig(op, 'rp-b', oidc.ClientSecretPost(SECRET));
    const subA1 = (await login(a, sink)).tokens.claims()!.sub;
    const subA2 = (await login(a, sink)).tokens.claims()!.sub;
    const subB = (await login(b, sink)).tokens.claims()!.sub;
    t.equal(subA1, subA2);
    t.not(subA1, subB);
  });

  t.test('the returned acr is at least the requested one', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const high = await login(config, sink, { acrValues: ACR_HIGH, chooseAcr: ACR_SUBSTANTIAL });
    t.equal(high.tokens.claims()!.acr, ACR_HIGH, 'a user cannot pick a level below the request');
    const upgraded = await login(config, sink, { acrValues: ACR_SUBSTANTIAL, chooseAcr: ACR_HIGH });
    t.equal(upgraded.tokens.claims()!.acr, ACR_HIGH, 'the user may log in at a higher level');

    // Single sign-on: a remembered substantial login does not satisfy a request for high.
    const browser = new Browser();
    await login(config, sink, { browser });
    const again = await login(config, sink, { browser, acrValues: ACR_HIGH });
    t.equal(again.tokens.claims()!.acr, ACR_HIGH);
    t.ok(browser.history.filter((r) => r.body.includes('id="login-form"')).length === 2, 'the login page was shown again');
  });

  t.test('refresh tokens rotate, and reusing a consumed one revokes the whole grant', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens } = await login(config, sink);
    const first = tokens.refresh_token!;

    const refreshed = await oidc.refreshTokenGrant(config, first);
    const second = refreshed.refresh_token!;
    t.not(second, first, 'a new refresh token each time');
    t.equal(refreshed.claims()!.sub, tokens.claims()!.sub);
    t.equal(await op.isRefreshTokenActive(first), false, 'the used token is consumed');
    t.equal(await op.isRefreshTokenActive(second), true);
    t.equal(op.stats.refreshGrants, 1);

    // OAuth 2.0 Security BCP §4.14.2: reuse of a rotated refresh token invalidates the grant.
    t.equal(await oauthError(oidc.refreshTokenGrant(config, first)), 'invalid_grant');
    t.equal(await op.isRefreshTokenActive(second), false, 'the newest token died with the grant');
    t.equal(await oauthError(oidc.refreshTokenGrant(config, second)), 'invalid_grant');
    t.equal(op.stats.refreshGrantErrors, 2);
  });

  t.test('observation: every presentation of a refresh token by fingerprint, the grant of each access token, the connection of each request', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const connections: { id: number; remoteAddress: string; remotePort: number }[] = [];
    op.observed.onConnection((c) => connections.push(c));
    const heard: string[] = [];
    op.observed.onGrant((record) => heard.push(record.grantType));
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens } = await login(config, sink);
    const first = tokens.refresh_token!;
    const refreshed = await oidc.refreshTokenGrant(config, first);
    await oauthError(oidc.refreshTokenGrant(config, first));

    const [code, refresh, reuse] = op.observed.grants;
    t.equal(op.observed.grants.length, 3);
    t.same(heard, ['authorization_code', 'refresh_token', 'refresh_token'], 'listeners hear each grant as it is decided');
    const grantId = code!.grantId;
    t.ok(grantId, 'the code grant names its grant');
    t.match(code, { grantType: 'authorization_code', ok: true, issued: fingerprint(first) });
    t.match(refresh, { grantType: 'refresh_token', ok: true, grantId, presented: fingerprint(first), issued: fingerprint(refreshed.refresh_token!) });
    t.match(reuse, { grantType: 'refresh_token', ok: false, grantId, presented: fingerprint(first), error: 'invalid_grant: refresh token already used' });
    t.notOk('issued' in reuse!, 'a refused grant issues nothing');
    t.notMatch(JSON.stringify(op.observed.grants), first, 'records carry fingerprints, never tokens');

    for (const token of [tokens.access_token, refreshed.access_token]) {
      t.equal(op.observed.accessTokenGrants.get(String(decodeJwt(token).jti)), grantId, 'each access token maps to its grant by jti');
    }
    const used = new Set(op.observed.grants.map((g) => g.connection));
    t.ok([...used].every((id) => connections.some((c) => c.id === id && c.remoteAddress === '127.0.0.1' && c.remotePort > 0)), 'each request names a connection announced with its peer');
  });

  t.test('an authorization request without PKCE is refused', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${sink.url}/callback`,
      scope: 'openid',
      state: 'state-1',
      nonce: 'nonce-1',
    });
    const res = await new Browser().navigate(url.href);
    const callback = new URL(res.url);
    t.equal(callback.pathname, '/callback');
    t.equal(callback.searchParams.get('error'), 'invalid_request');
    t.match(callback.searchParams.get('error_description'), /PKCE/);
    t.notOk(callback.searchParams.get('code'));
  });

  t.test('cancelling at the login page sends error=access_denied to the client', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${sink.url}/callback`,
      scope: 'openid',
      state: 'state-1',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const browser = new Browser();
    const page = await browser.navigate(url.href);
    const cancelHref = /id="login-cancel" href="([^"]+)"/.exec(page.body)?.[1];
    t.ok(cancelHref, 'the page offers a cancel link');
    const res = await browser.navigate(new URL(cancelHref!, page.url).href);
    const callback = new URL(res.url);
    t.equal(callback.searchParams.get('error'), 'access_denied');
    t.equal(callback.searchParams.get('state'), 'state-1');
    t.equal(callback.searchParams.get('iss'), op.issuer);
  });

  t.test('the login page escapes what it renders', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [{ ...secretClient('rp', sink, 'client_secret_post'), client_name: '<script>alert(1)</script>' }]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${sink.url}/callback`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const page = await new Browser().navigate(url.href);
    t.notMatch(page.body, '<script>alert(1)</script>');
    t.match(page.body, '&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  t.test('short token lifetimes are honoured', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')], { accessTokenTtlSeconds: 3 });
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens } = await login(config, sink);
    const at = decodeJwt(tokens.access_token);
    t.equal((at.exp ?? 0) - (at.iat ?? 0), 3);
    t.equal(tokens.expires_in, 3);
  });

  t.test('the token endpoint can be taken down and brought back', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens } = await login(config, sink);
    op.setTokenEndpointDown(true);
    const down = await fetch(`${op.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: 'rp', client_secret: SECRET }),
    });
    t.equal(down.status, 503);
    t.equal(await op.isRefreshTokenActive(tokens.refresh_token!), true, 'the outage consumed nothing');
    op.setTokenEndpointDown(false);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    t.type(refreshed.access_token, 'string');
  });

  t.test('revocation: refresh tokens die, JWT access tokens are accepted with 200', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens } = await login(config, sink);
    await oidc.tokenRevocation(config, tokens.access_token);
    await oidc.tokenRevocation(config, tokens.refresh_token!);
    t.equal(await op.isRefreshTokenActive(tokens.refresh_token!), false);
    t.equal(await oauthError(oidc.refreshTokenGrant(config, tokens.refresh_token!)), 'invalid_grant');
    t.equal(op.stats.revocations, 2);
    const wrongSecret = await fetch(`${op.issuer}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token, client_id: 'rp', client_secret: 'wrong' }),
    });
    t.equal(wrongSecret.status, 401, 'the client is still authenticated when the token is a JWT');
  });

  t.test('RP-initiated logout ends at post_logout_redirect_uri without a click and notifies back-channel', async (t) => {
    const sink = await startSink(t);
    const client = {
      ...secretClient('rp', sink, 'client_secret_post'),
      backchannel_logout_uri: `${sink.url}/backchannel`,
      backchannel_logout_session_required: true,
    };
    const op = await startOp(t, [client]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens, browser } = await login(config, sink);
    const sid = tokens.claims()!.sid;

    // The gateway's logout page posts this form to end_session_endpoint.
    const endSession = config.serverMetadata().end_session_endpoint!;
    const page = `<form method="post" action="${endSession}">
      <input type="hidden" name="id_token_hint" value="${tokens.id_token}">
      <input type="hidden" name="post_logout_redirect_uri" value="${sink.url}/logged-out">
      <input type="hidden" name="state" value="bye-1"></form>`;
    const afterOp = await browser.submitForm(page, sink.url, 0);
    const done = await browser.followAutoSubmit(afterOp);
    t.equal(done.url, `${sink.url}/logged-out?state=bye-1`);

    const delivery = sink.requests.find((r) => r.url === '/backchannel');
    t.ok(delivery, 'logout token delivered to 127.0.0.1');
    const logoutToken = new URLSearchParams(delivery!.body).get('logout_token')!;
    const { payload } = await verifyAgainstJwks(op, logoutToken);
    t.equal(payload.sid, sid);
    t.equal(payload.sub, tokens.claims()!.sub);
    t.ok((payload.events as Record<string, unknown>)['http://schemas.openid.net/event/backchannel-logout']);
    t.equal(payload.nonce, undefined);

    t.equal(await op.isRefreshTokenActive(tokens.refresh_token!), true, 'like ID-porten, logout does not revoke API tokens');
    const relogin = await browser.navigate(oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${sink.url}/callback`,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    }).href);
    t.match(relogin.body, 'id="login-form"', 'the OP session is gone');
  });

  t.test('signing keys rotate; the old key stays published until dropped', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const before = await login(config, sink);
    const oldKid = decodeProtectedHeader(before.tokens.id_token!).kid;

    await op.rotateSigningKey();
    const refreshed = await oidc.refreshTokenGrant(config, before.tokens.refresh_token!);
    const newKid = decodeProtectedHeader(refreshed.access_token).kid;
    t.not(newKid, oldKid, 'new tokens carry the new kid');
    let kids = ((await (await fetch(op.jwksUri)).json()) as { keys: JWK[] }).keys.map((k) => k.kid);
    t.same(kids.sort(), [oldKid, newKid].sort());
    t.equal(await op.isRefreshTokenActive(refreshed.refresh_token!), true, 'grants survive the rotation');

    await op.rotateSigningKey({ dropOld: true });
    kids = ((await (await fetch(op.jwksUri)).json()) as { keys: JWK[] }).keys.map((k) => k.kid);
    t.equal(kids.length, 1);
    t.notOk(kids.includes(oldKid) || kids.includes(newKid));
  });

  t.test('a second user gets their own pid', async (t) => {
    const sink = await startSink(t);
    const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')]);
    const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
    const { tokens } = await login(config, sink, { pid: OLA.pid });
    t.equal(tokens.claims()!.pid, OLA.pid);
    t.equal(tokens.claims()!.locale, OLA.locale);
  });
});

/** An OP with one client and a helper that logs Kari (or someone else) in and returns the tokens. */
async function startTokenSource(t: Tap, opTtl: { accessTokenTtlSeconds?: number } = {}) {
  const sink = await startSink(t);
  const op = await startOp(t, [secretClient('rp', sink, 'client_secret_post')], opTtl);
  const config = await rpConfig(op, 'rp', oidc.ClientSecretPost(SECRET));
  return {
    op,
    tokens: async (opts: LoginOptions = {}) => (await login(config, sink, opts)).tokens,
  };
}

/** A token that looks like the OP's but is signed with someone else's key. */
async function forgeToken(op: IdportenLookalike, claims: Record<string, unknown>): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  const jwks = (await (await fetch(op.jwksUri)).json()) as { keys: JWK[] };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwks.keys[0]!.kid! })
    .setIssuer(op.issuer)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(privateKey);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('Skatteetaten validation look-alike', async (t) => {
  const source = await startTokenSource(t);
  const skatt = await startSkatteetatenLookalike({ issuer: source.op.issuer, jwksUri: source.op.jwksUri });
  t.teardown(() => skatt.close());
  const good = await source.tokens();
  const validate = (authorization: string | undefined, body = VALID_MVA_MELDING, contentType = 'application/xml') =>
    fetch(skatt.validationUrl, {
      method: 'POST',
      headers: { 'content-type': contentType, ...(authorization ? { authorization } : {}) },
      body,
    });

  t.test('a request without a token gets 401 and a bare Bearer challenge (RFC 6750 §3.1)', async (t) => {
    const res = await validate(undefined);
    t.equal(res.status, 401);
    t.match(res.headers.get('www-authenticate'), /^Bearer realm="[^"]+"$/);
  });

  t.test('a token signed by another key gets 401 invalid_token', async (t) => {
    const forged = await forgeToken(source.op, { scope: VALIDATION_SCOPE, pid: KARI.pid });
    const res = await validate(`Bearer ${forged}`);
    t.equal(res.status, 401);
    t.match(res.headers.get('www-authenticate'), 'error="invalid_token"');
  });

  t.test('an expired token gets 401 invalid_token', async (t) => {
    const shortLived = await startTokenSource(t, { accessTokenTtlSeconds: 1 });
    const skattShort = await startSkatteetatenLookalike({ issuer: shortLived.op.issuer, jwksUri: shortLived.op.jwksUri });
    t.teardown(() => skattShort.close());
    const { access_token: token } = await shortLived.tokens();
    await sleep(2100);
    const res = await fetch(skattShort.validationUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/xml', authorization: `Bearer ${token}` },
      body: VALID_MVA_MELDING,
    });
    t.equal(res.status, 401);
    t.match(res.headers.get('www-authenticate'), /error="invalid_token", error_description="token expired"/);
  });

  t.test('a token without the validation scope gets 403 insufficient_scope', async (t) => {
    const { access_token: token } = await source.tokens({ scope: 'openid altinn:instances.read' });
    const res = await validate(`Bearer ${token}`);
    t.equal(res.status, 403);
    t.match(res.headers.get('www-authenticate'), `error="insufficient_scope"`);
    t.match(res.headers.get('www-authenticate'), `scope="${VALIDATION_SCOPE}"`);
  });

  // Sources: the schema no.skatteetaten.fastsetting.avgift.mva.valideringsresultat.v1.xsd (mva-meldingen,
  // docs/informasjonsmodell_filer/xsd/), the API page (skatteetaten.github.io/mva-meldingen/documentation/api/,
  // "Valider skattemelding"), the implementation guide (…/documentation/implementasjonsguide/, "Valideringen lykkes
  // med avvik") and api-dokumentasjon's error table (skatteetaten.github.io/api-dokumentasjon/api/mvameldingvalidering).
  const NS = 'xmlns="no:skatteetaten:fastsetting:avgift:mva:valideringsresultat:v1"';

  t.test('a valid return: 200 and the XSD\'s namespaced valideringsresultat with "ingen avvik" (valideringsresultat.v1.xsd)', async (t) => {
    const res = await validate(`Bearer ${good.access_token}`);
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^application\/xml/);
    const body = await res.text();
    t.match(body, `<valideringsresultat ${NS}>`);
    t.match(body, '<avvikVedMeldingslevering>ingen avvik</avvikVedMeldingslevering>');
    t.notMatch(body, '<avvik>', 'zero avvik entries');
    t.notMatch(body, /GYLDIG|<status>/, 'no status word the schema does not have');
  });

  t.test('an invalid return still gets 200 (API page: "status: 200"), as "ugyldig skattemelding" with one avvik per broken rule', async (t) => {
    const res = await validate(`Bearer ${good.access_token}`, INVALID_MVA_MELDING);
    t.equal(res.status, 200);
    const body = await res.text();
    t.match(body, '<avvikVedMeldingslevering>ugyldig skattemelding</avvikVedMeldingslevering>');
    const avvik = [...body.matchAll(/<avvik>([\s\S]*?)<\/avvik>/g)].map((m) => m[1]!);
    t.equal(avvik.length, 2, 'no tax period, and the lines do not add up');
    const r018 = avvik.find((a) => a.includes('<regelDefinisjon>R018</regelDefinisjon>'));
    t.ok(r018, 'R018 is reported');
    // Element order of the schema's sequences: Avvik (stiTilAvvik, mvaKode?, avviksinformasjon+),
    // Avviksinformasjon (begrunnelse, avvikstype, avvikKode, regelDefinisjon, detaljer?).
    t.match(r018, /^\s*<stiTilAvvik>\/mvaMeldingDto\/skattegrunnlagOgBeregnetSkatt\/fastsattMerverdiavgift<\/stiTilAvvik>\s*<avviksinformasjon>\s*<begrunnelse>[^<]+<\/begrunnelse>\s*<avvikstype>ugyldig skattemelding<\/avvikstype>\s*<avvikKode>[^<]+<\/avvikKode>\s*<regelDefinisjon>R018<\/regelDefinisjon>\s*<detaljer>[^<]*8500[^<]*9000[^<]*<\/detaljer>\s*<\/avviksinformasjon>\s*$/);
    t.ok(avvik.some((a) => a.includes('skattleggingsperiode mangler')), 'no tax period');
  });

  t.test('deviations only: "avvikende skattemelding", still valid (implementation guide, "Valideringen lykkes med avvik")', async (t) => {
    const res = await validate(`Bearer ${good.access_token}`, DEVIATING_MVA_MELDING);
    t.equal(res.status, 200);
    const body = await res.text();
    t.match(body, '<avvikVedMeldingslevering>avvikende skattemelding</avvikVedMeldingslevering>');
    t.match(body, '<regelDefinisjon>R019</regelDefinisjon>');
    t.match(body, '<mvaKode>3</mvaKode>', 'the avvik names the mva-kode of its line');
    t.match(body, '<stiTilAvvik>/mvaMeldingDto/skattegrunnlagOgBeregnetSkatt/mvaSpesifikasjonslinje[1]/merverdiavgift</stiTilAvvik>');
    t.notMatch(body, 'ugyldig skattemelding');
  });

  t.test('the API page\'s own example: an empty mvaMeldingDto is a schema error, MvaMeldingsinnhold_Xml_SkjemaValideringsfeil', async (t) => {
    const empty = '<?xml version=\'1.0\' encoding=\'UTF-8\'?>\n<mvaMeldingDto xmlns="no:skatteetaten:fastsetting:avgift:mva:skattemeldingformerverdiavgift:v1.0">\n\n</mvaMeldingDto>';
    const body = await (await validate(`Bearer ${good.access_token}`, empty)).text();
    t.match(body, '<avvikVedMeldingslevering>ugyldig skattemelding</avvikVedMeldingslevering>');
    t.match(body, '<avvikKode>MvaMeldingsinnhold_Xml_SkjemaValideringsfeil</avvikKode>');
  });

  t.test('resultFormat api-eksempel answers the API page\'s example shape: no namespace, <status>UGYLDIG_SKATTEMELDING</status>, valideringsfeil', async (t) => {
    const legacy = await startSkatteetatenLookalike({ issuer: source.op.issuer, jwksUri: source.op.jwksUri, resultFormat: 'api-eksempel' });
    t.teardown(() => legacy.close());
    const post = (body: string) => fetch(legacy.validationUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/xml', authorization: `Bearer ${good.access_token}` },
      body,
    });
    const invalid = await (await post(INVALID_MVA_MELDING)).text();
    t.match(invalid, /<valideringsresultat>\s*<status>UGYLDIG_SKATTEMELDING<\/status>/);
    t.match(invalid, /<valideringsfeil>\s*<stiTilFeil>[^<]+<\/stiTilFeil>\s*<valideringsDetaljer>\s*<feilmelding>[^<]+<\/feilmelding>\s*<alvorlighetsgrad>UGYLDIG_SKATTEMELDING<\/alvorlighetsgrad>\s*<avvikKode>[^<]+<\/avvikKode>\s*<informasjon>R0\d\d[^<]*<\/informasjon>/);
    t.notMatch(invalid, 'xmlns');
    t.match(await (await post(VALID_MVA_MELDING)).text(), '<status>INGEN_AVVIK</status>');
    t.match(await (await post(DEVIATING_MVA_MELDING)).text(), '<status>AVVIKENDE_SKATTEMELDING</status>');
  });

  t.test('Accept: XML by default, JSON on request, anything else 406 "Kun json eller xml er støttet" (api-dokumentasjon, Feilkoder)', async (t) => {
    const post = (accept: string) => fetch(skatt.validationUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/xml', accept, authorization: `Bearer ${good.access_token}` },
      body: DEVIATING_MVA_MELDING,
    });
    for (const accept of ['*/*', 'application/xml', 'text/xml', 'text/html, */*;q=0.1', 'application/json;q=0.5, application/xml']) {
      t.match((await post(accept)).headers.get('content-type'), /^application\/xml/, `Accept: ${accept}`);
    }
    const json = await post('application/json');
    t.equal(json.status, 200);
    const result = (await json.json()) as { avvikVedMeldingslevering: string; avvik: { stiTilAvvik: string; avviksinformasjon: { regelDefinisjon: string }[] }[] };
    t.equal(result.avvikVedMeldingslevering, 'avvikende skattemelding');
    t.equal(result.avvik[0]?.avviksinformasjon[0]?.regelDefinisjon, 'R019');
    t.match((await post('application/json, */*')).headers.get('content-type'), /^application\/json/, 'JSON named outright beats XML through */*');
    for (const accept of ['text/html', 'application/pdf', 'application/xml;q=0']) {
      const refused = await post(accept);
      t.equal(refused.status, 406, `Accept: ${accept}`);
      t.match(await refused.text(), 'Kun json eller xml er støttet');
    }
  });

  t.test('malformed XML, a foreign root and a DTD are R001 "ugyldig skattemelding"; a non-XML body is 406', async (t) => {
    const broken = await (await validate(`Bearer ${good.access_token}`, '<mvaMeldingDto><a></mvaMeldingDto>')).text();
    t.match(broken, '<avvikVedMeldingslevering>ugyldig skattemelding</avvikVedMeldingslevering>');
    t.match(broken, '<regelDefinisjon>R001</regelDefinisjon>');
    const foreign = await (await validate(`Bearer ${good.access_token}`, '<skattemelding/>')).text();
    t.match(foreign, 'rotelementet må være mvaMeldingDto');
    const dtd = await (await validate(`Bearer ${good.access_token}`, '<!DOCTYPE x [<!ENTITY e "x">]><mvaMeldingDto/>')).text();
    t.match(dtd, 'DTD er ikke tillatt');
    const json = await validate(`Bearer ${good.access_token}`, '{}', 'application/json');
    t.equal(json.status, 406);
  });

  t.test('echo reflects the request and a digest of the streamed body, never the bearer itself', async (t) => {
    const payload = Buffer.alloc(3 * 1024 * 1024 + 17, 'x');
    const res = await fetch(`${skatt.url}/echo/some/path?a=1&b=two`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${good.access_token}`, 'x-test': 'yes' },
      body: payload,
    });
    t.equal(res.status, 200);
    const echo = (await res.json()) as Record<string, any>;
    t.equal(echo.method, 'PUT');
    t.equal(echo.path, '/echo/some/path');
    t.equal(echo.query, 'a=1&b=two');
    t.equal(echo.headers['x-test'], 'yes');
    t.same(echo.body, { sha256: createHash('sha256').update(payload).digest('hex'), length: payload.length });
    t.notMatch(JSON.stringify(echo), good.access_token, 'the token is not reflected');
    t.match(echo.headers.authorization, /^Bearer fingerprint:[\w-]{12}$/);
    t.equal(echo.tokenClaims.jti, decodeJwt(good.access_token).jti, 'the token is named by its jti');
    t.equal(skatt.requests.at(-1)?.bodySize, payload.length);

    const forged = await forgeToken(source.op, { scope: VALIDATION_SCOPE });
    t.equal((await fetch(`${skatt.url}/echo/x`, { headers: { authorization: `Bearer ${forged}` } })).status, 401);
    t.equal((await fetch(`${skatt.url}/echo/x`)).status, 401);
  });
});

t.test('Altinn look-alike', async (t) => {
  const source = await startTokenSource(t);
  const altinn = await startAltinnLookalike({ issuer: source.op.issuer, jwksUri: source.op.jwksUri, feedbackDelayMs: 150 });
  t.teardown(() => altinn.close());
  const kari = await source.tokens();
  const exchange = (authorization?: string) =>
    fetch(altinn.exchangeUrl, { headers: authorization ? { authorization } : {} });

  t.test('the exchange refuses missing and forged ID-porten tokens', async (t) => {
    t.equal((await exchange()).status, 401);
    const forged = await forgeToken(source.op, { pid: KARI.pid, scope: SCOPES });
    const res = await exchange(`Bearer ${forged}`);
    t.equal(res.status, 401);
    t.match(res.headers.get('www-authenticate'), 'invalid_token');
    t.equal(altinn.stats.exchanges, 0);
  });

  t.test('the exchange answers the Altinn JWT itself as text, with the ID-porten token\'s expiry (API page, Veksle ID-porten token til Altinn-token)', async (t) => {
    const res = await exchange(`Bearer ${kari.access_token}`);
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/plain/);
    const altinnToken = await res.text();
    const { payload } = await jwtVerify(altinnToken, createRemoteJWKSet(new URL(altinn.jwksUri)), { issuer: altinn.url });
    t.equal(payload.exp, decodeJwt(kari.access_token).exp, 'same exp as the ID-porten access token');
    t.equal(payload['urn:altinn:partyid'], KARI.altinnPartyId);
    t.equal(payload['urn:altinn:userid'], String(KARI.altinnUserId));
    t.equal(payload.scope, SCOPES);
    t.ok(altinn.issuedTokens.has(altinnToken));
    t.equal(altinn.stats.exchanges, 1);
  });

  t.test('the app refuses an ID-porten token used directly', async (t) => {
    const res = await fetch(`${altinn.appUrl}/instances`, {
      method: 'POST',
      headers: { authorization: `Bearer ${kari.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ instanceOwner: { partyId: String(KARI.altinnPartyId) } }),
    });
    t.equal(res.status, 401);
  });

  // Sources: the API page (skatteetaten.github.io/mva-meldingen/documentation/api/, sections named in each test),
  // the implementation guide (…/documentation/implementasjonsguide/, steps 6–8) and
  // skatteetaten.github.io/api-dokumentasjon/api/mvameldinginnsending ("Hent tilbakemelding").
  let cachedToken: string | undefined;
  const altinnToken = async () => (cachedToken ??= await (await exchange(`Bearer ${kari.access_token}`)).text());
  const call = async (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(`${altinn.appUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${await altinnToken()}`, ...(body !== undefined && !headers['content-type'] ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: body as BodyInit } : {}),
    });
  const xml = (name?: string) => ({ 'content-type': 'text/xml', ...(name ? { 'content-disposition': `attachment; filename=${name}` } : {}) });
  const pdf = (name: string) => ({ 'content-type': 'application/pdf', 'content-disposition': `attachment; filename="${name}"` });

  interface Element { id: string; dataType: string; filename: string | null; contentType: string; size: number; sha256: string; selfLinks: { apps: string } }
  interface InstanceJson {
    id: string;
    instanceOwner: { partyId: string; organisationNumber?: string };
    process: { currentTask: { name: string; altinnTaskType: string } | null; ended: string | null };
    status: { isArchived: boolean; substatus?: { label: string } };
    data: Element[];
  }

  /** Creates an instance for DEMO_ORGNR and fills it: envelope, return, attachments (defaults: the documented happy path). */
  async function filled(opts: { orgnr?: string; envelope?: string; melding?: string; meldingName?: string; attachments?: { name: string; body?: Buffer; type?: string }[] } = {}) {
    const created = await call('POST', '/instances', JSON.stringify({ instanceOwner: { organisationNumber: opts.orgnr ?? DEMO_ORGNR } }));
    const instance = (await created.json()) as InstanceJson;
    const base = `/instances/${instance.id}`;
    const attachments = opts.attachments ?? [{ name: 'merknaderTilMvaMeldingen.pdf' }];
    const envelopeElement = instance.data.find((d) => d.dataType === ENVELOPE_TYPE)!;
    const put = await call('PUT', `${base}/data/${envelopeElement.id}`, opts.envelope ?? konvolutt({ vedlegg: attachments.map((a) => a.name) }), { 'content-type': 'application/xml' });
    const melding = await call('POST', `${base}/data?datatype=mvamelding`, opts.melding ?? VALID_MVA_MELDING, xml(opts.meldingName ?? 'mvaMelding.xml'));
    const uploads = [];
    for (const a of attachments) {
      uploads.push(await call('POST', `${base}/data?datatype=binaerVedlegg`, a.body ?? Buffer.from('%PDF-1.4 attachment'), { ...pdf(a.name), ...(a.type ? { 'content-type': a.type } : {}) }));
    }
    return { instance, base, put, melding, uploads };
  }
  const next = (base: string) => call('PUT', `${base}/process/next`);

  t.test('POST instances answers 201 with the instance and its empty envelope element (API page, Opprett Instans; Last Opp MvaMeldingInnsending)', async (t) => {
    const created = await call('POST', '/instances', JSON.stringify({ instanceOwner: { organisationNumber: DEMO_ORGNR } }));
    t.equal(created.status, 201);
    const instance = (await created.json()) as InstanceJson;
    t.match(instance.id, new RegExp(`^${KARI.altinnPartyId}/[0-9a-f-]{36}$`));
    t.equal(instance.instanceOwner.organisationNumber, DEMO_ORGNR);
    t.equal(instance.process.currentTask?.altinnTaskType, 'data');
    t.same(instance.data.map((d) => [d.dataType, d.contentType]), [[ENVELOPE_TYPE, 'application/xml']], 'the envelope exists from the start; it is filled with PUT');
    t.equal(instance.data[0]!.selfLinks.apps, `${altinn.appUrl}/instances/${instance.id}/data/${instance.data[0]!.id}`);
    const unknownOrg = await call('POST', '/instances', JSON.stringify({ instanceOwner: { organisationNumber: '123' } }));
    t.equal(unknownOrg.status, 404, 'an organisation number that does not resolve: 404 Cannot lookup party');
    t.match(await unknownOrg.text(), 'Cannot lookup party');
  });

  t.test('the documented submission: envelope, return, attachment, process/next twice, betalingsinformasjon, feedback/status, valideringsresultat and kvittering', async (t) => {
    const attachment = Buffer.alloc(2 * 1024 * 1024, 7);
    const { instance, base, put, melding, uploads } = await filled({ attachments: [{ name: 'merknaderTilMvaMeldingen.pdf', body: attachment }] });
    t.equal(put.status, 200, 'PUT fills the envelope');
    t.equal(melding.status, 201, 'POST …/data?datatype=mvamelding (the API page\'s lower-case spelling)');
    const element = (await melding.json()) as Element;
    t.equal(element.size, Buffer.byteLength(VALID_MVA_MELDING));
    t.equal(element.sha256, createHash('sha256').update(VALID_MVA_MELDING).digest('hex'));
    t.equal(element.filename, 'mvaMelding.xml');
    t.equal(await (await call('GET', `${base}/data/${element.id}`)).text(), VALID_MVA_MELDING, 'the return reads back');
    t.equal(uploads[0]!.status, 201);
    const vedlegg = (await uploads[0]!.json()) as Element;
    t.same([vedlegg.dataType, vedlegg.filename, vedlegg.size], ['binaerVedlegg', 'merknaderTilMvaMeldingen.pdf', attachment.length]);

    t.same(await (await call('GET', `${base}/feedback/status`)).json(), { isFeedbackProvided: false }, 'feedback/status: { isFeedbackProvided: boolean }');

    const toConfirm = await next(base);
    t.equal(toConfirm.status, 200, 'Fullfør utfylling');
    t.equal(((await toConfirm.json()) as InstanceJson['process']).currentTask?.altinnTaskType, 'confirm');
    t.equal((await call('POST', `${base}/data?dataType=binaerVedlegg`, 'late', pdf('late.pdf'))).status, 409, 'data is frozen after the data task');
    const toFeedback = await next(base);
    t.equal(toFeedback.status, 200, 'Fullfør MvaMeldingInnsending');
    const process = (await toFeedback.json()) as InstanceJson['process'];
    t.equal(process.currentTask?.name, 'Tilbakemelding', 'api-dokumentasjon: process.currentTask.name = "Tilbakemelding" while Skatteetaten works');

    // API page, "Betalingsinformasjon tilgjengelig": available as soon as the submission is complete.
    let current = (await (await call('GET', base)).json()) as InstanceJson;
    const betaling = current.data.find((d) => d.dataType === 'betalingsinformasjon');
    t.ok(betaling, 'betalingsinformasjon right after the second process/next');
    t.same([betaling?.filename, betaling?.contentType], ['betalingsinformasjon.xml', 'text/xml']);
    const betalingXml = await (await call('GET', `${base}/data/${betaling!.id}`)).text();
    t.match(betalingXml, '<betalingsinformasjon xmlns="no:skatteetaten:fastsetting:avgift:mva:skattemeldingformerverdiavgift:betalingsinformasjon:v1.0">');
    t.match(betalingXml, `<innsendingsreferanse>${instance.id}</innsendingsreferanse>`);
    t.match(betalingXml, `<organisasjonsnummer>${DEMO_ORGNR}</organisasjonsnummer>`);
    t.match(betalingXml, '<skattleggingsperiodeToMaaneder>januar-februar</skattleggingsperiodeToMaaneder>');
    t.match(betalingXml, '<beloep>8500</beloep>', 'fastsattMerverdiavgift of the return');
    t.match(betalingXml, /<kundeidentifikasjonsnummer>\d+<\/kundeidentifikasjonsnummer>\s*<beloep>8500<\/beloep>\s*<betaleTil>Skatteetaten<\/betaleTil>\s*<betalingsfrist>2025-04-10<\/betalingsfrist>\s*<betalesTilKonto>\s*<norskKontonummer>\d{11}<\/norskKontonummer>/, 'the schema\'s element order');

    // Implementation guide, step 7: poll the status endpoint until feedback is given, then fetch the instance.
    let polls = 0;
    while (!((await (await call('GET', `${base}/feedback/status`)).json()) as { isFeedbackProvided: boolean }).isFeedbackProvided) {
      polls += 1;
      await sleep(50);
    }
    t.ok(polls > 0, 'the feedback takes a while, as in the real service');
    const feedback = await call('GET', `${base}/feedback`);
    t.equal(feedback.status, 200);
    current = (await feedback.json()) as InstanceJson;
    t.equal(current.process.currentTask, null, 'api-dokumentasjon: currentTask null once Skatteetaten is done');
    t.ok(current.process.ended);
    t.equal(current.status.substatus?.label, 'Mottatt');
    // API page, Tilbakemeldingsfiler: dataType betalingsinformasjon, valideringsresultat, kvittering.
    const feedbackFiles = current.data.filter((d) => ['betalingsinformasjon', 'valideringsresultat', 'kvittering'].includes(d.dataType));
    t.same(feedbackFiles.map((d) => [d.dataType, d.filename, d.contentType]).sort(), [
      ['betalingsinformasjon', 'betalingsinformasjon.xml', 'text/xml'],
      ['kvittering', 'kvittering.pdf', 'application/pdf'],
      ['valideringsresultat', 'valideringsresultat.xml', 'text/xml'],
    ]);
    const resultat = await (await call('GET', new URL(feedbackFiles.find((d) => d.dataType === 'valideringsresultat')!.selfLinks.apps).pathname.slice(new URL(altinn.appUrl).pathname.length))).text();
    t.match(resultat, '<avvikVedMeldingslevering>ingen avvik</avvikVedMeldingslevering>', 'like the example feedback file of 17.06.2021');
    const kvittering = await call('GET', `${base}/data/${feedbackFiles.find((d) => d.dataType === 'kvittering')!.id}`);
    t.equal(kvittering.headers.get('content-type'), 'application/pdf');
    const pdfBytes = Buffer.from(await kvittering.arrayBuffer());
    t.equal(pdfBytes.subarray(0, 5).toString('latin1'), '%PDF-');
    t.match(pdfBytes.toString('latin1'), instance.id, 'the receipt names the submission');
    t.match(pdfBytes.toString('latin1'), /%%EOF\n$/);
    t.equal((await next(base)).status, 409, 'the process has ended');
  });

  t.test('GET …/feedback blocks until Skatteetaten has given feedback (API page, Hent tilbakemelding)', async (t) => {
    const { base } = await filled({ attachments: [] });
    t.equal((await next(base)).status, 200);
    t.equal((await call('GET', `${base}/feedback`)).status, 400, 'not before the submission is complete');
    t.equal((await next(base)).status, 200);
    const started = Date.now();
    const answered = (await (await call('GET', `${base}/feedback`)).json()) as InstanceJson;
    t.ok(Date.now() - started >= 100, 'the call waited for the feedback');
    t.ok(answered.data.some((d) => d.dataType === 'kvittering'), 'and answered the instance with the receipt');
    t.same(await (await call('GET', `${base}/feedback/status`)).json(), { isFeedbackProvided: true });
  });

  t.test('an invalid return: process/next answers 409 with the valideringsresultat as XML (API page, Fullfør utfylling: "Valideringstjenesten")', async (t) => {
    const { base, melding } = await filled({ melding: INVALID_MVA_MELDING });
    const refused = await next(base);
    t.equal(refused.status, 409);
    t.match(refused.headers.get('content-type'), /xml/);
    const body = await refused.text();
    t.match(body, '<avvikVedMeldingslevering>ugyldig skattemelding</avvikVedMeldingslevering>');
    t.match(body, '<regelDefinisjon>R018</regelDefinisjon>');
    // Implementation guide, step 6: the uploaded files may be corrected with further calls.
    const { id } = (await melding.json()) as Element;
    t.equal((await call('PUT', `${base}/data/${id}`, VALID_MVA_MELDING, xml())).status, 200);
    t.equal((await next(base)).status, 200, 'once corrected, the data task completes');
  });

  t.test('a return with deviations only is valid and may be submitted (implementation guide, "Valideringen lykkes med avvik")', async (t) => {
    const { base } = await filled({ melding: DEVIATING_MVA_MELDING });
    t.equal((await next(base)).status, 200);
    t.equal((await next(base)).status, 200);
  });

  t.test('409 "Valideringsfeil: …" when the envelope (konvolutt) and the return disagree (API page, Fullfør utfylling; implementation guide, step 6)', async (t) => {
    const cases: [string, Parameters<typeof filled>[0], RegExp][] = [
      ['instance vs envelope organisation number', { envelope: konvolutt({ orgnr: '310000002', vedlegg: ['merknaderTilMvaMeldingen.pdf'] }) },
        /^"Valideringsfeil: Organisasjonsnummeret i instansen er forskjellig fra organisasjonsnummeret i MvaMeldingInnsending \(\\"konvolutt\\"\)"$/],
      ['envelope vs return organisation number', { orgnr: '310000002', envelope: konvolutt({ orgnr: '310000002', vedlegg: ['merknaderTilMvaMeldingen.pdf'] }) },
        /Organisasjonsnummeret i MvaMeldingInnsending \(\\"konvolutt\\"\) er forskjellig fra organisasjonsnummeret i mvaMelding\.xml/],
      ['message category', { envelope: konvolutt({ meldingskategori: 'primaernaering', vedlegg: ['merknaderTilMvaMeldingen.pdf'] }) },
        /Meldingskategorien i MvaMeldingInnsending \(\\"konvolutt\\"\) er forsjellig fra Meldingskategorien i mvaMelding\.xml/],
      ['no skattleggingsperiode', { envelope: konvolutt({ periode: null, vedlegg: ['merknaderTilMvaMeldingen.pdf'] }) },
        /skattleggingsperiode er påkrevd i MvaMeldingInnsending/],
      ['an uploaded attachment the envelope does not list', { envelope: konvolutt({ vedlegg: [] }) }, /Vedleggene i MvaMeldingInnsending/],
      ['a listed attachment that was never uploaded', { envelope: konvolutt({ vedlegg: ['merknaderTilMvaMeldingen.pdf', 'mangler.pdf'] }) }, /Vedleggene i MvaMeldingInnsending/],
      ['an envelope that was never filled', { envelope: '' }, /konvolutt\\"\) er ikke lastet opp/],
    ];
    for (const [label, opts, message] of cases) {
      const { base } = await filled(opts);
      const refused = await next(base);
      t.equal(refused.status, 409, label);
      t.match(await refused.text(), message, label);
      t.equal(((await (await call('GET', base)).json()) as InstanceJson).process.currentTask?.altinnTaskType, 'data', `${label}: still in the data task`);
    }
  });

  t.test('attachments (API page, Last Opp Vedlegg): 0–57 files, 25 MB each, the listed content types, a file name, unique names', async (t) => {
    t.test('57 attachments are accepted, the 58th is refused', async (t) => {
      const names = Array.from({ length: MAX_ATTACHMENTS }, (_, i) => `vedlegg-${i + 1}.pdf`);
      const { base, uploads } = await filled({ attachments: names.map((name) => ({ name })) });
      t.same([...new Set(uploads.map((u) => u.status))], [201]);
      t.equal(MAX_ATTACHMENTS, 57);
      const extra = await call('POST', `${base}/data?datatype=binaerVedlegg`, Buffer.from('%PDF-'), pdf('vedlegg-58.pdf'));
      t.equal(extra.status, 409, 'the 58th');
      t.equal((await next(base)).status, 200, 'the 57 listed in the envelope go through');
    });

    t.test('every listed content type is accepted; others are refused with 400', async (t) => {
      const { base } = await filled({ attachments: [] });
      for (const [i, type] of ATTACHMENT_CONTENT_TYPES.entries()) {
        t.equal((await call('POST', `${base}/data?datatype=binaerVedlegg`, 'x', { 'content-type': type, 'content-disposition': `attachment; filename=f${i}` })).status, 201, type);
      }
      for (const type of ['text/plain', 'application/zip', 'text/html', 'image/gif', 'application/octet-stream']) {
        const refused = await call('POST', `${base}/data?datatype=binaerVedlegg`, 'x', { 'content-type': type, 'content-disposition': 'attachment; filename=x' });
        t.equal(refused.status, 400, type);
        t.match(await refused.text(), 'Invalid content type');
      }
      const nameless = await call('POST', `${base}/data?datatype=binaerVedlegg`, 'x', { 'content-type': 'application/pdf' });
      t.equal(nameless.status, 400, 'without a file name in Content-Disposition');
    });

    t.test('exactly 25 MB is accepted; more is refused with 413, declared or streamed', async (t) => {
      const { base } = await filled({ attachments: [] });
      const limit = 25 * 1024 * 1024;
      t.equal(MAX_DATA_BYTES, limit);
      const exact = await call('POST', `${base}/data?datatype=binaerVedlegg`, Buffer.alloc(limit, 1), pdf('exact.pdf'));
      t.equal(exact.status, 201);
      t.equal(((await exact.json()) as Element).size, limit);
      const declared = await call('POST', `${base}/data?datatype=binaerVedlegg`, Buffer.alloc(limit + 1, 1), pdf('declared.pdf'));
      t.equal(declared.status, 413, 'a Content-Length over 25 MB');
      // Chunked, no Content-Length: the look-alike counts as the body streams in.
      const token = await altinnToken();
      const streamed = await new Promise<number>((resolve, reject) => {
        const url = new URL(`${altinn.appUrl}${base}/data?datatype=binaerVedlegg`);
        const req = httpRequest(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...pdf('streamed.pdf') } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        const chunk = Buffer.alloc(1024 * 1024, 2);
        let sent = 0;
        const write = () => {
          while (sent < 26) {
            sent += 1;
            if (!req.write(chunk)) return void req.once('drain', write);
          }
          req.end();
        };
        write();
      });
      t.equal(streamed, 413, 'a streamed body over 25 MB');
      const instance = (await (await call('GET', base)).json()) as InstanceJson;
      t.same(instance.data.filter((d) => d.dataType === 'binaerVedlegg').map((d) => d.filename), ['exact.pdf'], 'only the 25 MB file was stored');
    });

    t.test('two files with the same name: process/next answers 409 (API page, Fullfør utfylling and Fullfør MvaMeldingInnsending)', async (t) => {
      const { base, uploads } = await filled({ meldingName: 'vedlegg.pdf', attachments: [{ name: 'vedlegg.pdf' }] });
      t.equal(uploads[0]!.status, 201);
      const refused = await next(base);
      t.equal(refused.status, 409);
      t.match(await refused.text(), 'Valideringsfeil: filnavnene i innsendingen må være unike. Validation error: file names in the submission must be unique.');
    });
  });

  t.test('the feedback data types are Skatteetaten\'s: an end user cannot write them; unknown data types are 400', async (t) => {
    const { base } = await filled({ attachments: [] });
    for (const dataType of ['betalingsinformasjon', 'valideringsresultat', 'kvittering']) {
      t.equal((await call('POST', `${base}/data?dataType=${dataType}`, 'x', { 'content-type': 'text/xml' })).status, 403, dataType);
    }
    t.equal((await call('POST', `${base}/data?dataType=skattemelding`, 'x', { 'content-type': 'text/xml' })).status, 400);
    t.equal((await call('POST', `${base}/data`, 'x', { 'content-type': 'text/xml' })).status, 400, 'no data type');
    t.equal((await call('POST', `${base}/data?dataType=mvamelding`, VALID_MVA_MELDING, xml())).status, 409, 'one return per instance');
  });

  t.test('another person cannot touch the instance; tokens without submission scopes cannot write', async (t) => {
    const kariToken = await (await exchange(`Bearer ${kari.access_token}`)).text();
    const created = await fetch(`${altinn.appUrl}/instances`, {
      method: 'POST',
      headers: { authorization: `Bearer ${kariToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { id } = (await created.json()) as { id: string };

    const ola = await source.tokens({ pid: OLA.pid });
    const olaToken = await (await exchange(`Bearer ${ola.access_token}`)).text();
    const peek = await fetch(`${altinn.appUrl}/instances/${id}`, { headers: { authorization: `Bearer ${olaToken}` } });
    t.equal(peek.status, 403);

    const narrow = await source.tokens({ scope: `openid ${VALIDATION_SCOPE}` });
    const narrowToken = await (await exchange(`Bearer ${narrow.access_token}`)).text();
    const write = await fetch(`${altinn.appUrl}/instances`, {
      method: 'POST',
      headers: { authorization: `Bearer ${narrowToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    t.equal(write.status, 403);
    t.match(write.headers.get('www-authenticate'), 'insufficient_scope');
  });
});

t.test('test browser', async (t) => {
  // A site that sets cookies as told by the query and echoes the Cookie header it receives.
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const setCookies = url.searchParams.getAll('set');
    const location = url.searchParams.get('go');
    res.writeHead(location ? Number(url.searchParams.get('status') ?? 302) : 200, {
      ...(setCookies.length ? { 'set-cookie': setCookies } : {}),
      ...(location ? { location } : {}),
      'content-type': 'application/json',
    });
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => res.end(JSON.stringify({
      method: req.method,
      cookie: req.headers.cookie ?? '',
      mode: req.headers['sec-fetch-mode'],
      site: req.headers['sec-fetch-site'],
      origin: req.headers.origin,
      body,
    })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  const port = (server.address() as AddressInfo).port;
  const ip = `http://127.0.0.1:${port}`;
  const named = `http://localhost:${port}`;
  const seen = (r: { body: string }) => JSON.parse(r.body) as Record<string, string>;

  t.test('cookies follow host and path, not port, and expire', async (t) => {
    const browser = new Browser();
    await browser.navigate(`${ip}/a/page?set=${encodeURIComponent('root=1; Path=/')}&set=${encodeURIComponent('deep=2; Path=/a')}&set=${encodeURIComponent('gone=3; Max-Age=0')}`);
    t.equal(seen(await browser.fetch(`${ip}/a/x`)).cookie, 'deep=2; root=1', 'longest path first');
    t.equal(seen(await browser.fetch(`${ip}/ab`)).cookie, 'root=1', 'path /a does not match /ab');
    t.equal(seen(await browser.fetch(`${named}/a/x`)).cookie, '', 'another host gets nothing');
    t.same(browser.cookies('127.0.0.1').map((c) => c.name).sort(), ['deep', 'root']);
    await browser.navigate(`${ip}/?set=${encodeURIComponent('root=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT')}`);
    t.equal(browser.cookie('127.0.0.1', 'root'), undefined, 'Expires in the past deletes');
  });

  t.test('Secure and __Host- cookies are not accepted over http', async (t) => {
    const browser = new Browser();
    await browser.navigate(`${ip}/?set=${encodeURIComponent('s=1; Secure')}&set=${encodeURIComponent('__Host-h=1; Path=/')}&set=${encodeURIComponent('plain=1')}`);
    t.same(browser.cookies('127.0.0.1').map((c) => c.name), ['plain']);
  });

  t.test('redirects: 302/303 become GET, 307 keeps method and body', async (t) => {
    const browser = new Browser();
    const see303 = await browser.navigate(`${ip}/form?go=${encodeURIComponent('/after')}&status=303`, { method: 'POST', body: 'a=1' });
    t.equal(seen(see303).method, 'GET');
    const keep307 = await browser.navigate(`${ip}/form?go=${encodeURIComponent('/after')}&status=307`, { method: 'POST', body: 'a=1' });
    t.equal(seen(keep307).method, 'POST');
    t.equal(seen(keep307).body, 'a=1');
    t.equal(seen(keep307).mode, 'navigate');
    t.equal(browser.history.length, 4, 'every response is recorded');
  });

  t.test('SameSite: Strict stays home on cross-site navigations, Lax goes along on GET only', async (t) => {
    const browser = new Browser();
    await browser.navigate(`${named}/?set=${encodeURIComponent('strict=1; SameSite=Strict')}&set=${encodeURIComponent('lax=1; SameSite=Lax')}`);
    const crossGet = await browser.navigate(`${ip}/?go=${encodeURIComponent(`${named}/back`)}`);
    t.equal(seen(crossGet).cookie, 'lax=1', 'redirected back from another site');
    t.equal(seen(crossGet).site, 'cross-site');
    const form = `<form method="post" action="${named}/post"><input type="hidden" name="x" value="1"></form>`;
    const crossPost = await browser.submitForm(form, ip, 0);
    t.equal(seen(crossPost).cookie, '', 'no cookies on a cross-site POST');
    t.equal(seen(crossPost).origin, ip);
    const sameSite = await browser.fetch(`${named}/api`);
    t.equal(seen(sameSite).cookie, 'strict=1; lax=1');
    t.equal(seen(sameSite).mode, 'cors');
  });

  t.test('forms: hidden fields, selects, checked radios, overrides, entities', async (t) => {
    const browser = new Browser();
    const html = `<form id="f" method="post" action="/submit?x=1">
      <input type="hidden" name="a" value="x &amp; y">
      <select name="s"><option value="1">one</option><option value="2" selected>two</option></select>
      <input type="radio" name="r" value="no"><input type="radio" name="r" value="yes" checked>
      <input type="submit" name="go" value="Go"><textarea name="t">hi</textarea></form>`;
    const res = await browser.submitForm(html, `${ip}/page`, 'f', { s: '1' });
    t.equal(seen(res).body, 'a=x+%26+y&r=yes&t=hi&s=1');
  });
});
