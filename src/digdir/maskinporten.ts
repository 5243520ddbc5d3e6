/**
 * The admin access token for Digdir's self-service API: Maskinporten's JWT-bearer grant (RFC 7523 section 2.1) with
 * the vendor's admin client — an assertion signed with its registered key (`kid`) or its enterprise certificate
 * (`x5c`), `aud` the issuer verbatim, at most 120 s long, a fresh `jti`.
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';
import type { DigdirConfig } from '../config/types.js';
import { DigdirUnavailable, refusal, request } from './errors.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** The scope a vendor's admin client needs to keep integrations of other organisations (the supplier model). */
export const SUPPLIER_SCOPE = 'idporten:dcr.supplier';
const ASSERTION_LIFETIME_S = 60;

export async function adminAccessToken(digdir: DigdirConfig, scope = SUPPLIER_SCOPE): Promise<string> {
  const tokenEndpoint = await discoverTokenEndpoint(digdir.maskinportenIssuer);
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ scope })
    .setIssuer(digdir.clientId)
    .setAudience(digdir.maskinportenIssuer)
    .setIssuedAt(now)
    .setExpirationTime(now + ASSERTION_LIFETIME_S)
    .setJti(randomUUID());
  const assertion =
    digdir.key.kind === 'jwk'
      ? await jwt.setProtectedHeader({ alg: 'RS256', kid: digdir.key.jwk.kid! }).sign(await importJWK({ ...digdir.key.jwk }, 'RS256'))
      : await jwt.setProtectedHeader({ alg: 'RS256', x5c: digdir.key.x5c }).sign(createPrivateKey(digdir.key.privateKeyPem));
  const response = await request('Maskinporten token', tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: JWT_BEARER, assertion }).toString(),
  });
  if (!response.ok) throw await refusal('Maskinporten refused the admin client', response);
  const body = (await response.json().catch(() => undefined)) as { access_token?: unknown } | undefined;
  if (typeof body?.access_token !== 'string') throw new DigdirUnavailable('Maskinporten answered without an access_token');
  return body.access_token;
}

/** The token endpoint from Maskinporten's metadata (RFC 8414), as Digdir advises rather than a fixed path. */
async function discoverTokenEndpoint(issuer: string): Promise<string> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/oauth-authorization-server`;
  const response = await request('Maskinporten metadata', url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw new DigdirUnavailable(`Maskinporten metadata: ${url} answered ${response.status}`);
  const body = (await response.json().catch(() => undefined)) as { token_endpoint?: unknown } | undefined;
  if (typeof body?.token_endpoint !== 'string') throw new DigdirUnavailable(`Maskinporten metadata at ${url} names no token_endpoint`);
  return body.token_endpoint;
}
