import { timingSafeEqual } from 'node:crypto';
import type { AuditLog, LogoutChannel } from '../audit/audit-log.js';
import { fingerprint } from '../audit/fingerprint.js';
import { inSpan } from '../audit/otel.js';
import type { AcrLevel } from '../config/types.js';
import { GatewayError, StoreUnavailableError, sessionExpired } from '../errors.js';
import { userFromClaims } from '../idporten/claims.js';
import type { LoginTokens } from '../idporten/client.js';
import type { UpstreamNonces } from '../net/dpop-nonces.js';
import type { KeyRing } from '../session/key-ring.js';
import { SessionManager } from '../session/manager.js';
import type { Tenant } from '../tenant/tenant.js';
import { TOKEN_KINDS, type TokenSource } from './kinds/index.js';
import type { LogoutJournal } from './logout-journal.js';
import { PendingLogouts, type ProviderSession } from './pending-logouts.js';
import { Refresher, reloadLive } from './refresh.js';
import { accessTokenValid } from './refresh-policy.js';
import { grantedResource, usableResourceToken } from './resource-tokens.js';
import { Revoker, type RevocationOutcome, type WarningLog } from './revocation.js';
import type { Session, SessionData } from './session-data.js';
import { SingleFlight } from './single-flight.js';

/** Re-obtain a derived token (Altinn) this long before it expires. */
const DERIVED_EXPIRY_LEEWAY_MS = 10_000;

/** Channels where someone is waiting to hear that the tokens are revoked; the others revoke in the background. */
const REVOKE_BEFORE_ANSWERING: ReadonlySet<LogoutChannel> = new Set(['rp', 'frontchannel', 'backchannel', 'all', 'user', 'admin']);

/** A handle is this many base64url characters of an HMAC: 132 bits, and never the 43 of a cookie value. */
const HANDLE_LENGTH = 22;
const HANDLE = /^[A-Za-z0-9_-]{22}$/;
const HANDLE_MAC_PURPOSE = 'idporten-bff session handle v1';

/** One of a user's sessions as the user or an operator may see it: no store key, cookie or token. */
export interface SessionSummary {
  /** Opaque: a keyed hash of the store key. Names the session in DELETE requests; not a credential. */
  handle: string;
  session: Session;
  createdAt: number;
  lastSeenAt: number;
  userAgent: string | undefined;
}

export type { ProviderSession } from './pending-logouts.js';

export type CurrentSession = { state: 'live'; session: Session } | { state: 'ended'; reason: 'idle' | 'expired' } | { state: 'none' };

export interface TokenLifecycleOptions {
  sessions: SessionManager<SessionData>;
  audit: AuditLog;
  log: WarningLog;
  refreshLeewayMs: number;
  now: () => number;
  /** The session key ring: session handles are MACs under keys it derives for that purpose. */
  handleKeys: KeyRing;
  /** The DPoP nonces resource servers handed out, shared by the instances: the Altinn exchange's too. */
  upstreamNonces?: UpstreamNonces | undefined;
  /** `session.journalDir`: pending provider logouts kept across a restart, their tenants found again by id. */
  logoutJournal?: { journal: LogoutJournal; tenantById: (id: string) => Tenant | undefined } | undefined;
}

/**
 * The one owner of a session's tokens, from the login that brings them to the revocation that ends them:
 * begin a session from a login, find the request's live session, give a route the bearer of its token
 * kind (refreshing and exchanging as needed), and end a session for a named reason — revoke, destroy and
 * audit, written once here and nowhere else.
 */
export class TokenLifecycle implements TokenSource {
  readonly #sessions: SessionManager<SessionData>;
  readonly #audit: AuditLog;
  readonly #now: () => number;
  readonly #refreshLeewayMs: number;
  readonly #revoker: Revoker;
  readonly #refresher: Refresher;
  readonly #derivations = new SingleFlight<Session>();
  readonly #handleKeys: KeyRing;
  readonly upstreamNonces: UpstreamNonces | undefined;
  /** Provider logouts whose sessions could not be ended yet (store unreachable), retried in the background. */
  readonly #pendingLogouts: PendingLogouts;

  constructor(opts: TokenLifecycleOptions) {
    this.#sessions = opts.sessions;
    this.#audit = opts.audit;
    this.#now = opts.now;
    this.#refreshLeewayMs = opts.refreshLeewayMs;
    this.#revoker = new Revoker(opts.log);
    this.#handleKeys = opts.handleKeys;
    this.upstreamNonces = opts.upstreamNonces;
    this.#refresher = new Refresher({ ...opts, end: (session, tenant, reason) => this.end(session, tenant, 'expired', { reason }) });
    this.#pendingLogouts = new PendingLogouts({
      sessions: opts.sessions,
      end: (tenant, who) => this.#endProviderSession(tenant, who),
      log: opts.log,
      now: opts.now,
      maxAgeMs: opts.sessions.absoluteLifetimeMs,
      journal: opts.logoutJournal?.journal,
      tenantById: opts.logoutJournal?.tenantById,
    });
  }

  get sessions(): SessionManager<SessionData> {
    return this.#sessions;
  }

  /**
   * A new session (under a new id: no fixation) from a finished login. Whatever sessions this browser had
   * in the tenant are ended first (`replaces`: store keys from its cookie and from the login transaction).
   */
  async begin(tenant: Tenant, login: LoginTokens, opts: { requestedAcr: AcrLevel; replaces: Array<string | undefined>; userAgent?: string | undefined }): Promise<{ cookieValue: string; session: Session }> {
    const { user, binding } = userFromClaims(login.idTokenClaims, opts.requestedAcr, tenant.config.idporten.clientId);
    const replaced: string[] = [];
    for (const id of new Set(opts.replaces)) {
      if (id === undefined) continue;
      const old = await this.#sessions.loadById(id, tenant.id);
      if (old.state === 'none' || old.session.data.tenant !== tenant.id) continue;
      // The same user logging in again (a step-up, a second tab) is often served from ID-porten's SSO session
      // under the same authorization, and revoking the old refresh token revokes that authorization, new
      // tokens included. So the old session is destroyed and its tokens left to expire; another user's are revoked.
      const sameUser = old.session.data.user.sub === user.sub;
      await this.end(old.session, tenant, 'replaced', sameUser ? { revoke: false, reason: 'same user; the new login may share its authorization' } : {});
      replaced.push(old.session.hash);
    }
    const now = this.#now();
    const data: SessionData = {
      tenant: tenant.id,
      user,
      idTokenBinding: binding,
      createdAt: now,
      userAgent: opts.userAgent,
      tokens: {
        accessToken: login.accessToken,
        accessTokenIssuedAt: now,
        accessTokenExpiresAt: login.accessTokenExpiresAt,
        refreshToken: login.refreshToken,
        idToken: login.idToken,
        scope: login.scope,
      },
      ...(login.resources?.length ? { resources: login.resources } : {}),
      ...(login.dpopKey ? { dpop: login.dpopKey } : {}),
    };
    const { cookieValue, session } = await this.#sessions.create(data);
    this.#audit.event('login.success', {
      tenant: tenant.id,
      session: session.hash,
      sub: user.sub,
      acr: user.acr,
      amr: user.amr,
      sid: fingerprint(user.sid),
      replacedSession: replaced[0],
      idToken: fingerprint(login.idToken),
      accessToken: fingerprint(login.accessToken),
      refreshToken: fingerprint(login.refreshToken),
      accessTokenExpiresAt: new Date(login.accessTokenExpiresAt).toISOString(),
    });
    return { cookieValue, session };
  }

  /**
   * The live session a cookie value names in this tenant. A session found past its idle or absolute
   * deadline is ended here (audited as `idle` / `expired`); a tampered, unknown or foreign cookie is none.
   */
  async current(tenant: Tenant, cookieValue: unknown): Promise<CurrentSession> {
    const result = await this.#sessions.load(cookieValue, tenant.id);
    if (result.state === 'none' || result.session.data.tenant !== tenant.id) return { state: 'none' };
    if (result.state === 'expired' && result.reason === 'refused') {
      await this.end(result.session, tenant, 'backchannel', { reason: 'logout delivered while the store was unreachable' });
      return { state: 'ended', reason: 'expired' };
    }
    if (result.state === 'expired') {
      const reason = result.reason === 'idle' ? 'idle' : 'expired';
      await this.end(result.session, tenant, reason);
      return { state: 'ended', reason };
    }
    await this.#sessions.touch(result.session);
    return { state: 'live', session: result.session };
  }

  /**
   * The live session a cookie names, when that is known without waiting: the store's kept copy shows it live
   * and no touch is due. Undefined otherwise; then `current` decides (and touches, and ends what is past a deadline).
   */
  liveNow(tenant: Tenant, cookieValue: unknown): Session | undefined {
    const session = this.#sessions.liveNow(cookieValue, tenant.id);
    return session && !this.#sessions.touchDue(session) ? session : undefined;
  }

  /**
   * What `bearer` would give, when nothing has to be refreshed or obtained for it; undefined otherwise (then
   * call `bearer`). `{ value: undefined }` is a route that sends no bearer.
   */
  bearerNow(kindName: string, tenant: Tenant, session: Session | undefined, resource?: string): { value: string | undefined } | undefined {
    return TOKEN_KINDS.get(kindName)?.bearerNow(this, tenant, session, resource);
  }

  /** The bearer a route of this token kind (and RFC 8707 resource, if it names one) sends upstream (undefined: none). */
  async bearer(kindName: string, tenant: Tenant, session: Session | undefined, resource?: string): Promise<string | undefined> {
    const kind = TOKEN_KINDS.get(kindName);
    if (!kind) throw new GatewayError('internal_error', `Unknown token kind ${kindName}.`);
    return kind.bearer(this, tenant, session, resource);
  }

  needsSession(kindName: string): boolean {
    return TOKEN_KINDS.get(kindName)?.needsSession ?? true;
  }

  fresh(session: Session, tenant: Tenant): Promise<Session> {
    return this.#refresher.fresh(session, tenant);
  }

  freshNow(session: Session): Session | undefined {
    return this.#refresher.freshNow(session);
  }

  derivedNow(session: Session, kind: string): string | undefined {
    return this.#usableDerived(session, kind);
  }

  async forResource(session: Session, tenant: Tenant, resource: string): Promise<string> {
    grantedResource(session, resource);
    const current = await this.#refresher.freshForResource(session, tenant, resource);
    const token = current.data.resourceTokens?.[resource];
    // Only when a refresh elsewhere won a race in a way that left no token for this resource: ask again shortly.
    if (token === undefined || this.#now() >= token.accessTokenExpiresAt) throw new GatewayError('refresh_in_progress', 'The session is being refreshed; try again.');
    return token.accessToken;
  }

  forResourceNow(session: Session, resource: string): string | undefined {
    if (!session.data.resources?.includes(resource)) return undefined;
    return usableResourceToken(session.data, resource, this.#refreshLeewayMs, this.#now());
  }

  /** POST /auth/session/refresh: refresh now, sharing a refresh that is already running. */
  refreshNow(session: Session, tenant: Tenant): Promise<Session> {
    return this.#refresher.refreshNow(session, tenant);
  }

  async derived(session: Session, tenant: Tenant, kind: string, obtain: (accessToken: string, session: Session) => Promise<{ token: string; expiresAt: number }>): Promise<string> {
    const cached = this.#usableDerived(session, kind);
    if (cached) return cached;
    // One span per exchange actually run (altinn.exchange), not per request waiting for it.
    const updated = await this.#derivations.run(`${kind}:${session.id}`, () => inSpan(`${kind}.exchange`, { tenant: tenant.id }, () =>
      this.#sessions.withLock(session, async () => {
        const current = await reloadLive(this.#sessions, session);
        if (this.#usableDerived(current, kind)) return current;
        if (!accessTokenValid(current.data, this.#now())) throw sessionExpired();
        const { accessToken } = current.data.tokens;
        const base = { tenant: tenant.id, session: current.hash, sub: current.data.user.sub, kind };
        let obtained;
        try {
          obtained = await obtain(accessToken, current);
        } catch (err) {
          this.#audit.event('token.exchange', { ...base, failed: true, reason: ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message });
          throw err;
        }
        const expected = this.#sessions.versionOf(current.data);
        current.data = { ...current.data, derived: { ...current.data.derived, [kind]: { token: obtained.token, expiresAt: obtained.expiresAt, from: fingerprint(accessToken)! } } };
        // Compare-and-set on the refresh token: a refresh elsewhere meanwhile (its lease lapsed under this holder)
        // keeps its tokens, and this request still uses the token it obtained.
        if ((await this.#sessions.update(current, expected)) === 'gone') throw sessionExpired();
        this.#audit.event('token.exchange', {
          ...base,
          accessToken: fingerprint(accessToken),
          [`${kind}Token`]: fingerprint(obtained.token),
          expiresAt: new Date(obtained.expiresAt).toISOString(),
        });
        return current;
      })),
    );
    return updated.data.derived![kind]!.token;
  }

  #usableDerived(session: Session, kind: string): string | undefined {
    const derived = session.data.derived?.[kind];
    if (!derived || derived.from !== fingerprint(session.data.tokens.accessToken)) return undefined;
    const leeway = Math.min(DERIVED_EXPIRY_LEEWAY_MS, (derived.expiresAt - session.data.tokens.accessTokenIssuedAt) / 4);
    return this.#now() < derived.expiresAt - leeway ? derived.token : undefined;
  }

  /** Sessions of this tenant that ID-porten knows under `sid` (front-/back-channel logout). */
  findBySid(tenant: Tenant, sid: string): Promise<Session[]> {
    return this.#sessions.findBySid(tenant.id, sid);
  }

  findBySub(tenant: Tenant, sub: string): Promise<Session[]> {
    return this.#sessions.findBySub(tenant.id, sub);
  }

  /**
   * The user's live sessions in this tenant, oldest first (the user's own list, and an operator's). Sessions
   * past a deadline are left out; the index is checked against each record's own tenant and subject.
   */
  async listSessions(tenant: Tenant, sub: string): Promise<SessionSummary[]> {
    const now = this.#now();
    const live = (await this.#ofUser(tenant, sub)).filter(
      (s) => now < s.data.createdAt + this.#sessions.absoluteLifetimeMs && now < s.lastSeenAt + this.#sessions.idleTimeoutMs,
    );
    return live
      .sort((a, b) => a.data.createdAt - b.data.createdAt)
      .map((session) => ({ handle: this.handleOf(session), session, createdAt: session.data.createdAt, lastSeenAt: session.lastSeenAt, userAgent: session.data.userAgent }));
  }

  /**
   * The opaque handle a session is listed under: HMAC-SHA-256 of its store key under a key derived from the
   * session key ring, truncated. Not the store key, not the log hash (a store dump or the log yields no
   * handle), and not shaped like a cookie value.
   */
  handleOf(session: Session): string {
    return this.#handlesOf(session)[0]!;
  }

  /** The handles a session has under every key of the ring, the current key's first. */
  #handlesOf(session: Session): string[] {
    return this.#handleKeys.macs(session.id, HANDLE_MAC_PURPOSE).map((mac) => mac.slice(0, HANDLE_LENGTH));
  }

  /**
   * Ends the one live session of this user in this tenant that `handle` names (compared in constant time,
   * under every key of the ring); false for any other handle — unknown, malformed, or another user's or
   * tenant's, alike.
   */
  async endByHandle(tenant: Tenant, sub: string, handle: string, channel: LogoutChannel): Promise<Session | undefined> {
    if (!HANDLE.test(handle)) return undefined;
    const given = Buffer.from(handle);
    for (const { session } of await this.listSessions(tenant, sub)) {
      const matches = this.#handlesOf(session).some((candidate) => timingSafeEqual(Buffer.from(candidate), given));
      if (matches) {
        await this.end(session, tenant, channel);
        return session;
      }
    }
    return undefined;
  }

  /** Ends every session of this user in this tenant (those past a deadline too), revoking all their tokens; how many. */
  async endAll(tenant: Tenant, sub: string, channel: LogoutChannel): Promise<number> {
    const sessions = await this.#ofUser(tenant, sub);
    for (const session of sessions) await this.end(session, tenant, channel);
    return sessions.length;
  }

  async #ofUser(tenant: Tenant, sub: string): Promise<Session[]> {
    const found = await this.#sessions.findBySub(tenant.id, sub);
    return found.filter((s) => s.data.tenant === tenant.id && s.data.user.sub === sub);
  }

  /**
   * Ends a session: revokes its tokens at ID-porten (before answering when someone asked for the logout,
   * in the background otherwise), destroys it, and writes the one `logout` audit line. The record is destroyed
   * only while it holds the tokens revoked (compare-and-set): a refresh that rotated them meanwhile is found,
   * and its tokens revoked too, so no fresh refresh token outlives its session. A refresh still under way
   * finds the record gone and revokes what it gets.
   */
  async end(given: Session, tenant: Tenant, channel: LogoutChannel, opts: { reason?: string; revoke?: false } = {}): Promise<void> {
    if (opts.revoke === false) {
      await this.#sessions.destroy(given.id);
      this.#ended(given, tenant, channel, opts.reason, 'not revoked');
      return;
    }
    let session = await this.#asStoredNow(given, tenant);
    for (let attempt = 1; ; attempt += 1) {
      // Rotated between the read and the delete: those tokens are ended too. Refreshes do not follow each other
      // that fast; a third round deletes whatever is there.
      const expected = attempt < 3 ? this.#sessions.versionOf(session.data) : undefined;
      let revoked: RevocationOutcome | 'background';
      let outcome;
      if (REVOKE_BEFORE_ANSWERING.has(channel)) {
        revoked = await this.#revoker.revoke(tenant, session);
        outcome = await this.#sessions.destroy(session.id, expected);
      } else {
        outcome = await this.#sessions.destroy(session.id, expected);
        this.#revoker.inBackground(tenant, session, channel);
        revoked = 'background';
      }
      const rotated = outcome === 'changed' ? await this.#sessions.loadById(session.id, tenant.id) : undefined;
      if (rotated === undefined || rotated.state === 'none') {
        this.#ended(session, tenant, channel, opts.reason, revoked);
        return;
      }
      session = rotated.session;
    }
  }

  /** After a session ended: the one `logout` audit line, and nothing kept for it. */
  #ended(session: Session, tenant: Tenant, channel: LogoutChannel, reason: string | undefined, revoked: RevocationOutcome | 'background' | 'not revoked'): void {
    this.#refresher.forget(session);
    this.#audit.event('logout', {
      tenant: tenant.id,
      session: session.hash,
      sub: session.data.user.sub,
      channel,
      ...(reason === undefined ? {} : { reason }),
      sid: fingerprint(session.data.user.sid),
      accessToken: fingerprint(session.data.tokens.accessToken),
      refreshToken: fingerprint(session.data.tokens.refreshToken),
      revoked,
    });
  }

  /**
   * The session as the store holds it now, so that the tokens revoked and audited are its latest: the caller's copy
   * may predate a refresh on another instance (a kept read, or a read just before that refresh rotated the
   * refresh token). The caller's copy when the session is gone already or the store cannot say.
   */
  async #asStoredNow(session: Session, tenant: Tenant): Promise<Session> {
    try {
      const stored = await this.#sessions.loadById(session.id, tenant.id);
      return stored.state === 'none' ? session : stored.session;
    } catch (err) {
      if (err instanceof StoreUnavailableError) return session;
      throw err;
    }
  }

  /**
   * Ends every session a provider's back-channel logout names: by sid (only those of `sub` too, when given),
   * or by sub. ID-porten delivers it once, so a store failure must not lose it: it becomes a pending logout
   * (PendingLogouts: refused wherever this instance loads the sessions, in the journal when there is one before
   * this returns, retried until the store answers). The StoreUnavailableError is still thrown, for the caller's 503.
   */
  async endProviderSession(tenant: Tenant, who: ProviderSession): Promise<void> {
    try {
      await this.#endProviderSession(tenant, who);
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      await this.#pendingLogouts.add(tenant, who);
      throw err;
    }
  }

  async #endProviderSession(tenant: Tenant, who: ProviderSession): Promise<void> {
    const sessions = who.sid ? await this.findBySid(tenant, who.sid) : who.sub ? await this.findBySub(tenant, who.sub) : [];
    for (const session of sessions) {
      if (who.sub && session.data.user.sub !== who.sub) continue;
      await this.end(session, tenant, 'backchannel');
    }
  }

  /** Resolves once background revocations have run (shutdown); pending logouts stop being retried. */
  async settled(): Promise<void> {
    await this.#pendingLogouts.stop();
    return this.#revoker.settled();
  }

  /** The store key a session cookie value stands for, if it is well-formed. */
  static idForCookie(cookieValue: unknown): string | undefined {
    return SessionManager.idForCookie(cookieValue);
  }
}
