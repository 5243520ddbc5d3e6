import type { FastifyRequest } from 'fastify';
import type { RouteConfig } from '../config/types.js';
import { GatewayError, loginRequired, sessionExpired, stepUpRequired } from '../errors.js';
import { acrSatisfies } from '../idporten/acr.js';
import type { Tenant } from '../tenant/tenant.js';
import { loginUrl } from '../tenant/urls.js';
import { refererReturnTo } from './return-to.js';
import type { CurrentSession, TokenLifecycle } from '../tokens/lifecycle.js';
import type { Session } from '../tokens/session-data.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The gateway's view of this request: its tenant and (looked up at most once) its session. */
    bff: BffRequest;
  }
}

/** What a host application's handler may know about the user. */
export interface BffUser {
  sub: string;
  acr: string;
  amr: string[];
  locale?: string;
  pid?: string;
}

/**
 * Per-request state, made by the gateway's onRequest hook. The session is looked up on first use and
 * remembered, so the routes, the proxy and the audit line all see the same one.
 */
export class BffRequest {
  readonly tenant: Tenant | undefined;
  readonly #lifecycle: TokenLifecycle;
  readonly #cookieValue: unknown;
  readonly #referer: string | undefined;
  #current: Promise<CurrentSession> | undefined;
  #loaded: Session | undefined;

  /** `referer`: the page a step-up login returns to when it is on the tenant's origin. */
  constructor(lifecycle: TokenLifecycle, tenant: Tenant | undefined, cookies: Record<string, string | undefined> | undefined, referer?: string) {
    this.#lifecycle = lifecycle;
    this.tenant = tenant;
    this.#cookieValue = tenant ? cookies?.[tenant.cookies.sessionName] : undefined;
    this.#referer = referer;
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
   * The logged-in user as the host application may see it (claims, never a token), or undefined.
   * `pid` only when the tenant opts in with `exposePid`.
   */
  async user(): Promise<BffUser | undefined> {
    const session = await this.session();
    if (!session) return undefined;
    const { sub, pid, acr, amr, locale } = session.data.user;
    return { sub, acr, amr, ...(locale ? { locale } : {}), ...(pid && this.tenant?.config.exposePid ? { pid } : {}) };
  }

  /**
   * A fresh bearer for one of this tenant's API routes (by its `path`), for a host handler that calls the
   * upstream itself. Throws route_not_found for a path that is not a configured route.
   */
  async bearerForRoute(path: string): Promise<string | undefined> {
    const tenant = this.requireTenant();
    const route = tenant.config.routes.find((r) => r.path === path);
    if (!route) throw new GatewayError('route_not_found', `No API route ${path} is configured for this tenant.`);
    return this.bearerFor(tenant.id, route);
  }

  /**
   * The bearer a route of this tenant sends upstream (refreshed or exchanged as needed; undefined for
   * `token: none`). Throws login_required / session_expired when the route needs a session and there is none,
   * step_up_required when the session's assurance level is below the route's `acr`.
   */
  async bearerFor(tenantId: string, route: RouteConfig): Promise<string | undefined> {
    const tenant = this.requireTenant();
    if (tenant.id !== tenantId) throw new GatewayError('unknown_tenant', 'This host is not served by the gateway.');
    const session = this.#needsSession(route) ? await this.requireSession() : undefined;
    if (session && belowRouteLevel(session, route)) {
      // A fresh login at the route's level (prompt=login: the provider's session at a lower level must not do),
      // back to the page the call came from.
      throw stepUpRequired(route.acr!, loginUrl(tenant.config, refererReturnTo(this.#referer, tenant.config.publicUrl), { acr: route.acr!, prompt: 'login' }));
    }
    return this.#lifecycle.bearer(route.token, tenant, session, route.resource);
  }

  /** A route asking for an assurance level needs a session to have one, whatever token it sends. */
  #needsSession(route: RouteConfig): boolean {
    return route.acr !== undefined || this.#lifecycle.needsSession(route.token);
  }

  /**
   * What bearerFor gives, when it is at hand without waiting: the session is live in the store's kept copy
   * (or was found already), no touch is due, and nothing has to be refreshed or exchanged. Undefined otherwise,
   * errors included: then bearerFor answers. A session found here is this request's session from now on.
   */
  bearerNow(tenantId: string, route: RouteConfig): { value: string | undefined } | undefined {
    const tenant = this.tenant;
    if (!tenant || tenant.id !== tenantId) return undefined;
    let session: Session | undefined;
    if (this.#needsSession(route)) {
      session = this.#current ? this.#loaded : this.#lifecycle.liveNow(tenant, this.#cookieValue);
      if (!session) return undefined;
      if (!this.#current) {
        this.#loaded = session;
        this.#current = Promise.resolve({ state: 'live', session });
      }
    }
    // A session below the route's level: bearerFor answers with step_up_required.
    if (session && belowRouteLevel(session, route)) return undefined;
    return this.#lifecycle.bearerNow(route.token, tenant, session, route.resource);
  }

  /** The session a lookup already found (for lines written later, such as the proxy's audit line). */
  get loaded(): Session | undefined {
    return this.#loaded;
  }
}

/** True when the route asks for an assurance level the session's login did not reach. */
function belowRouteLevel(session: Session, route: RouteConfig): boolean {
  return route.acr !== undefined && !acrSatisfies(session.data.user.acr, route.acr);
}

/** The session hash and subject of a request, for audit lines. */
export function auditIdentity(request: FastifyRequest): { session?: string; sub?: string } {
  const session = request.bff?.loaded;
  return session ? { session: session.hash, sub: session.data.user.sub } : {};
}
