import type { FastifyRequest } from 'fastify';
import type { RouteConfig } from '../config/types.js';
import { GatewayError, loginRequired, sessionExpired } from '../errors.js';
import type { Tenant } from '../tenant/tenant.js';
import type { CurrentSession, TokenLifecycle } from '../tokens/lifecycle.js';
import type { Session } from '../tokens/session-data.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The gateway's view of this request: its tenant and (looked up at most once) its session. */
    bff: BffRequest;
  }
}

/**
 * Per-request state, made by the gateway's onRequest hook. The session is looked up on first use and
 * remembered, so the routes, the proxy and the audit line all see the same one.
 */
export class BffRequest {
  readonly tenant: Tenant | undefined;
  readonly #lifecycle: TokenLifecycle;
  readonly #cookieValue: unknown;
  #current: Promise<CurrentSession> | undefined;
  #loaded: Session | undefined;

  constructor(lifecycle: TokenLifecycle, tenant: Tenant | undefined, cookies: Record<string, string | undefined> | undefined) {
    this.#lifecycle = lifecycle;
    this.tenant = tenant;
    this.#cookieValue = tenant ? cookies?.[tenant.cookies.sessionName] : undefined;
  }

  /** The tenant this request's host names; unknown_tenant (421) otherwise. */
  requireTenant(): Tenant {
    if (!this.tenant) throw new GatewayError('unknown_tenant', 'This host is not served by the gateway.');
    return this.tenant;
  }

  current(): Promise<CurrentSession> {
    this.#current ??= this.#lifecycle.current(this.requireTenant(), this.#cookieValue).then((current) => {
      if (current.state === 'live') this.#loaded = current.session;
      return current;
    });
    return this.#current;
  }

  /** The live session, or undefined. */
  async session(): Promise<Session | undefined> {
    const current = await this.current();
    return current.state === 'live' ? current.session : undefined;
  }

  /** The live session, or 401: session_expired when this request found it past a deadline, login_required otherwise. */
  async requireSession(): Promise<Session> {
    const current = await this.current();
    if (current.state === 'live') return current.session;
    throw current.state === 'ended' ? sessionExpired() : loginRequired();
  }

  /**
   * The bearer a route of this tenant sends upstream (refreshed or exchanged as needed; undefined for
   * `token: none`). Throws login_required / session_expired when the route needs a session and there is none.
   */
  async bearerFor(tenantId: string, route: RouteConfig): Promise<string | undefined> {
    const tenant = this.requireTenant();
    if (tenant.id !== tenantId) throw new GatewayError('unknown_tenant', 'This host is not served by the gateway.');
    const session = this.#lifecycle.needsSession(route.token) ? await this.requireSession() : undefined;
    return this.#lifecycle.bearer(route.token, tenant, session);
  }

  /** The session a lookup already found (for lines written later, such as the proxy's audit line). */
  get loaded(): Session | undefined {
    return this.#loaded;
  }
}

/** The session hash and subject of a request, for audit lines. */
export function auditIdentity(request: FastifyRequest): { session?: string; sub?: string } {
  const session = request.bff?.loaded;
  return session ? { session: session.hash, sub: session.data.user.sub } : {};
}
