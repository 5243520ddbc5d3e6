import { LRUCache } from 'lru-cache';
import type { AuditLog } from '../audit/audit-log.js';
import { fingerprint } from '../audit/fingerprint.js';
import { inSpan } from '../audit/otel.js';
import { GatewayError, RETRY_AFTER_SECONDS, sessionExpired, StoreUnavailableError, LockTimeoutError } from '../errors.js';
import { acrFromClaims } from '../idporten/claims.js';
import { OidcError } from '../idporten/errors.js';
import type { SessionManager } from '../session/manager.js';
import type { PendingOutcome } from '../session/pending-writes.js';
import type { ClaimTiming } from '../session/store.js';
import type { Tenant } from '../tenant/tenant.js';
import { needsRefresh } from './refresh-policy.js';
import { resourceTarget, SESSION_TOKEN, type RefreshTarget } from './resource-tokens.js';
import type { Session, SessionData } from './session-data.js';
import { SingleFlight } from './single-flight.js';

/** After ID-porten failed to answer, wait this long before asking again while the old token still works. */
const REFRESH_RETRY_COOLDOWN_MS = RETRY_AFTER_SECONDS.idporten * 1_000;
/**
 * A refresh's claim on its refresh token (see SessionStore.claim): renewed every CLAIM_RENEW_MS while it presents
 * the token and writes the result, so a live but slow one (ID-porten answering late) keeps it; once it lapses,
 * another refresh waits the grace — in which a refresh cut off from the store by a pause or a dropped connection
 * writes its rotated token as soon as the store answers (kept writes are retried every 200 ms) — and then
 * takes it over. A refresh that died costs its session the lock's lease plus the grace.
 */
const CLAIM_TIMING: ClaimTiming = { ttlMs: 2_000, graceMs: 1_500 };
const CLAIM_RENEW_MS = 500;
/** How often a request waiting for another refresh's claim asks again. */
const CLAIM_POLL_MS = 100;

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
 * (SingleFlight in-process; the session lock plus a re-read inside it across instances). A refresh token is
 * presented only after the store recorded this instance's claim on it, and the rotated one is written by a
 * compare-and-set on the redeemed one — kept and written again while the store fails — so nobody presents a
 * consumed refresh token, whatever happens to the lock's lease.
 */
export class Refresher {
  readonly #opts: RefresherOptions;
  readonly #flights = new SingleFlight<Session>();
  /** When ID-porten last failed to refresh a session (per target); entries are only useful for the cooldown, then they go. */
  readonly #lastFailure = new LRUCache<string, number>({ max: 100_000, ttl: REFRESH_RETRY_COOLDOWN_MS });

  constructor(opts: RefresherOptions) {
    this.#opts = opts;
  }

  /** The session with an access token valid for at least the leeway (refreshing if needed). */
  fresh(session: Session, tenant: Tenant): Promise<Session> {
    return this.#fresh(session, tenant, SESSION_TOKEN);
  }

  /**
   * The session with an access token for `resource` (RFC 8707) valid for at least the leeway, obtained or refreshed
   * by a refresh grant with `resource` when needed — under the same lock and claim as any refresh of the session,
   * since it rotates the same refresh token.
   */
  freshForResource(session: Session, tenant: Tenant, resource: string): Promise<Session> {
    return this.#fresh(session, tenant, resourceTarget(resource));
  }

  async #fresh(session: Session, tenant: Tenant, target: RefreshTarget): Promise<Session> {
    const now = this.#opts.now();
    if (!target.needs(session.data, this.#opts.refreshLeewayMs, now)) return session;
    const key = flightKey(session, target);
    const failedAt = this.#lastFailure.get(key);
    if (failedAt !== undefined && now - failedAt < REFRESH_RETRY_COOLDOWN_MS && target.valid(session.data, now)) return session;
    return this.#flights.run(key, () => inSpan('token.refresh', { tenant: tenant.id }, () => this.#underLock(session, tenant, false, target)));
  }

  /** The session itself when its access token needs no refresh; undefined when `fresh` has work to do. */
  freshNow(session: Session): Session | undefined {
    return needsRefresh(session.data, this.#opts.refreshLeewayMs, this.#opts.now()) ? undefined : session;
  }

  /** Refresh now, sharing a refresh that is already running. */
  refreshNow(session: Session, tenant: Tenant): Promise<Session> {
    return this.#flights.run(session.id, () => inSpan('token.refresh', { tenant: tenant.id }, () => this.#underLock(session, tenant, true, SESSION_TOKEN)));
  }

  forget(session: Session): void {
    this.#lastFailure.delete(session.id);
    for (const resource of Object.keys(session.data.resourceTokens ?? {})) this.#lastFailure.delete(flightKey(session, resourceTarget(resource)));
  }

  async #underLock(loaded: Session, tenant: Tenant, force: boolean, target: RefreshTarget): Promise<Session> {
    const { sessions, audit } = this.#opts;
    try {
      return await sessions.withLock(loaded, async () => {
        // Re-read inside the lock: another request or instance may have refreshed already. (A rotated token this
        // instance still keeps for the store is written first.)
        const current = await reloadLive(sessions, loaded);
        const refreshedMeanwhile = current.data.tokens.accessTokenIssuedAt > loaded.data.tokens.accessTokenIssuedAt;
        if (force ? refreshedMeanwhile : !target.needs(current.data, this.#opts.refreshLeewayMs, this.#opts.now())) return current;
        return await this.#refresh(current, tenant, target);
      });
    } catch (err) {
      if (err instanceof StoreUnavailableError || err instanceof LockTimeoutError) {
        const reason = err instanceof LockTimeoutError ? err.reason : 'store';
        audit.event('token.refresh.failure', { tenant: tenant.id, session: loaded.hash, sub: loaded.data.user.sub, reason });
      }
      throw err;
    }
  }

  async #refresh(read: Session, tenant: Tenant, target: RefreshTarget): Promise<Session> {
    const { sessions, now } = this.#opts;
    if (!read.data.tokens.refreshToken) {
      if (target.valid(read.data, now())) return read;
      if (target.resource !== undefined) throw new GatewayError('resource_refused', 'ID-porten gave this session no refresh token, so no token for this API can be asked for.');
      await this.#opts.end(read, tenant, 'no refresh token');
      throw sessionExpired();
    }
    const holder = sessions.newClaimHolder();
    const claim = await this.#claim(read, holder, target);
    if ('answer' in claim) return claim.answer;
    const session = claim.redeem;
    // Renewed until the rotated token is written or kept (or the refresh failed): the claim says it is alive. Always
    // on the version claimed, which the session's own data leaves once it holds the rotated tokens.
    const version = sessions.versionOf(session.data);
    const renewal = setInterval(() => void sessions.claim(session.id, version, holder, CLAIM_TIMING).catch(() => undefined), CLAIM_RENEW_MS);
    renewal.unref();
    try {
      return await this.#redeem(session, tenant, holder, version, target);
    } finally {
      clearInterval(renewal);
    }
  }

  /** Presents the claimed refresh token (the record's version `expected`) and writes what comes back. */
  async #redeem(session: Session, tenant: Tenant, holder: string, expected: string, target: RefreshTarget): Promise<Session> {
    const { sessions, audit, now } = this.#opts;
    const { tokens } = session.data;
    const refreshToken = tokens.refreshToken!;
    const { resource } = target;
    const base = { tenant: tenant.id, session: session.hash, sub: session.data.user.sub, ...(resource === undefined ? {} : { resource }) };
    const previousAccessToken = resource === undefined ? tokens.accessToken : session.data.resourceTokens?.[resource]?.accessToken;
    const askedAt = now();
    let refreshed;
    try {
      refreshed = await tenant.idporten.refresh(refreshToken, { sub: session.data.user.sub, minimumAcr: session.data.idTokenBinding.acr }, resource);
    } catch (err) {
      const failure = err instanceof OidcError ? err : new OidcError('unavailable', 'refresh failed', { cause: err });
      audit.event('token.refresh.failure', { ...base, reason: failure.reason, kind: failure.kind, refreshToken: fingerprint(refreshToken) });
      if (failure.kind === 'unavailable') {
        // Nothing came back to keep: the claim goes, so the next try (here or elsewhere) need not wait for it.
        await sessions.unclaim(session, holder);
        this.#lastFailure.set(flightKey(session, target), now());
        if (target.valid(session.data, now())) return session;
        throw new GatewayError('idp_unavailable', 'ID-porten could not be reached to refresh the session; try again shortly.', { cause: err });
      }
      if (failure.kind === 'invalid_target' && resource !== undefined) {
        // RFC 8707 section 2: the provider will not issue a token for this resource. An error answer issues
        // nothing, so the refresh token presented is still the session's: the claim goes, the session lives on.
        await sessions.unclaim(session, holder);
        throw new GatewayError('resource_refused', 'ID-porten refused to issue a token for the API this route calls (invalid_target).', { cause: err });
      }
      // If the refresh token that failed is no longer the stored one, another holder won the rotation and the
      // session lives on.
      const stored = await reloadLive(sessions, session);
      if (failure.kind === 'invalid_grant' && stored.data.tokens.refreshToken !== refreshToken) return stored;
      // invalid_grant (revoked, expired or reused refresh token) or a refreshed ID token that broke the binding.
      await this.#opts.end(stored, tenant, failure.reason);
      throw sessionExpired();
    }
    // Loaded records are frozen and shared (see OpenedRecords): the refreshed one is a new record.
    const applied = target.apply(session.data, refreshed, target.resource === undefined ? now() : askedAt);
    session.data = {
      ...applied,
      user: refreshed.idTokenClaims ? { ...applied.user, acr: acrFromClaims(refreshed.idTokenClaims, applied.user.acr) } : applied.user,
    };
    const rotated = refreshed.refreshToken !== undefined && refreshed.refreshToken !== refreshToken;
    // The store decides (compare-and-set on the redeemed token); a store that fails gets the update again as soon
    // as it answers, and this request goes on with the new access token meanwhile.
    const outcome = await sessions.update(session, expected, {
      holder,
      keep: (late) => {
        if (late !== 'written') this.#orphaned(session, tenant, rotated ? refreshed.refreshToken : undefined, late);
      },
    });
    if (outcome === 'gone' || outcome === 'changed') {
      this.#orphaned(session, tenant, rotated ? refreshed.refreshToken : undefined, outcome);
      if (outcome === 'gone') throw sessionExpired();
      return reloadLive(sessions, session);
    }
    this.#lastFailure.delete(flightKey(session, target));
    audit.event('token.refresh', {
      ...base,
      oldAccessToken: fingerprint(previousAccessToken),
      accessToken: fingerprint(refreshed.accessToken),
      oldRefreshToken: fingerprint(refreshToken),
      refreshToken: fingerprint(session.data.tokens.refreshToken),
      rotated,
      expiresAt: new Date(refreshed.accessTokenExpiresAt).toISOString(),
      ...(outcome === 'kept' ? { stored: 'pending' } : {}),
    });
    return session;
  }

  /**
   * Claims the session's refresh token in the store before presenting it: `redeem` the session (as read now) when
   * this instance may present it, or `answer` with a session that needs no refresh from here — another instance
   * rotated it meanwhile, or claimed it and may hold its successor while the old access token still works.
   * Waits (under the lock) while another claim holds and the access token has expired (see CLAIM_TIMING).
   */
  async #claim(read: Session, holder: string, target: RefreshTarget): Promise<{ redeem: Session } | { answer: Session }> {
    const { sessions, now } = this.#opts;
    let session = read;
    for (;;) {
      // Nothing is redeemed that could not be kept should the store fail right after.
      if (!sessions.canKeep) throw new StoreUnavailableError('too many token updates are waiting for the session store');
      let claim;
      try {
        claim = await sessions.claim(session.id, sessions.versionOf(session.data), holder, CLAIM_TIMING);
      } catch (err) {
        // The store cannot hold the claim (unreachable, or no replica confirms it): nothing is presented. A claim
        // that timed out here may still be carried out when the store answers again (it waits on the connection);
        // lifting it, on the same connection after it, keeps others from waiting out a claim nobody holds.
        void sessions.unclaim(session, holder);
        if (err instanceof StoreUnavailableError && target.valid(session.data, now())) return { answer: session };
        throw err;
      }
      if (claim.state === 'claimed') return { redeem: session };
      if (claim.state === 'gone') throw sessionExpired();
      if (claim.state === 'changed') {
        session = await reloadLive(sessions, session);
        if (!target.needs(session.data, this.#opts.refreshLeewayMs, now())) return { answer: session };
        continue;
      }
      if (target.valid(session.data, now())) return { answer: session };
      await new Promise((resolve) => setTimeout(resolve, Math.max(10, Math.min(claim.retryInMs, CLAIM_POLL_MS))));
    }
  }

  /**
   * The rotated refresh token can no longer be stored: the session ended meanwhile (a logout), passed its deadline,
   * or another holder rotated it. It is revoked (best effort) so it does not live on at ID-porten unheld.
   */
  #orphaned(session: Session, tenant: Tenant, refreshToken: string | undefined, why: PendingOutcome): void {
    const reason = why === 'changed' ? 'tokens rotated elsewhere during refresh' : 'session ended during refresh';
    this.#opts.audit.event('token.refresh.failure', {
      tenant: tenant.id,
      session: session.hash,
      sub: session.data.user.sub,
      reason,
      accessToken: fingerprint(session.data.tokens.accessToken),
      refreshToken: fingerprint(refreshToken),
    });
    if (refreshToken) void tenant.idporten.revoke(refreshToken, 'refresh_token').catch(() => undefined);
  }
}

/** Refreshes of one session share a flight per target; each target has its own cooldown after a failure. */
function flightKey(session: Session, target: RefreshTarget): string {
  return target.resource === undefined ? session.id : `${session.id} ${target.resource}`;
}

/** The session as stored now, or session_expired when it ended meanwhile (callers hold its lock). */
export async function reloadLive(sessions: SessionManager<SessionData>, loaded: Session): Promise<Session> {
  const result = await sessions.loadById(loaded.id, loaded.data.tenant);
  if (result.state !== 'live') throw sessionExpired();
  return result.session;
}
