import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { acrSatisfies } from './acr.js';
import { OidcError } from './errors.js';
import type { FetchLike } from '../net/fetch.js';

const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$/;
/** How old an ID token may be when we receive it; ID-porten issues it at the token call. */
const MAX_ID_TOKEN_AGE_SECONDS = 300;
const CLOCK_TOLERANCE_SECONDS = 30;

export interface IdTokenExpectations {
  issuer: string;
  clientId: string;
  /** From the provider's metadata; only asymmetric algorithms are ever accepted. */
  algorithms: string[];
  nonce?: string | undefined;
  minimumAcr?: string | undefined;
  /** The max_age (seconds) the authorization request carried: auth_time must then be present and no older. */
  maxAge?: number | undefined;
  /** Epoch ms to measure auth_time's age from (the gateway's clock). */
  now?: number | undefined;
}

/**
 * A token naming a key we have not seen may force a JWKS re-fetch this often: ID-porten's new key is then
 * accepted at once, while forged kids cannot make us hammer the JWKS.
 */
const UNKNOWN_KID_RELOAD_INTERVAL_MS = 60_000;

/**
 * One provider's signing keys, shared by every tenant of that provider: fetched with the metadata (see
 * Provider), kept until the next background refresh, and re-fetched at once (rate-limited) when a token names a
 * key we have not seen: ID-porten rotates signing keys.
 */
export class ProviderKeys {
  readonly #jwksUri: string;
  readonly #fetch: FetchLike;
  #keys: ReturnType<typeof createLocalJWKSet>;
  #unknownKidReload: { at: number; settled: Promise<void> } | undefined;

  private constructor(jwksUri: string, fetchImpl: FetchLike, jwks: JSONWebKeySet) {
    this.#jwksUri = jwksUri;
    this.#fetch = fetchImpl;
    this.#keys = createLocalJWKSet(jwks);
  }

  /** Fetches the key set once; an unreachable or malformed JWKS is `unavailable`. */
  static async fetch(jwksUri: string, fetchImpl: FetchLike): Promise<ProviderKeys> {
    return new ProviderKeys(jwksUri, fetchImpl, await fetchJwks(jwksUri, fetchImpl));
  }

  async verify(jwt: string, expect: IdTokenExpectations, requiredClaims: string[] = ['iss', 'aud', 'exp', 'iat', 'sub']): Promise<JWTPayload> {
    const algorithms = expect.algorithms.filter((a) => ASYMMETRIC.test(a));
    const attempt = async () =>
      (
        await jwtVerify(jwt, this.#keys, {
          issuer: expect.issuer,
          audience: expect.clientId,
          algorithms: algorithms.length > 0 ? algorithms : ['RS256'],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          maxTokenAge: MAX_ID_TOKEN_AGE_SECONDS + CLOCK_TOLERANCE_SECONDS,
          requiredClaims,
        })
      ).payload;
    try {
      try {
        return await attempt();
      } catch (err) {
        // Right after a rotation the token names a key the kept set does not have yet (or, without a kid, its
        // signature fails against the keys kept).
        if (!(err instanceof joseErrors.JWKSNoMatchingKey || (err instanceof joseErrors.JWSSignatureVerificationFailed && !hasKid(jwt)))) throw err;
        await this.#reloadForUnknownKid();
        return await attempt();
      }
    } catch (err) {
      throw verificationFailure(err);
    }
  }

  /** One forced re-fetch per interval; callers within the interval wait for it (and then see its keys). */
  #reloadForUnknownKid(): Promise<void> {
    const now = Date.now();
    if (this.#unknownKidReload && now - this.#unknownKidReload.at < UNKNOWN_KID_RELOAD_INTERVAL_MS) return this.#unknownKidReload.settled;
    const reload = fetchJwks(this.#jwksUri, this.#fetch).then((jwks) => void (this.#keys = createLocalJWKSet(jwks)));
    this.#unknownKidReload = { at: now, settled: reload.catch(() => undefined) };
    return reload;
  }
}

function hasKid(jwt: string): boolean {
  try {
    return decodeProtectedHeader(jwt).kid !== undefined;
  } catch {
    return false;
  }
}

async function fetchJwks(uri: string, fetchImpl: FetchLike): Promise<JSONWebKeySet> {
  let response: Response;
  try {
    response = await fetchImpl(uri, { headers: { accept: 'application/json, application/jwk-set+json' } });
  } catch (err) {
    throw new OidcError('unavailable', 'could not fetch the provider JWKS', { cause: err });
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new OidcError('unavailable', `could not fetch the provider JWKS (status ${response.status})`);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch (err) {
    throw new OidcError('unavailable', 'the provider JWKS is not JSON', { cause: err });
  }
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'object' && key !== null && !Array.isArray(key))) {
    throw new OidcError('unavailable', 'the provider JWKS has no list of keys');
  }
  return body as JSONWebKeySet;
}

function verificationFailure(err: unknown): OidcError {
  if (err instanceof OidcError) return err;
  if (err instanceof joseErrors.JOSEError) {
    return new OidcError('rejected', `token rejected: ${err.code}${'claim' in err ? ` (${String((err as { claim?: unknown }).claim)})` : ''}`, { cause: err });
  }
  // Neither jose's nor ours: a key the provider publishes that cannot be used (an RSA key under 2048 bits, one
  // without its modulus). The provider's trouble, as a JWKS that cannot be fetched is, not a bad token.
  return new OidcError('unavailable', "the provider's signing key cannot be used", { cause: err });
}

/** OIDC Core 3.1.3.7 plus ID-porten's rules, on top of the signature check. */
export async function verifyIdToken(keys: ProviderKeys, idToken: string, expect: IdTokenExpectations): Promise<JWTPayload> {
  const claims = await keys.verify(idToken, expect);
  // aud may be a string or an array, but we accept no audience other than ourselves (OIDC Core 3.1.3.7 step 3-4).
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (aud.length !== 1 || aud[0] !== expect.clientId) throw new OidcError('rejected', 'id token has an untrusted audience');
  if (claims.azp !== undefined && claims.azp !== expect.clientId) throw new OidcError('rejected', 'id token azp is not this client');
  if (typeof claims.sub !== 'string' || claims.sub.length === 0) throw new OidcError('rejected', 'id token has no sub');
  if (expect.nonce !== undefined && claims.nonce !== expect.nonce) throw new OidcError('rejected', 'id token nonce mismatch');
  if (expect.minimumAcr && !acrSatisfies(claims.acr, expect.minimumAcr)) {
    throw new OidcError('rejected', 'id token acr is below the requested level');
  }
  if (expect.maxAge !== undefined) checkAuthTime(claims, expect.maxAge, expect.now ?? Date.now());
  return claims;
}

/**
 * OIDC Core 3.1.2.1 (max_age: auth_time becomes required) and 3.1.3.7 rule 13: a login older than the max_age
 * the request asked for (a provider that reused its session without honouring it) is refused.
 */
function checkAuthTime(claims: JWTPayload, maxAge: number, now: number): void {
  const authTime = claims.auth_time;
  if (typeof authTime !== 'number' || !Number.isFinite(authTime)) throw new OidcError('rejected', 'id token has no auth_time although max_age was requested');
  if (now / 1000 - authTime > maxAge + CLOCK_TOLERANCE_SECONDS) throw new OidcError('rejected', 'id token auth_time is older than max_age');
}
