/**
 * DPoP with ID-porten (RFC 9449): the session's key as openid-client's proof handle for the token and refresh
 * requests (openid-client signs those proofs and retries once on `use_dpop_nonce`), and the check that what came
 * back is bound to that key.
 */
import * as client from 'openid-client';
import { decodeJwt } from 'jose';
import { signerFor, type DpopKey } from '../net/dpop.js';
import { OidcError } from './errors.js';

/**
 * The provider's last DPoP-Nonce, by origin (RFC 9449 section 8): openid-client keeps nonces per handle, and a handle
 * lives for one grant, so without this every grant of a provider that demands nonces would be refused once first.
 */
export class ProviderNonces {
  readonly #byOrigin = new Map<string, string>();

  /** Wraps a fetch so that every answer's DPoP-Nonce is kept. */
  watch<F extends (url: string, init?: RequestInit) => Promise<Response>>(fetch: F): F {
    return (async (url: string, init?: RequestInit) => {
      const response = await fetch(url, init);
      const nonce = response.headers.get('dpop-nonce');
      if (nonce) this.#byOrigin.set(new URL(url).origin, nonce);
      return response;
    }) as F;
  }

  get(url: string): string | undefined {
    return this.#byOrigin.get(new URL(url).origin);
  }
}

/** openid-client's DPoP handle for one grant, signing with the session's key; its first proof carries a known nonce. */
export async function dpopHandle(config: client.Configuration, key: DpopKey, nonces?: ProviderNonces): Promise<client.DPoPHandle> {
  const { kty, crv, x, y, d } = key;
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const [privateKey, publicKey] = await Promise.all([
    crypto.subtle.importKey('jwk', { kty, crv, x, y, d }, algorithm, false, ['sign']),
    // The handle exports the public key for the proof's header, so it must be extractable.
    crypto.subtle.importKey('jwk', { kty, crv, x, y }, algorithm, true, ['verify']),
  ]);
  return client.getDPoPHandle(config, { privateKey, publicKey }, {
    [client.modifyAssertion]: (_header: Record<string, unknown>, payload: Record<string, unknown>) => {
      if (nonces && payload.nonce === undefined && typeof payload.htu === 'string') payload.nonce = nonces.get(payload.htu);
    },
  });
}

/**
 * RFC 9449 section 5 and 6: a token response to a DPoP-proofed grant must say `token_type: DPoP`, and an access
 * token that is a JWT (ID-porten's are) must carry `cnf.jkt` equal to the session key's thumbprint. Anything else is
 * not bound to this session's key, and is refused: the session would otherwise hold a token another key
 * (someone else's) can use, or a plain bearer token while upstreams are told it is bound.
 */
export function checkDpopBinding(response: { token_type?: string | undefined; access_token: string }, key: DpopKey): void {
  if (response.token_type?.toLowerCase() !== 'dpop') throw new OidcError('rejected', 'token response is not DPoP-bound (token_type is not DPoP)');
  let claims;
  try {
    claims = decodeJwt(response.access_token);
  } catch {
    // An opaque access token: token_type is all the client can see of its binding.
    return;
  }
  const jkt = (claims.cnf as { jkt?: unknown } | undefined)?.jkt;
  if (jkt !== signerFor(key).jkt) throw new OidcError('rejected', 'access token is not bound to the session key (cnf.jkt differs)');
}
