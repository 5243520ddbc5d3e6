import { LRUCache } from 'lru-cache';
import type { AuditLog } from '../audit/audit-log.js';
import { fingerprint } from '../audit/fingerprint.js';
import type { TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { boundedFetch, type FetchLike } from '../net/fetch.js';
import { OidcError } from '../oidc/errors.js';
import { acrFromClaims, type IdportenClient } from '../oidc/idporten-client.js';
import type { SessionManager } from '../session/manager.js';
import type { SessionContext } from '../session/session.js';
import { LockTimeoutError, StoreUnavailableError } from '../session/store.js';
import { loginUrl } from '../tenant/urls.js';
import { AltinnExchangeError, exchangeForAltinnToken } from './altinn-exchange.js';
import { accessTokenValid, needsRefresh } from './refresh-policy.js';
import { SingleFlight } from './single-flight.js';

/** After ID-porten failed to answer, wait this long before asking again while the old token still works. */
const REFRESH_RETRY_COOLDOWN_MS = 5_000;
/** Re-exchange the Altinn token this long before it expires. */
const ALTINN_EXPIRY_LEEWAY_MS = 10_000;

export interface TokenServiceOptions {
  sessions: SessionManager;
  clients: Map<string, IdportenClient>;
  audit: AuditLog;
  refreshLeewayMs: number;
  now?: () => number;
}

/**
 * "Give me a fresh token for this session": refreshes ID-porten tokens transparently and exchanges them
 * for Altinn tokens. Concurrent callers of one session share one refresh (SingleFlight in-process; the
 * session lock plus a re-read inside it across instances), and the rotated refresh token is stored before
 * the lock is released, so nobody ever presents a consumed refresh token.
 */
export class TokenService {
  readonly #opts: TokenServiceOptions;
  readonly #now: () => number;
  readonly #refreshes = new SingleFlight<SessionContext>();
  readonly #exchanges = new SingleFlight<SessionContext>();
  /** When ID-porten last failed to refresh a session; entries are only useful for the cooldown, then they go. */
  readonly #lastRefreshFailure = new LRUCache<string, number>({ max: 100_000, ttl: REFRESH_RETRY_COOLDOWN_MS });
  readonly #altinnFetch = new Map<string, FetchLike>();

  constructor(opts: TokenServiceOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** The session with an ID-porten access token that is valid for at least the leeway (refreshing if needed). */
  async fresh(session: SessionContext, tenant: TenantConfig): Promise<SessionContext> {
    if (!needsRefresh(session.data, this.#opts.refreshLeewayMs, this.#now())) return session;
    const failedAt = this.#lastRefreshFailure.get(session.id);
    if (failedAt !== undefined && this.#now() - failedAt < REFRESH_RETRY_COOLDOWN_MS && accessTokenValid(session.data, this.#now())) {
      return session;
    }
    return this.#refreshes.run(session.id, () => this.#refreshUnderLock(session, tenant, false));
  }

  /** POST /auth/session/refresh: refresh now, sharing a refresh that is already running. */
  async refreshNow(session: SessionContext, tenant: TenantConfig): Promise<SessionContext> {
    return this.#refreshes.run(session.id, () => this.#refreshUnderLock(session, tenant, true));
  }

  async idportenAccessToken(session: SessionContext, tenant: TenantConfig): Promise<{ session: SessionContext; token: string }> {
    const current = await this.fresh(session, tenant);
    return { session: current, token: current.data.tokens.accessToken };
  }

  /** An Altinn token for the session's current ID-porten access token, exchanged once and cached. */
  async altinnToken(session: SessionContext, tenant: TenantConfig): Promise<{ session: SessionContext; token: string }> {
    const current = await this.fresh(session, tenant);
    if (this.#altinnUsable(current)) return { session: current, token: current.data.altinn!.token };
    const exchanged = await this.#exchanges.run(current.id, () => this.#exchangeUnderLock(current, tenant));
    return { session: exchanged, token: exchanged.data.altinn!.token };
  }

  #altinnUsable(session: SessionContext): boolean {
    const altinn = session.data.altinn;
    return Boolean(
      altinn &&
        altinn.accessTokenFingerprint === fingerprint(session.data.tokens.accessToken) &&
        this.#now() < altinn.expiresAt - Math.min(ALTINN_EXPIRY_LEEWAY_MS, (altinn.expiresAt - session.data.tokens.accessTokenIssuedAt) / 4),
    );
  }

  async #refreshUnderLock(loaded: SessionContext, tenant: TenantConfig, force: boolean): Promise<SessionContext> {
    const { sessions, audit } = this.#opts;
    try {
      return await sessions.withLock(loaded, async () => {
        // Re-read inside the lock: another request or instance may have refreshed already.
        const current = await this.#reload(loaded, tenant);
        const refreshedMeanwhile = current.data.tokens.accessTokenIssuedAt > loaded.data.tokens.accessTokenIssuedAt;
        if (force ? refreshedMeanwhile : !needsRefresh(current.data, this.#opts.refreshLeewayMs, this.#now())) return current;
        return this.#refresh(current, tenant);
      });
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      if (err instanceof LockTimeoutError) {
        audit.event('token.refresh.failure', { tenant: tenant.id, session: loaded.hash, sub: loaded.data.user.sub, reason: err.reason });
        throw new GatewayError('refresh_in_progress', 'Another request is refreshing this session; try again shortly.', { headers: { 'retry-after': String(err.retryAfterSeconds) }, cause: err });
      }
      if (err instanceof StoreUnavailableError) {
        audit.event('token.refresh.failure', { tenant: tenant.id, session: loaded.hash, sub: loaded.data.user.sub, reason: 'store' });
        throw new GatewayError('store_unavailable', 'The session store could not be reached.', { cause: err });
      }
      throw err;
    }
  }

  async #reload(loaded: SessionContext, tenant: TenantConfig): Promise<SessionContext> {
    const result = await this.#opts.sessions.loadById(loaded.id);
    if (result.state !== 'live') throw this.#sessionExpired(tenant);
    return result.session;
  }

  async #refresh(session: SessionContext, tenant: TenantConfig): Promise<SessionContext> {
    const { sessions, audit, clients } = this.#opts;
    const { tokens } = session.data;
    const base = { tenant: tenant.id, session: session.hash, sub: session.data.user.sub };
    if (!tokens.refreshToken) {
      if (accessTokenValid(session.data, this.#now())) return session;
      await this.#end(session, tenant, 'no refresh token');
      throw this.#sessionExpired(tenant);
    }
    const client = clients.get(tenant.id)!;
    try {
      const refreshed = await client.refresh(tokens.refreshToken, { sub: session.data.user.sub, minimumAcr: session.data.idTokenBinding.acr });
      const issuedAt = this.#now();
      session.data.tokens = {
        accessToken: refreshed.accessToken,
        accessTokenIssuedAt: issuedAt,
        accessTokenExpiresAt: refreshed.accessTokenExpiresAt,
        // Rotating refresh tokens: the new one replaces the old; a provider that reuses tokens sends none.
        refreshToken: refreshed.refreshToken ?? tokens.refreshToken,
        idToken: refreshed.idToken ?? tokens.idToken,
        scope: refreshed.scope ?? tokens.scope,
      };
      if (refreshed.idTokenClaims) session.data.user.acr = acrFromClaims(refreshed.idTokenClaims, session.data.user.acr);
      // A new access token invalidates the Altinn token exchanged from the old one.
      session.data.altinn = undefined;
      if (!(await sessions.update(session))) {
        // Logged out elsewhere while the grant ran: the new tokens are dropped, the session stays ended, and
        // the fresh refresh token is revoked (best effort) so it does not live on at ID-porten unheld.
        audit.event('token.refresh.failure', { ...base, reason: 'session ended during refresh', accessToken: fingerprint(refreshed.accessToken) });
        if (refreshed.refreshToken) void client.revoke(refreshed.refreshToken, 'refresh_token').catch(() => undefined);
        throw this.#sessionExpired(tenant);
      }
      this.#lastRefreshFailure.delete(session.id);
      audit.event('token.refresh', {
        ...base,
        oldAccessToken: fingerprint(tokens.accessToken),
        accessToken: fingerprint(refreshed.accessToken),
        oldRefreshToken: fingerprint(tokens.refreshToken),
        refreshToken: fingerprint(session.data.tokens.refreshToken),
        rotated: refreshed.refreshToken !== undefined && refreshed.refreshToken !== tokens.refreshToken,
        expiresAt: new Date(refreshed.accessTokenExpiresAt).toISOString(),
      });
      return session;
    } catch (err) {
      if (err instanceof StoreUnavailableError || err instanceof GatewayError || err instanceof LockTimeoutError) throw err;
      const failure = err instanceof OidcError ? err : new OidcError('unavailable', 'refresh failed', { cause: err });
      audit.event('token.refresh.failure', { ...base, reason: failure.reason, kind: failure.kind, refreshToken: fingerprint(tokens.refreshToken) });
      if (failure.kind === 'unavailable') {
        this.#lastRefreshFailure.set(session.id, this.#now());
        if (accessTokenValid(session.data, this.#now())) return session;
        throw new GatewayError('idp_unavailable', 'ID-porten could not be reached to refresh the session; try again shortly.', { cause: err });
      }
      // invalid_grant (revoked, expired or reused refresh token) or a refreshed ID token that broke the binding.
      await this.#end(session, tenant, failure.reason);
      throw this.#sessionExpired(tenant);
    }
  }

  async #exchangeUnderLock(loaded: SessionContext, tenant: TenantConfig): Promise<SessionContext> {
    const { sessions, audit } = this.#opts;
    try {
      return await sessions.withLock(loaded, async () => {
        const current = await this.#reload(loaded, tenant);
        if (this.#altinnUsable(current)) return current;
        if (!accessTokenValid(current.data, this.#now())) throw this.#sessionExpired(tenant);
        const accessToken = current.data.tokens.accessToken;
        const exchanged = await exchangeForAltinnToken(this.#fetchFor(tenant), tenant.altinn!.exchangeUrl, accessToken, current.data.tokens.accessTokenExpiresAt);
        current.data.altinn = { token: exchanged.token, expiresAt: exchanged.expiresAt, accessTokenFingerprint: fingerprint(accessToken)! };
        if (!(await sessions.update(current))) throw this.#sessionExpired(tenant);
        audit.event('token.exchange', {
          tenant: tenant.id,
          session: current.hash,
          sub: current.data.user.sub,
          accessToken: fingerprint(accessToken),
          altinnToken: fingerprint(exchanged.token),
          expiresAt: new Date(exchanged.expiresAt).toISOString(),
        });
        return current;
      });
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      if (err instanceof AltinnExchangeError) {
        audit.event('token.exchange', { tenant: tenant.id, session: loaded.hash, sub: loaded.data.user.sub, failed: true, reason: err.message });
        throw new GatewayError('upstream_unavailable', 'The Altinn token exchange failed.', { cause: err });
      }
      if (err instanceof LockTimeoutError) {
        throw new GatewayError('refresh_in_progress', 'Another request is updating this session; try again shortly.', { headers: { 'retry-after': String(err.retryAfterSeconds) }, cause: err });
      }
      if (err instanceof StoreUnavailableError) {
        throw new GatewayError('store_unavailable', 'The session store could not be reached.', { cause: err });
      }
      throw err;
    }
  }

  #fetchFor(tenant: TenantConfig): FetchLike {
    let f = this.#altinnFetch.get(tenant.id);
    if (!f) {
      f = boundedFetch({ timeoutMs: 15_000, caPem: tenant.upstreamCaPem });
      this.#altinnFetch.set(tenant.id, f);
    }
    return f;
  }

  async #end(session: SessionContext, tenant: TenantConfig, reason: string): Promise<void> {
    await this.#opts.sessions.destroy(session.id);
    this.#lastRefreshFailure.delete(session.id);
    this.#opts.audit.event('logout', { tenant: tenant.id, session: session.hash, sub: session.data.user.sub, channel: 'expired', reason });
  }

  #sessionExpired(tenant: TenantConfig): GatewayError {
    return new GatewayError('session_expired', 'The session has ended; log in again.', { loginUrl: loginUrl(tenant) });
  }
}
