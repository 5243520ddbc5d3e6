import { LRUCache } from 'lru-cache';
import type { AuditLog } from '../audit/audit-log.js';
import { fingerprint } from '../audit/fingerprint.js';
import { inSpan } from '../audit/otel.js';
import { GatewayError, sessionExpired, StoreUnavailableError, LockTimeoutError } from '../errors.js';
import { acrFromClaims } from '../idporten/claims.js';
import { OidcError } from '../idporten/errors.js';
import type { SessionManager } from '../session/manager.js';
import type { Tenant } from '../tenant/tenant.js';
import { accessTokenValid, needsRefresh } from './refresh-policy.js';
import type { Session, SessionData } from './session-data.js';
import { SingleFlight } from './single-flight.js';

/** After ID-porten failed to answer, wait this long before asking again while the old token still works. */
const REFRESH_RETRY_COOLDOWN_MS = 5_000;

export interface RefresherOptions {
  sessions: SessionManager<SessionData>;
  audit: AuditLog;
  refreshLeewayMs: number;
  now: () => number;
  /** Ends a session whose refresh chain is dead (the lifecycle's one way to end a session). */
  end(session: Session, tenant: Tenant, reason: string): Promise<void>;
}

/**
 * Keeps a session's ID-porten access token fresh. Concurrent callers of one session share one refresh
 * (SingleFlight in-process; the session lock plus a re-read inside it across instances), and the rotated
 * refresh token is stored before the lock is released, so nobody ever presents a consumed refresh token.
 */
export class Refresher {
  readonly #opts: RefresherOptions;
  readonly #flights = new SingleFlight<Session>();
  /** When ID-porten last failed to refresh a session; entries are only useful for the cooldown, then they go. */
  readonly #lastFailure = new LRUCache<string, number>({ max: 100_000, ttl: REFRESH_RETRY_COOLDOWN_MS });

  constructor(opts: RefresherOptions) {
    this.#opts = opts;
  }

  /** The session with an access token valid for at least the leeway (refreshing if needed). */
  async fresh(session: Session, tenant: Tenant): Promise<Session> {
    const now = this.#opts.now();
    if (!needsRefresh(session.data, this.#opts.refreshLeewayMs, now)) return session;
    const failedAt = this.#lastFailure.get(session.id);
    if (failedAt !== undefined && now - failedAt < REFRESH_RETRY_COOLDOWN_MS && accessTokenValid(session.data, now)) return session;
    return this.#flights.run(session.id, () => inSpan('token.refresh', { tenant: tenant.id }, () => this.#underLock(session, tenant, false)));
  }

  /** The session itself when its access token needs no refresh; undefined when `fresh` has work to do. */
  freshNow(session: Session): Session | undefined {
    return needsRefresh(session.data, this.#opts.refreshLeewayMs, this.#opts.now()) ? undefined : session;
  }

  /** Refresh now, sharing a refresh that is already running. */
  refreshNow(session: Session, tenant: Tenant): Promise<Session> {
    return this.#flights.run(session.id, () => inSpan('token.refresh', { tenant: tenant.id }, () => this.#underLock(session, tenant, true)));
  }

  forget(sessionId: string): void {
    this.#lastFailure.delete(sessionId);
  }

  async #underLock(loaded: Session, tenant: Tenant, force: boolean): Promise<Session> {
    const { sessions, audit } = this.#opts;
    try {
      return await sessions.withLock(loaded, async () => {
        // Re-read inside the lock: another request or instance may have refreshed already.
        const current = await reloadLive(sessions, loaded);
        const refreshedMeanwhile = current.data.tokens.accessTokenIssuedAt > loaded.data.tokens.accessTokenIssuedAt;
        if (force ? refreshedMeanwhile : !needsRefresh(current.data, this.#opts.refreshLeewayMs, this.#opts.now())) return current;
        return await this.#refresh(current, tenant);
      });
    } catch (err) {
      if (err instanceof StoreUnavailableError || err instanceof LockTimeoutError) {
        const reason = err instanceof LockTimeoutError ? err.reason : 'store';
        audit.event('token.refresh.failure', { tenant: tenant.id, session: loaded.hash, sub: loaded.data.user.sub, reason });
      }
      throw err;
    }
  }

  async #refresh(session: Session, tenant: Tenant): Promise<Session> {
    const { sessions, audit, now } = this.#opts;
    const { tokens } = session.data;
    const base = { tenant: tenant.id, session: session.hash, sub: session.data.user.sub };
    if (!tokens.refreshToken) {
      if (accessTokenValid(session.data, now())) return session;
      await this.#opts.end(session, tenant, 'no refresh token');
      throw sessionExpired();
    }
    let refreshed;
    try {
      refreshed = await tenant.idporten.refresh(tokens.refreshToken, { sub: session.data.user.sub, minimumAcr: session.data.idTokenBinding.acr });
    } catch (err) {
      const failure = err instanceof OidcError ? err : new OidcError('unavailable', 'refresh failed', { cause: err });
      audit.event('token.refresh.failure', { ...base, reason: failure.reason, kind: failure.kind, refreshToken: fingerprint(tokens.refreshToken) });
      if (failure.kind === 'unavailable') {
        this.#lastFailure.set(session.id, now());
        if (accessTokenValid(session.data, now())) return session;
        throw new GatewayError('idp_unavailable', 'ID-porten could not be reached to refresh the session; try again shortly.', { cause: err });
      }
      // After a store failover two holders may both have believed they held the lock: if the refresh token that
      // failed is no longer the stored one, the other holder won the rotation and the session lives on.
      const stored = await reloadLive(sessions, session);
      if (failure.kind === 'invalid_grant' && stored.data.tokens.refreshToken !== tokens.refreshToken) return stored;
      // invalid_grant (revoked, expired or reused refresh token) or a refreshed ID token that broke the binding.
      await this.#opts.end(stored, tenant, failure.reason);
      throw sessionExpired();
    }
    // Loaded records are frozen and shared (see OpenedRecords): the refreshed one is a new record.
    session.data = {
      ...session.data,
      tokens: {
        accessToken: refreshed.accessToken,
        accessTokenIssuedAt: now(),
        accessTokenExpiresAt: refreshed.accessTokenExpiresAt,
        // Rotating refresh tokens: the new one replaces the old; a provider that reuses tokens sends none.
        refreshToken: refreshed.refreshToken ?? tokens.refreshToken,
        idToken: refreshed.idToken ?? tokens.idToken,
        scope: refreshed.scope ?? tokens.scope,
      },
      user: refreshed.idTokenClaims ? { ...session.data.user, acr: acrFromClaims(refreshed.idTokenClaims, session.data.user.acr) } : session.data.user,
      // Tokens obtained from the old access token (Altinn, …) die with it.
      derived: undefined,
    };
    let stored: boolean;
    try {
      stored = await sessions.update(session);
    } catch (err) {
      // A holder that lost its lock writes nothing; the rotated refresh token it got would live on unheld.
      if (err instanceof LockTimeoutError && refreshed.refreshToken) void tenant.idporten.revoke(refreshed.refreshToken, 'refresh_token').catch(() => undefined);
      throw err;
    }
    if (!stored) {
      // Logged out elsewhere while the grant ran: the new tokens are dropped, the session stays ended, and
      // the fresh refresh token is revoked (best effort) so it does not live on at ID-porten unheld.
      audit.event('token.refresh.failure', { ...base, reason: 'session ended during refresh', accessToken: fingerprint(refreshed.accessToken) });
      if (refreshed.refreshToken) void tenant.idporten.revoke(refreshed.refreshToken, 'refresh_token').catch(() => undefined);
      throw sessionExpired();
    }
    this.#lastFailure.delete(session.id);
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
  }
}

/** The session as stored now, or session_expired when it ended meanwhile (callers hold its lock). */
export async function reloadLive(sessions: SessionManager<SessionData>, loaded: Session): Promise<Session> {
  const result = await sessions.loadById(loaded.id, loaded.data.tenant);
  if (result.state !== 'live') throw sessionExpired();
  return result.session;
}
