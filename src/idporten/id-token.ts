import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
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
 * A token naming a key we have not seen may force a JWKS re-fetch this often, on top of jose's own 10 s
 * cooldown: ID-porten's new key is then accepted at once, while forged kids cannot make us hammer the JWKS.
 */
const UNKNOWN_KID_RELOAD_INTERVAL_MS = 60_000;

/**
 * Verifies ID tokens and logout tokens against the provider's JWKS. The key set is fetched on demand and
 * re-fetched (rate-limited) when a token names a key we have not seen: ID-porten rotates signing keys.
 */
export class ProviderKeys {
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;
  #unknownKidReload: { at: number; settled: Promise<void> } | undefined;

  constructor(jwksUri: string, fetchImpl: FetchLike) {
    this.#jwks = createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: 10_000,
      cacheMaxAge: 10 * 60_000,
      [customFetch]: fetchImpl as never,
    });
  }

  async verify(jwt: string, expect: IdTokenExpectations, requiredClaims: string[] = ['iss', 'aud', 'exp', 'iat', 'sub']): Promise<JWTPayload> {
    const algorithms = expect.algorithms.filter((a) => ASYMMETRIC.test(a));
    const attempt = async () =>
      (
        await jwtVerify(jwt, this.#jwks, {
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
        // jose re-fetches on an unknown kid only after its cooldown; right after a rotation that refuses a good token.
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
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
    const reload = this.#jwks.reload();
    this.#unknownKidReload = { at: now, settled: reload.catch(() => undefined) };
    return reload;
  }
}

function verificationFailure(err: unknown): OidcError {
  if (err instanceof joseErrors.JOSEError) {
    // Timeouts, network failures and a JWKS endpoint answering other than 200 are the provider being down, not a bad token.
    if (err instanceof joseErrors.JWKSTimeout || (err.code === 'ERR_JOSE_GENERIC' && /fetch|network|200 OK/i.test(err.message))) {
      return new OidcError('unavailable', 'could not fetch the provider JWKS', { cause: err });
    }
    return new OidcError('rejected', `token rejected: ${err.code}${'claim' in err ? ` (${String((err as { claim?: unknown }).claim)})` : ''}`, { cause: err });
  }
  if (err instanceof TypeError) return new OidcError('unavailable', 'could not fetch the provider JWKS', { cause: err });
  return new OidcError('rejected', 'token rejected', { cause: err });
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
