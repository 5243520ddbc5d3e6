/**
 * The authenticated reverse proxy. The routing table is data (routing-table.ts): every distinct route path is
 * registered with the router once, for all tenants, under a constraint that asks the table whether the
 * request's host has a route at that path (when it has none the router goes on, to the tenant's app or the 404
 * problem). The request's tenant and route are looked up when it arrives (two map reads), so tenants may share
 * paths, and `update` swaps the table for new requests while requests under way keep the one they started with.
 * Upstream connections are shared per TLS trust and origin (dispatchers.ts); forward.ts sends each request.
 *
 * A request passes these steps in order; the first that fails answers and nothing reaches the upstream:
 *   1. CSRF (403 csrf_failed, audited as csrf.reject). A first-party top-level GET navigation
 *      (see isFirstPartyNavigation) carries no X-CSRF; it alone goes on, through steps 2-4, to a
 *      session check (deps.hasSession, which touches no token) so that, without a live session, it
 *      can be sent to the login page. It is never forwarded and never reaches step 5: with a live
 *      session it gets the same 403. So a request that fails CSRF never causes a refresh or exchange.
 *   2. Method in route.methods (405 method_not_allowed with Allow).
 *   3. Raw path is a plain descendant of route.path (400 invalid_request), see path-safety.ts.
 *   4. Declared Content-Length within route.bodyLimitBytes (413 payload_too_large).
 *   5. deps.bearerNow, or when it cannot answer at once deps.bearerFor (its GatewayError; login_required /
 *      session_expired on a top-level GET navigation become a 302 to deps.loginUrl instead of 401 problem
 *      JSON carrying it).
 * Steps 1-4 run in onRequest, before the body is touched (Fastify runs content-type parsing after onRequest,
 * and never for GET), so a GET with a Content-Type or a body on a POST-only route gets 405, not 400; step 5 runs
 * in preHandler because it may wait.
 * Then the body streams to the upstream, counted against the limit, and the answer comes back (forward.ts).
 *
 * A route with `dpop` whose session has a DPoP key sends its token as DPoP with a proof (dpop-upstream.ts).
 *
 * Upstream TLS is always verified, nothing is retried (upstream answers pass through as they are) except a DPoP
 * request once for an upstream's nonce, and a failure to reach the upstream is answered with problem JSON that names
 * no internal address.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';
import type { RouteConfig, TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { checkCsrf, isFirstPartyNavigation } from '../http/csrf.js';
import { isTopLevelNavigation } from '../http/negotiation.js';
import { asGatewayError, needsLogin, sendError, type ProblemReply } from '../http/problem.js';
import { declaresTooLarge, limitBody } from './body-limit.js';
import { UpstreamDispatchers } from './dispatchers.js';
import { signerFor, type DpopKey } from '../net/dpop.js';
import type { UpstreamNonces } from '../net/dpop-nonces.js';
import { withDpop } from './dpop-upstream.js';
import { forward, type ForwardHooks, type UpstreamRequest } from './forward.js';
import { browserResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { upstreamPathFor } from './path-safety.js';
import { RoutingTable, type ProxyTarget } from './routing-table.js';
import { trustedPeer } from './trusted-peer.js';

export interface ProxyDeps {
  tenants: TenantConfig[];
  /**
   * Resolves the bearer for this request (undefined: send none) or throws GatewayError (login_required /
   * session_expired / idp_unavailable / store_unavailable …).
   */
  bearerFor(request: FastifyRequest, tenant: TenantConfig, route: RouteConfig): Promise<string | undefined>;
  /**
   * The same bearer when it is at hand without waiting (no refresh, exchange or store read due); undefined
   * when only bearerFor can tell, errors included. Without it every request waits for bearerFor.
   */
  bearerNow?(request: FastifyRequest, tenant: TenantConfig, route: RouteConfig): { value: string | undefined } | undefined;
  /**
   * Whether the request has a live session, without refreshing or exchanging any token (a first-party
   * navigation that failed CSRF learns only this, to be sent to the login page when there is none).
   * May throw GatewayError (store_unavailable …).
   */
  hasSession(request: FastifyRequest): Promise<boolean>;
  /** Where a request that needs a login is sent (the problem's loginUrl, or a navigation's redirect). */
  loginUrl(request: FastifyRequest, tenant: TenantConfig): string;
  /** Session-id hash and sub for audit lines, if a session was resolved for this request (may return {}). */
  auditContext(request: FastifyRequest): { session?: string; sub?: string };
  audit: AuditLog;
  /** X-Forwarded-* and Forwarded from the client are stripped unless the peer is trusted. */
  trustProxy: boolean | string[];
  /**
   * DPoP to upstreams: the request's session key (undefined for a session without one, whose token is a plain
   * bearer token), and the upstreams' nonces shared through the store. Without it every route sends Bearer.
   */
  dpop?: { keyOf(request: FastifyRequest): DpopKey | undefined; nonces: UpstreamNonces } | undefined;
}

/** Every method Fastify routes, so that the ones a route does not allow get 405 rather than 404. */
const ALL_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE'];

/** Generic over the logger so an app built with its own pino instance can call it. */
export async function registerProxyRoutes<Logger extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  deps: ProxyDeps,
): Promise<ProxyRouting> {
  const isTrustedPeer = trustedPeer(deps.trustProxy);
  const dispatchers = new UpstreamDispatchers();
  const build = (tenants: readonly TenantConfig[]) => new RoutingTable(tenants, (tenant, route) => dispatchers.for(tenant, route));
  let table = build(deps.tenants);
  const registeredPaths = new Set(table.paths);

  // The router asks, for a request to a registered route path, whether the request's host has a route there
  // now; when it has none, the router goes on to what else matches (the tenant's app, or the 404 problem).
  const constraint = `bffProxyRoute${strategies++}`;
  app.addConstraintStrategy({
    name: constraint,
    storage() {
      const paths = new Map<string, unknown>();
      return {
        get: (host: string) => {
          for (const [path, handlers] of paths) if (table.lookup(host, path)) return handlers;
          return null;
        },
        set: (path: string, handlers: unknown) => void paths.set(path, handlers),
      } as never;
    },
    deriveConstraint: (req: IncomingMessage) => req.headers.host,
    mustMatchWhenDerived: false,
  });

  app.decorateRequest('proxyState', null);
  await app.register(proxyRoutes, { paths: [...registeredPaths], constraint, table: () => table, deps, isTrustedPeer });
  app.addHook('onClose', () => dispatchers.close());

  const routing: ProxyRouting = {
    prepare(tenants) {
      const next = build(tenants);
      const missing = [...next.paths].filter((path) => !registeredPaths.has(path));
      if (missing.length > 0) throw new Error(`new route paths need a restart: ${missing.join(', ')}`);
      return () => void (table = next);
    },
    update(tenants) {
      routing.prepare(tenants)();
    },
    get dispatchers() {
      return dispatchers.size;
    },
    get paths() {
      return registeredPaths.size;
    },
  };
  return routing;
}

/** The proxy's routing at run time. */
export interface ProxyRouting {
  /**
   * Routes new requests by these tenants' routes from now on (requests under way finish as they began).
   * Throws, changing nothing, when a route path is new: paths are registered with the router at start.
   */
  update(tenants: readonly TenantConfig[]): void;
  /** `update` in two steps: checks these tenants' routes (throwing, changing nothing) and returns the swap. */
  prepare(tenants: readonly TenantConfig[]): () => void;
  /** How many upstream dispatchers (connection pools by TLS trust) are open. */
  readonly dispatchers: number;
  /** How many distinct route paths are registered. */
  readonly paths: number;
}

let strategies = 0;

interface ProxyScope {
  paths: string[];
  constraint: string;
  table: () => RoutingTable;
  deps: ProxyDeps;
  isTrustedPeer: (remoteAddress: string | undefined) => boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Per-request state of a proxied request, shared between its hooks and the handler. */
    proxyState: ProxyState | null;
  }
  interface FastifyContextConfig {
    /** On the proxy's routes: the route path (of any tenant) this router entry stands for. */
    proxyPath?: string;
  }
}

function stateOf(request: { proxyState?: ProxyState | null }): ProxyState {
  if (!request.proxyState) throw new Error('proxy state missing: onRequest did not run');
  return request.proxyState;
}

/** Per-request state shared between the hooks of one request. */
interface ProxyState {
  /** The tenant's route this request was routed to, fixed for the request's life. */
  target: ProxyTarget;
  /** Set once the checks of onRequest passed. */
  upstreamPath?: string;
  /** Set when a first-party navigation skipped the CSRF check only to reach the login redirect. */
  deferredCsrf?: 'missing_header' | 'origin_mismatch';
  /** Set once preHandler resolved it (undefined on routes that send none). */
  bearer?: { value: string | undefined };
  bodyTooLarge?: boolean;
}

const tooLarge = (route: RouteConfig) => new GatewayError('payload_too_large', `The request body exceeds ${route.bodyLimitBytes} bytes.`);

/**
 * Every route path once, for every tenant: the request's tenant (by its host) and that tenant's route at the
 * matched path are looked up when it arrives, and its upstream, methods, limits and token come from there.
 */
const proxyRoutes: FastifyPluginAsync<ProxyScope> = async (scope, { paths, constraint, table, deps, isTrustedPeer }) => {
  /** Audits a CSRF refusal (csrf.reject) and gives the error it is answered with. */
  const csrfRefusal = (request: FastifyRequest, { tenant, route }: ProxyTarget, reason: 'missing_header' | 'origin_mismatch'): GatewayError => {
    deps.audit.event('csrf.reject', { tenant: tenant.id, ...deps.auditContext(request), route: route.path, method: request.method, reason });
    return new GatewayError('csrf_failed', 'The request lacks the X-CSRF header or comes from another origin.');
  };

  /**
   * One proxy line per request, written when the response closes: that happens exactly once,
   * also when the client hangs up before its answer (logged as 499, the client-closed status
   * common in proxy logs), where Fastify's onResponse would not run.
   */
  const auditWhenClosed = (request: FastifyRequest, reply: FastifyReply, { tenant, route }: ProxyTarget): void => {
    // The listener runs outside the request's async context: its trace is handed to the line.
    reply.raw.once('close', () => {
      const status = reply.raw.writableFinished ? reply.statusCode : 499;
      deps.audit.event('proxy', { tenant: tenant.id, ...deps.auditContext(request), route: route.path, method: request.method, status, durationMs: Math.round(reply.elapsedTime) }, request.trace);
    });
  };

  /** Steps 1-4 of the module comment: the error the request is refused with, or undefined when it may go on. */
  const firstRefusal = (request: FastifyRequest, reply: FastifyReply): GatewayError | undefined => {
    const target = table().lookup(request.headers.host, request.routeOptions.config.proxyPath ?? '');
    // Routed by the table of the moment; a reload in between may have taken the route away.
    if (!target) return new GatewayError('route_not_found', 'No route is configured for this path.');
    const { tenant, route } = target;
    request.proxyState = { target };
    auditWhenClosed(request, reply, target);
    const csrf = checkCsrf(request.headers, tenant.publicUrl);
    if (!csrf.ok && !isFirstPartyNavigation(request.method, request.headers)) return csrfRefusal(request, target, csrf.reason);
    if (!route.methods.includes(request.method)) {
      return new GatewayError('method_not_allowed', `${request.method} is not allowed on this route.`, { allow: route.methods });
    }
    const upstreamPath = upstreamPathFor(request.raw.url ?? '', route.path, target.upstream.pathname);
    if (upstreamPath === undefined) return new GatewayError('invalid_request', 'The request path is not allowed.');
    if (declaresTooLarge(request.headers['content-length'], route.bodyLimitBytes)) return tooLarge(route);
    request.proxyState = csrf.ok ? { target, upstreamPath } : { target, upstreamPath, deferredCsrf: csrf.reason };
    return undefined;
  };

  // Bodies are never parsed: every content type (and none) is handed on as a counted stream.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (request, payload, done) => {
    const state = stateOf(request as FastifyRequest);
    done(null, limitBody(payload, state.target.route.bodyLimitBytes, () => {
      state.bodyTooLarge = true;
    }));
  });

  scope.setErrorHandler((error, request, reply) => reject(request, reply, asGatewayError(error, request.log)));

  // A callback hook (no promise per request): a check that fails answers and does not call done.
  scope.addHook('onRequest', (request, reply, done) => {
    const refusal = firstRefusal(request, reply);
    if (refusal) reject(request, reply, refusal);
    else done();
  });

  /** Step 5 when it waits: a login redirect for a deferred CSRF refusal, or a bearer that bearerFor must get. */
  const resolveBearer = async (request: FastifyRequest, reply: FastifyReply, state: ProxyState): Promise<unknown> => {
    const { tenant, route } = state.target;
    if (state.deferredCsrf !== undefined) {
      // Refused either way; only whether to refuse with a login redirect is open. A route that sends no
      // token needs no login, so it gets the 403 outright.
      if (route.token !== 'none') {
        let live: boolean;
        try {
          live = await deps.hasSession(request);
        } catch (err) {
          if (!(err instanceof GatewayError)) throw err;
          return reject(request, reply, err, deps.loginUrl(request, tenant));
        }
        if (!live) return reply.redirect(deps.loginUrl(request, tenant), 302);
      }
      return reject(request, reply, csrfRefusal(request, state.target, state.deferredCsrf));
    }
    try {
      state.bearer = { value: await deps.bearerFor(request, tenant, route) };
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      const loginUrl = deps.loginUrl(request, tenant);
      if (needsLogin(err.code) && isTopLevelNavigation(request)) return reply.redirect(loginUrl, 302);
      return reject(request, reply, err, loginUrl);
    }
    if (state.bodyTooLarge) return reject(request, reply, tooLarge(route));
    return undefined;
  };

  // A callback hook: a request whose bearer is at hand (deps.bearerNow) goes on without a promise; the
  // others wait in resolveBearer. Fastify goes no further once a reply was sent, so done() is called either way.
  scope.addHook('preHandler', (request, reply, done) => {
    const state = stateOf(request);
    const ready = state.deferredCsrf === undefined ? deps.bearerNow?.(request, state.target.tenant, state.target.route) : undefined;
    if (ready === undefined) {
      resolveBearer(request, reply, state).then(() => done(), done);
      return;
    }
    state.bearer = ready;
    if (state.bodyTooLarge) reject(request, reply, tooLarge(state.target.route));
    done();
  });

  const forwardHooks: ForwardHooks = {
    responseHeaders: (headers, request) => browserResponseHeaders(rewriteLocation(headers, stateOf(request).target)),
    onFailure: (failure, cause, request, reply) => {
      // Read now, not when the request was sent: the body may have crossed its limit since.
      const { target: { tenant, route }, bodyTooLarge } = stateOf(request);
      const error = bodyTooLarge
        ? tooLarge(route)
        : failure === 'timeout'
          ? new GatewayError('upstream_timeout', `The upstream did not answer within ${route.timeoutMs} ms.`)
          : failure === 'bad_response'
            ? new GatewayError('upstream_unavailable', 'The upstream gave an answer that cannot be passed on.')
            : failure === 'nonce_refused'
              ? new GatewayError('upstream_nonce_required', 'The upstream asked for a DPoP nonce; send the request again.')
              : new GatewayError('upstream_unavailable', 'The upstream could not be reached.');
      // The operator's side of the problem: why (refused, TLS, timeout), which the browser is not told.
      if (!bodyTooLarge) request.log.warn({ tenant: tenant.id, route: route.path, code: (cause as { code?: string }).code, reason: cause.message }, 'upstream request failed');
      reject(request, reply, error);
    },
  };

  // The destination is the path path-safety.ts computed from the raw URL, then the raw query string byte for byte.
  const handler = (request: FastifyRequest, reply: FastifyReply): void => {
    const state = stateOf(request);
    const { target, upstreamPath } = state;
    const url = request.raw.url ?? '';
    const queryAt = url.indexOf('?');
    const peerAddress = request.raw.socket.remoteAddress;
    const bearer = bearerOf(state);
    const headers = upstreamRequestHeaders(request.headers, {
      bearer,
      upstreamHost: target.upstream.host,
      keepForwardingHeaders: isTrustedPeer(peerAddress),
      peerAddress,
      publicUrl: target.tenant.publicUrl,
      route: target.route,
      trace: request.trace,
    });
    const body = request.body instanceof Readable ? request.body : null;
    const path = queryAt === -1 ? upstreamPath! : upstreamPath + url.slice(queryAt);
    const upstream: UpstreamRequest = { dispatcher: target.dispatcher, origin: target.upstream.origin, path, headers, body, timeoutMs: target.route.timeoutMs };
    const key = target.route.dpop && bearer !== undefined ? deps.dpop?.keyOf(request) : undefined;
    if (key === undefined) return forward(request, reply, upstream, forwardHooks);
    const bound = withDpop(upstream, { signer: signerFor(key), accessToken: bearer!, method: request.method, nonces: deps.dpop!.nonces });
    if (!(bound instanceof Promise)) return forward(request, reply, bound, forwardHooks);
    bound.then(
      (ready) => forward(request, reply, ready, forwardHooks),
      (err: Error) => {
        if (reply.sent || reply.raw.destroyed) return;
        if (state.bodyTooLarge) return reject(request, reply, tooLarge(target.route));
        request.log.warn({ tenant: target.tenant.id, route: target.route.path, reason: err.message }, 'request body could not be read');
        reject(request, reply, new GatewayError('invalid_request', 'The request body could not be read.'));
      },
    );
  };
  for (const path of paths) {
    for (const url of [path, `${path}/*`]) {
      scope.route({ method: ALL_METHODS, url, constraints: { [constraint]: path }, config: { proxyPath: path }, handler });
    }
  }
};

/**
 * A relative Location from the upstream names the upstream's path; the browser gets the gateway's route path
 * in its place (as @fastify/http-proxy did).
 */
function rewriteLocation(headers: IncomingHttpHeaders, { upstream, route }: ProxyTarget): IncomingHttpHeaders {
  const location = headers.location;
  const base = upstream.pathname.endsWith('/') ? upstream.pathname.slice(0, -1) : upstream.pathname;
  if (typeof location === 'string' && !/^https?:\/\//.test(location)) headers.location = location.replace(base, route.path);
  return headers;
}

/** Answers with a problem; closes the connection when the client may still be sending a body nobody will read. */
function reject<R extends ProblemReply>(request: { raw: { complete: boolean } }, reply: R, err: GatewayError, loginUrl?: string): R {
  if (!request.raw.complete) reply.header('connection', 'close');
  sendError(reply, err, loginUrl);
  return reply;
}

function bearerOf(state: Pick<ProxyState, 'bearer'>): string | undefined {
  if (state.bearer === undefined) throw new Error('no bearer: preHandler did not run');
  return state.bearer.value;
}
