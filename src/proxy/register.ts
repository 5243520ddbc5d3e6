/**
 * The authenticated reverse proxy: one @fastify/http-proxy registration per (tenant, route), told
 * apart by the Host header through Fastify's `host` route constraint, so tenants may share paths.
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
 *   5. deps.bearerFor (its GatewayError; login_required / session_expired on a top-level GET
 *      navigation become a 302 to deps.loginUrl instead of 401 problem JSON carrying it).
 * Steps 1-4 run in onRequest, before the body is touched (Fastify runs content-type parsing after onRequest,
 * and never for GET), so a GET with a Content-Type or a body on a POST-only route gets 405, not 400; step 5 runs
 * in preHandler because it is async.
 * Then the body streams to the upstream, counted against the limit, and the response streams back.
 *
 * @fastify/reply-from's defaults that a token gateway cannot keep are overridden here: upstream TLS
 * is verified, GET is not retried on 503 (upstream answers pass through as they are), and its error
 * replies (which name internal addresses) are replaced by problem JSON.
 */
import { AsyncResource } from 'node:async_hooks';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';
import type { RouteConfig, TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { checkCsrf, isFirstPartyNavigation } from '../http/csrf.js';
import { isTopLevelNavigation } from '../http/negotiation.js';
import { asGatewayError, needsLogin, sendError, type ProblemReply } from '../http/problem.js';
import { withDefaultCas } from '../net/fetch.js';
import { declaresTooLarge, limitBody } from './body-limit.js';
import { browserResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { upstreamPathFor } from './path-safety.js';
import { trustedPeer } from './trusted-peer.js';

export interface ProxyDeps {
  tenants: TenantConfig[];
  /**
   * Resolves the bearer for this request (undefined: send none) or throws GatewayError (login_required /
   * session_expired / idp_unavailable / store_unavailable …).
   */
  bearerFor(request: FastifyRequest, tenant: TenantConfig, route: RouteConfig): Promise<string | undefined>;
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
}

/** Every method Fastify routes, so that the ones a route does not allow get 405 rather than 404. */
const ALL_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE'];

/** Generic over the logger so an app built with its own pino instance can call it. */
export async function registerProxyRoutes<Logger extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  deps: ProxyDeps,
): Promise<void> {
  const isTrustedPeer = trustedPeer(deps.trustProxy);
  app.decorateRequest('proxyState', null);
  for (const tenant of deps.tenants) {
    for (const route of tenant.routes) {
      await app.register(proxyRoute, { prefix: route.path, tenant, route, deps, isTrustedPeer });
    }
  }
}

interface RouteContext {
  tenant: TenantConfig;
  route: RouteConfig;
  deps: ProxyDeps;
  isTrustedPeer: (remoteAddress: string | undefined) => boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Per-request state of a proxied request, shared between its hooks and reply-from's callbacks. */
    proxyState: ProxyState | null;
  }
}

function stateOf(request: { proxyState?: ProxyState | null }): ProxyState {
  if (!request.proxyState) throw new Error('proxy state missing: onRequest did not run');
  return request.proxyState;
}

/** Per-request state shared between the hooks of one route. */
interface ProxyState {
  upstreamPath: string;
  /** Set when a first-party navigation skipped the CSRF check only to reach the login redirect. */
  deferredCsrf?: 'missing_header' | 'origin_mismatch';
  /** Set once preHandler resolved it (undefined on routes that send none). */
  bearer?: { value: string | undefined };
  bodyTooLarge?: boolean;
}

const proxyRoute: FastifyPluginAsync<RouteContext> = async (scope, { tenant, route, deps, isTrustedPeer }) => {
  const upstream = new URL(route.upstream);
  const rejectCsrf = (request: FastifyRequest, reply: FastifyReply, reason: 'missing_header' | 'origin_mismatch'): FastifyReply => {
    deps.audit.event('csrf.reject', { tenant: tenant.id, ...deps.auditContext(request), route: route.path, method: request.method, reason });
    return reject(request, reply, new GatewayError('csrf_failed', 'The request lacks the X-CSRF header or comes from another origin.'));
  };

  const tooLarge = () => new GatewayError('payload_too_large', `The request body exceeds ${route.bodyLimitBytes} bytes.`);

  /**
   * One proxy line per request, written when the response closes: that happens exactly once,
   * also when the client hangs up before its answer (logged as 499, the client-closed status
   * common in proxy logs), where Fastify's onResponse would not run.
   */
  const auditWhenClosed = (request: FastifyRequest, reply: FastifyReply): void => {
    reply.raw.once('close', AsyncResource.bind(() => {
      const status = reply.raw.writableFinished ? reply.statusCode : 499;
      deps.audit.event('proxy', { tenant: tenant.id, ...deps.auditContext(request), route: route.path, method: request.method, status, durationMs: Math.round(reply.elapsedTime) });
    }));
  };

  // Bodies are never parsed: every content type (and none) is handed on as a counted stream.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (request, payload, done) => {
    done(null, limitBody(payload, route.bodyLimitBytes, () => {
      stateOf(request as FastifyRequest).bodyTooLarge = true;
    }));
  });

  scope.setErrorHandler((error, request, reply) => reject(request, reply, asGatewayError(error, request.log)));

  scope.addHook('onRequest', async (request, reply) => {
    auditWhenClosed(request, reply);
    const csrf = checkCsrf(request.headers, tenant.publicUrl);
    if (!csrf.ok && !isFirstPartyNavigation(request.method, request.headers)) return rejectCsrf(request, reply, csrf.reason);

    if (!route.methods.includes(request.method)) {
      return reject(request, reply, new GatewayError('method_not_allowed', `${request.method} is not allowed on this route.`, { allow: route.methods }));
    }
    const upstreamPath = upstreamPathFor(request.raw.url ?? '', route.path, upstream.pathname);
    if (upstreamPath === undefined) {
      return reject(request, reply, new GatewayError('invalid_request', 'The request path is not allowed.'));
    }
    if (declaresTooLarge(request.headers['content-length'], route.bodyLimitBytes)) return reject(request, reply, tooLarge());
    request.proxyState = csrf.ok ? { upstreamPath } : { upstreamPath, deferredCsrf: csrf.reason };
    return undefined;
  });

  scope.addHook('preHandler', async (request, reply) => {
    const state = stateOf(request);
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
      return rejectCsrf(request, reply, state.deferredCsrf);
    }
    try {
      state.bearer = { value: await deps.bearerFor(request, tenant, route) };
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      const loginUrl = deps.loginUrl(request, tenant);
      if (needsLogin(err.code) && isTopLevelNavigation(request)) return reply.redirect(loginUrl, 302);
      return reject(request, reply, err, loginUrl);
    }
    if (state.bodyTooLarge) return reject(request, reply, tooLarge());
    return undefined;
  });

  const upstreamTls = {
    rejectUnauthorized: true,
    // `ca` replaces Node's trust store, so an extra CA is added to the public roots, not swapped in.
    ...(tenant.upstreamCaPem === undefined ? {} : { ca: withDefaultCas(tenant.upstreamCaPem) }),
  };

  const proxyOptions: FastifyHttpProxyOptions = {
    upstream: upstream.origin,
    rewritePrefix: upstream.pathname,
    constraints: { host: new URL(tenant.publicUrl).host },
    httpMethods: ALL_METHODS,
    proxyPayloads: false,
    // reply-from passes undici `tls: { rejectUnauthorized: false }` by default; undici's connector
    // lets `connect` override it, so verification is switched on there.
    undici: { connect: { ...upstreamTls, timeout: route.timeoutMs } },
    retryMethods: [],
    disableRequestLogging: true,
    // The destination is the one path-safety.ts computed from the raw URL. The query is left off,
    // so reply-from forwards the raw query string byte for byte.
    handler: (request, reply, _dest, options) => reply.from(stateOf(request).upstreamPath, options),
    replyOptions: {
      timeout: route.timeoutMs,
      rewriteRequestHeaders: (request, _headers) => upstreamRequestHeaders(request.headers as IncomingHttpHeaders, {
        bearer: bearerOf(stateOf(request)),
        upstreamHost: upstream.host,
        keepForwardingHeaders: isTrustedPeer(request.raw.socket.remoteAddress),
        peerAddress: request.raw.socket.remoteAddress,
        publicUrl: tenant.publicUrl,
        route,
        trace: request.trace,
      }),
      rewriteHeaders: (headers) => browserResponseHeaders(headers),
      onError: (reply, { error }) => {
        const state = stateOf(reply.request);
        const timedOut = (error as { statusCode?: number }).statusCode === 504;
        const failure = state.bodyTooLarge
          ? tooLarge()
          : timedOut
            ? new GatewayError('upstream_timeout', `The upstream did not answer within ${route.timeoutMs} ms.`)
            : new GatewayError('upstream_unavailable', 'The upstream could not be reached.');
        reject(reply.request, reply, failure);
      },
    },
  };
  await scope.register(httpProxy, proxyOptions);
};

/** Answers with a problem; closes the connection when the client may still be sending a body nobody will read. */
function reject<R extends ProblemReply>(request: { raw: { complete: boolean } }, reply: R, err: GatewayError, loginUrl?: string): R {
  if (!request.raw.complete) reply.header('connection', 'close');
  sendError(reply, err, loginUrl);
  return reply;
}

function bearerOf(state: ProxyState): string | undefined {
  if (state.bearer === undefined) throw new Error('no bearer: preHandler did not run');
  return state.bearer.value;
}
