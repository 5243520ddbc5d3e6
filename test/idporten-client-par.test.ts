/**
 * IdportenClient driven directly (no gateway) against the ID-porten look-alike, a real oidc-provider: a login
 * through PAR, authenticated with private_key_jwt and bound with DPoP, as ID-porten's strictest integrations are;
 * the user's part done with plain HTTP through the look-alike's login page.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import t from 'tap';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import type { TenantConfig } from '../src/config/types.js';
import { IdportenClient } from '../src/idporten/client.js';
import { OidcError } from '../src/idporten/errors.js';
import { signerFor } from '../src/net/dpop.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { RecordingProvider, tenantFor } from './helpers/client-harness.js';

const SECRET = 'a-client-secret-that-is-long-enough-0123456789';
const KARI = TEST_USERS[0]!;

// The callback: answers 200 and keeps the URL the provider sent the browser to.
const callbacks: URL[] = [];
const sink = createServer((req, res) => {
  callbacks.push(new URL(req.url ?? '/', 'http://sink.invalid'));
  res.end('ok');
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
const redirectUri = `${sinkUrl}/callback`;
t.teardown(() => new Promise<void>((resolve) => {
  sink.close(() => resolve());
  sink.closeAllConnections();
}));

const clientKey = await generateKeyPair('ES256', { extractable: true });
const privateJwk = { ...(await exportJWK(clientKey.privateKey)), kid: 'client-key-1' };
const publicJwk = { ...(await exportJWK(clientKey.publicKey)), kid: 'client-key-1', alg: 'ES256', use: 'sig' };

const op = await startIdportenLookalike({
  clients: [
    {
      client_id: 'strict-client',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [publicJwk] },
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [`${sinkUrl}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
    {
      client_id: 'secret-client',
      client_secret: SECRET,
      token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [`${sinkUrl}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
  ],
});
t.teardown(() => op.close());

const scopes = ['openid', 'skatteetaten:mvameldingvalidering'];
const strictTenant: TenantConfig = (() => {
  const base = tenantFor(op.issuer, 'strict-client', { scopes, dpop: true });
  return { ...base, idporten: { ...base.idporten, clientAuth: { method: 'private_key_jwt', privateKeyJwk: privateJwk as JsonWebKey } } };
})();

t.test('RFC 9126 PAR with private_key_jwt (RFC 7523) and DPoP (RFC 9449): the pushed request holds the parameters, the tokens are bound to the session key', async (t) => {
  const provider = new RecordingProvider(strictTenant.idporten);
  const client = new IdportenClient(strictTenant, provider);
  const { url, transaction } = await client.startLogin({ acr: 'idporten-loa-substantial', locale: 'nb', redirectUri });
  t.same([...url.searchParams.keys()].sort(), ['client_id', 'request_uri'], 'RFC 9126 4: the front channel carries client_id and request_uri only');
  const pushed = provider.to('/par');
  t.equal(pushed.length, 1);
  const form = pushed[0]!.body;
  t.equal(form.get('state'), transaction.state);
  t.equal(form.get('nonce'), transaction.nonce);
  t.equal(form.get('code_challenge_method'), 'S256');
  t.equal(form.get('dpop_jkt'), signerFor(transaction.dpopKey!).jkt);
  t.equal(form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');

  await loginAtLookalike(new Browser(), url.href, { pid: KARI.pid });
  t.equal(op.observed.authorizations.at(-1)?.par, true, 'the provider acted on the pushed request');
  const callback = callbacks.at(-1)!;
  const tokens = await client.finishLogin(new URL(`${callback.pathname}${callback.search}`, sinkUrl), transaction);
  const jkt = signerFor(transaction.dpopKey!).jkt;
  t.equal((decodeJwt(tokens.accessToken).cnf as { jkt?: string } | undefined)?.jkt, jkt, 'the provider bound the access token to the session key');
  t.equal(tokens.idTokenClaims.acr, 'idporten-loa-substantial');

  const refreshed = await client.refresh(tokens.refreshToken!, { sub: tokens.idTokenClaims.sub!, minimumAcr: 'idporten-loa-substantial', dpopKey: tokens.dpopKey });
  t.equal((decodeJwt(refreshed.accessToken).cnf as { jkt?: string } | undefined)?.jkt, jkt, 'and again on refresh');
  await client.revoke(refreshed.refreshToken!, 'refresh_token');
  t.notOk(await op.isRefreshTokenActive(refreshed.refreshToken!), 'RFC 7009: the provider revoked it');
});

t.test('RFC 9126: without usePar the request goes on the front channel; a refused pushed request is an OidcError', async (t) => {
  const plainTenant = tenantFor(op.issuer, 'secret-client', { scopes, usePar: false, clientAuth: { method: 'client_secret_post', secret: SECRET } });
  const plain = new RecordingProvider(plainTenant.idporten);
  const { url, transaction } = await new IdportenClient(plainTenant, plain).startLogin({ acr: 'idporten-loa-substantial', locale: 'nb', redirectUri });
  t.notOk(url.searchParams.has('request_uri'));
  t.equal(url.searchParams.get('state'), transaction.state);
  t.equal(plain.to('/par').length, 0);

  const wrongTenant = tenantFor(op.issuer, 'secret-client', { scopes, clientAuth: { method: 'client_secret_post', secret: 'not-the-secret-but-long-enough-0123456789' } });
  const err = await new IdportenClient(wrongTenant, new RecordingProvider(wrongTenant.idporten))
    .startLogin({ acr: 'idporten-loa-substantial', locale: 'nb', redirectUri })
    .then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof OidcError);
  t.match((err as OidcError).reason, /^pushed authorization request: /);
  t.equal((err as OidcError).kind, 'rejected');
});
