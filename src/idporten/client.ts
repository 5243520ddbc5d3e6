import * as client from 'openid-client';
import { importJWK, type JWTPayload } from 'jose';
import type { AcrLevel, TenantConfig } from '../config/types.js';
import { classifyProviderError, OidcError } from './errors.js';
import { verifyIdToken } from './id-token.js';
import type { Provider, ProviderState } from './provider.js';
import { newDpopKey, signerFor, type DpopKey } from '../net/dpop.js';
import { checkDpopBinding, dpopHandle } from './dpop.js';

/** What a login attempt must remember between /auth/login and /auth/callback. */
export interface LoginTransaction {
  state: string;
  nonce: string;
  codeVerifier: string;
  acr: AcrLevel;
  /** The DPoP key the session will be bound to (tenants with idporten.dpop): its thumbprint went out as dpop_jkt. */
  dpopKey?: DpopKey;
  /** The max_age (seconds) the login asked for: the ID token's auth_time is then checked against it. */
  maxAge?: number;
  /** RFC 8707 resource indicators named in the authorization request (absent: none). */
  resources?: string[];
}

/** The `prompt` values a login may send (OIDC Core 3.1.2.1): a fresh login, or a choice of account. */
export const LOGIN_PROMPTS = ['login', 'select_account'] as const;
export type LoginPrompt = (typeof LOGIN_PROMPTS)[number];

/** What a login asks ID-porten for besides the defaults. */
export interface LoginRequest {
  acr: AcrLevel;
  locale: string;
  redirectUri: string;
  prompt?: LoginPrompt | undefined;
  maxAge?: number | undefined;
}

export interface TokenSet {
  accessToken: string;
  accessTokenExpiresAt: number;
  refreshToken?: string | undefined;
  idToken?: string | undefined;
  idTokenClaims?: JWTPayload | undefined;
  scope?: string | undefined;
}

/**
 * What a finished login hands over: the tokens, the verified ID token's claims, the resources the authorization
 * request named (only those can be asked for by a refresh grant later) and the DPoP key its tokens are bound to.
 */
export type LoginTokens = TokenSet & { idToken: string; idTokenClaims: JWTPayload; resources?: string[] | undefined; dpopKey?: DpopKey | undefined };

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * One tenant's ID-porten integration over openid-client: login URL (PAR when offered), code exchange, refresh,
 * revocation, end-session URL and logout-token validation. The provider's metadata and keys are its Provider's,
 * shared with every tenant of the same issuer; this client adds the tenant's own client id and authentication.
 * Knows nothing of HTTP requests or sessions.
 */
export class IdportenClient {
  readonly #tenant: TenantConfig;
  readonly #provider: Provider;
  readonly #now: () => number;
  /** The Configuration built for the provider state it was made from (rebuilt when a refresh replaces it). */
  #built: { state: ProviderState; config: client.Configuration } | undefined;
  #auth: Promise<client.ClientAuth> | undefined;

  constructor(tenant: TenantConfig, provider: Provider, opts: { now?: () => number } = {}) {
    this.#tenant = tenant;
    this.#provider = provider;
    this.#now = opts.now ?? Date.now;
  }

  get ready(): boolean {
    return this.#provider.ready;
  }

  get issuer(): string {
    return this.#tenant.idporten.issuer;
  }

  get provider(): Provider {
    return this.#provider;
  }

  /** This tenant's Configuration on the provider's current metadata (loading it first if it never loaded). */
  async configuration(): Promise<client.Configuration> {
    return (await this.#current()).config;
  }

  async #current(): Promise<{ state: ProviderState; config: client.Configuration }> {
    const state = await this.#provider.loaded();
    if (this.#built?.state === state) return this.#built;
    this.#auth ??= clientAuthentication(this.#tenant);
    const auth = await this.#auth;
    if (this.#built?.state !== state) {
      const config = new client.Configuration(state.metadata, this.#tenant.idporten.clientId, { id_token_signed_response_alg: 'RS256' }, auth);
      this.#built = { state, config: this.#provider.configure(config) };
    }
    return this.#built;
  }

  #algorithms(state: ProviderState): string[] {
    return state.metadata.id_token_signing_alg_values_supported ?? ['RS256'];
  }

  /** Builds the authorization request (PKCE S256, state, nonce) — through PAR when the provider offers it. */
  async startLogin(opts: LoginRequest): Promise<{ url: URL; transaction: LoginTransaction }> {
    const { state, config } = await this.#current();
    const codeVerifier = client.randomPKCECodeVerifier();
    const resources = this.#tenant.idporten.resources ?? [];
    const transaction: LoginTransaction = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier,
      acr: opts.acr,
      ...(opts.maxAge !== undefined ? { maxAge: opts.maxAge } : {}),
      ...(resources.length ? { resources } : {}),
    };
    const params = new URLSearchParams({
      redirect_uri: opts.redirectUri,
      response_type: 'code',
      scope: this.#tenant.idporten.scopes.join(' '),
      state: transaction.state,
      nonce: transaction.nonce,
      // RFC 7636 4.2: S256, base64url without padding.
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      acr_values: opts.acr,
      ui_locales: opts.locale,
    });
    if (this.#tenant.idporten.dpop) {
      // RFC 9449 section 10: the authorization code is bound to the session's key, so only its holder can redeem it.
      transaction.dpopKey = newDpopKey();
      params.set('dpop_jkt', signerFor(transaction.dpopKey).jkt);
    }
    if (opts.prompt) params.set('prompt', opts.prompt);
    if (opts.maxAge !== undefined) params.set('max_age', String(opts.maxAge));
    // RFC 8707 section 2.1: one `resource` parameter per resource the session's tokens will be asked for.
    for (const resource of resources) params.append('resource', resource);
    const usePar = this.#tenant.idporten.usePar && Boolean(state.metadata.pushed_authorization_request_endpoint);
    try {
      const url = usePar ? await client.buildAuthorizationUrlWithPAR(config, params) : client.buildAuthorizationUrl(config, params);
      return { url, transaction };
    } catch (err) {
      throw classifyProviderError(err, 'pushed authorization request');
    }
  }

  /**
   * Checks the authorization response (state, RFC 9207 iss), exchanges the code (PKCE), and verifies the
   * ID token: signature against the JWKS, iss, aud, exp, iat, nonce, alg, acr ≥ requested, and auth_time
   * within the max_age the login asked for.
   */
  async finishLogin(callbackUrl: URL, transaction: LoginTransaction): Promise<LoginTokens> {
    const { state, config } = await this.#current();
    const { dpopKey } = transaction;
    if (this.#tenant.idporten.dpop && !dpopKey) throw new OidcError('rejected', 'login transaction has no DPoP key (started before DPoP was turned on)');
    const sentAt = this.#now();
    let response: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      response = await client.authorizationCodeGrant(
        config,
        callbackUrl,
        { pkceCodeVerifier: transaction.codeVerifier, expectedState: transaction.state, expectedNonce: transaction.nonce, idTokenExpected: true },
        undefined,
        dpopKey ? { DPoP: await dpopHandle(config, dpopKey, this.#provider.dpopNonces) } : undefined,
      );
    } catch (err) {
      throw classifyProviderError(err, 'code exchange');
    }
    if (dpopKey) checkDpopBinding(response, dpopKey);
    const tokens = this.#tokenSet(response, sentAt);
    if (!tokens.idToken) throw new OidcError('rejected', 'token response has no id_token');
    const idTokenClaims = await verifyIdToken(state.keys, tokens.idToken, {
      issuer: this.issuer,
      clientId: this.#tenant.idporten.clientId,
      algorithms: this.#algorithms(state),
      nonce: transaction.nonce,
      minimumAcr: transaction.acr,
      maxAge: transaction.maxAge,
      now: this.#now(),
    });
    return {
      ...tokens,
      idToken: tokens.idToken,
      idTokenClaims,
      ...(transaction.resources ? { resources: transaction.resources } : {}),
      ...(dpopKey ? { dpopKey } : {}),
    };
  }

  /**
   * Refresh-token grant. A new ID token, if any, is verified and must keep iss, sub, aud and an acr at least
   * `minimumAcr` (OIDC Core 12.2); anything else is `rejected`. With `resource` (RFC 8707 section 2.2) the access
   * token is asked for that resource alone; a provider that will not issue one answers `invalid_target`. A session
   * with a DPoP key proves it on the grant and must get tokens bound to it again.
   */
  async refresh(refreshToken: string, binding: { sub: string; minimumAcr: string; dpopKey?: DpopKey | undefined }, resource?: string): Promise<TokenSet> {
    const { state, config } = await this.#current();
    const { dpopKey } = binding;
    const sentAt = this.#now();
    let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
    try {
      response = await client.refreshTokenGrant(
        config,
        refreshToken,
        resource === undefined ? undefined : { resource },
        dpopKey ? { DPoP: await dpopHandle(config, dpopKey, this.#provider.dpopNonces) } : undefined,
      );
    } catch (err) {
      throw classifyProviderError(err, 'refresh');
    }
    if (dpopKey) checkDpopBinding(response, dpopKey);
    const tokens = this.#tokenSet(response, sentAt);
    if (tokens.idToken) {
      const claims = await verifyIdToken(state.keys, tokens.idToken, {
        issuer: this.issuer,
        clientId: this.#tenant.idporten.clientId,
        algorithms: this.#algorithms(state),
        minimumAcr: binding.minimumAcr,
      });
      if (claims.sub !== binding.sub) throw new OidcError('rejected', 'refreshed id token has another sub');
      tokens.idTokenClaims = claims;
    }
    return tokens;
  }

  /** RFC 7009. ID-porten's logout does not revoke tokens with API scopes, so logout calls this. */
  async revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<void> {
    const { state, config } = await this.#current();
    if (!state.metadata.revocation_endpoint) return;
    try {
      await client.tokenRevocation(config, token, { token_type_hint: hint });
    } catch (err) {
      throw classifyProviderError(err, 'revocation');
    }
  }

  endSessionEndpoint(): string | undefined {
    return this.#provider.state?.metadata.end_session_endpoint;
  }

  /**
   * The end-session request's parameters (sent as a form POST, or as a URL for JSON clients). No `state`: it is
   * optional (OIDC RP-Initiated Logout 1.0 section 2), the gateway has nothing to carry across the logout, and the
   * provider would append it to the post-logout URI, leaving it in the address bar of the page the user lands on.
   */
  endSessionParameters(opts: { idToken?: string | undefined }): Record<string, string> {
    const params: Record<string, string> = {
      post_logout_redirect_uri: this.#tenant.idporten.postLogoutRedirectUri,
    };
    if (opts.idToken && this.#tenant.idporten.logoutHint === 'id_token') params.id_token_hint = opts.idToken;
    else params.client_id = this.#tenant.idporten.clientId;
    return params;
  }

  /** OIDC Back-Channel Logout 1.0, section 2.6: validates a logout token and returns its sid / sub. */
  async verifyLogoutToken(logoutToken: string): Promise<{ sid?: string; sub?: string; jti: string; exp: number }> {
    const { state } = await this.#current();
    const claims = await state.keys.verify(
      logoutToken,
      { issuer: this.issuer, clientId: this.#tenant.idporten.clientId, algorithms: this.#algorithms(state) },
      ['iss', 'aud', 'iat', 'exp', 'jti', 'events'],
    );
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(this.#tenant.idporten.clientId)) throw new OidcError('rejected', 'logout token audience');
    const events = claims.events as Record<string, unknown> | undefined;
    if (!events || typeof events !== 'object' || typeof events[BACKCHANNEL_LOGOUT_EVENT] !== 'object' || events[BACKCHANNEL_LOGOUT_EVENT] === null) {
      throw new OidcError('rejected', 'logout token has no back-channel logout event');
    }
    if ('nonce' in claims) throw new OidcError('rejected', 'logout token must not carry a nonce');
    if (typeof claims.jti !== 'string') throw new OidcError('rejected', 'logout token has no jti');
    const sid = typeof claims.sid === 'string' ? claims.sid : undefined;
    const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
    if (!sid && !sub) throw new OidcError('rejected', 'logout token has neither sid nor sub');
    return { ...(sid ? { sid } : {}), ...(sub ? { sub } : {}), jti: claims.jti, exp: claims.exp as number };
  }

  /** `sentAt`: when the token request went out (the token cannot have been issued before it). */
  #tokenSet(response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers, sentAt: number): TokenSet {
    if (typeof response.access_token !== 'string' || response.access_token.length === 0) {
      throw new OidcError('rejected', 'token response has no access_token');
    }
    const expiresIn = typeof response.expires_in === 'number' && response.expires_in > 0 ? response.expires_in : 120;
    return {
      accessToken: response.access_token,
      accessTokenExpiresAt: accessTokenExpiry(sentAt, expiresIn),
      refreshToken: response.refresh_token,
      idToken: response.id_token,
      scope: response.scope,
    };
  }
}

/**
 * When the access token expires for its upstream. `expires_in` (RFC 6749 section 5.1) counts from when the token
 * was issued, which this clock cannot see: not before the request went out (`sentAt`), maybe well before the
 * answer arrived (a slow answer), and a JWT's `exp` counts from its issue time rounded down to the second. So the
 * expiry is taken from the request's departure, less that second: never later than the upstream's own view,
 * whatever the answer's delay, and without trusting the provider's clock to agree with this one.
 */
export function accessTokenExpiry(sentAt: number, expiresInSeconds: number): number {
  return sentAt + expiresInSeconds * 1000 - EXPIRY_ROUNDING_MS;
}

/** A JWT's `iat`/`exp` are whole seconds: a token issued late in its second expires up to this much early. */
const EXPIRY_ROUNDING_MS = 1_000;

async function clientAuthentication(tenant: TenantConfig): Promise<client.ClientAuth> {
  const auth = tenant.idporten.clientAuth;
  switch (auth.method) {
    case 'client_secret_post':
      return client.ClientSecretPost(auth.secret);
    case 'client_secret_basic':
      return client.ClientSecretBasic(auth.secret);
    case 'private_key_jwt': {
      const { kid, alg: jwkAlg, ...jwk } = auth.privateKeyJwk as JsonWebKey & { kid?: string };
      const alg = jwkAlg ?? (jwk.kty === 'EC' ? 'ES256' : 'RS256');
      const key = (await importJWK({ ...jwk, alg }, alg)) as CryptoKey;
      // ID-porten: iss = sub = client_id, aud = the issuer, client_id also as a form parameter (openid-client does all three).
      return client.PrivateKeyJwt(kid ? { key, kid } : key);
    }
  }
}
