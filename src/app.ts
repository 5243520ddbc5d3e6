import { randomUUID } from 'node:crypto';
import cookie from '@fastify/cookie';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import { createAuditLog } from './audit/audit-log.js';
import { GatewayMetrics } from './audit/metrics.js';
import type { GatewayConfig, RouteConfig, TenantConfig } from './config/types.js';
import { GatewayError, sendGatewayError, sendProblem } from './errors.js';
import { createContext, loadedSession, requireSession, type GatewayContext } from './http/context.js';
import { createLogger } from './logging.js';
import { IdportenClient } from './oidc/idporten-client.js';
import { registerProxyRoutes } from './proxy/register.js';
import { trustedPeer } from './proxy/trusted-peer.js';
import { healthRoutes } from './routes/health.js';
import { loginRoutes } from './routes/login.js';
import { logoutRoutes } from './routes/logout.js';
import { sessionRoutes } from './routes/session.js';
import { KeyRing } from './session/key-ring.js';
import { SessionManager } from './session/manager.js';
import { MemorySessionLock, MemorySessionStore } from './session/memory-store.js';
import { StoreUnavailableError, type SessionLock, type SessionStore } from './session/store.js';
import { TokenService } from './tokens/token-service.js';

export interface AppDeps {
  logger?: Logger;
  /** A store and lock to use instead of the configured ones (tests share one between instances). */
  store?: SessionStore;
  lock?: SessionLock;
  now?: () => number;
  /** Sees every route as it is registered (the OpenAPI test compares them with openapi.yaml). */
  onRoute?: (route: RouteOptions) => void;
}

export interface Gateway {
  app: FastifyInstance;
  ctx: GatewayContext;
  metrics: GatewayMetrics;
  /** Loads every tenant's provider metadata; keeps retrying in the background until it succeeds. */
  warmUp(): Promise<void>;
  /** Stops background work and closes the server and the store. */
  close(): Promise<void>;
}

const DISCOVERY_RETRY_MS = 5_000;

/** Wires config → store → sessions → ID-porten clients → tokens → routes. The only place that knows them all. */
export async function buildApp(config: GatewayConfig, deps: AppDeps = {}): Promise<Gateway> {
  const logger = deps.logger ?? createLogger({ level: config.server.logLevel });
  const now = deps.now ?? Date.now;
  const { store, lock } = deps.store && deps.lock ? { store: deps.store, lock: deps.lock } : await createStore(config, logger);
  const metrics = new GatewayMetrics();
  const audit = metrics.counting(createAuditLog(logger));
  const keys = new KeyRing(config.session.keys);
  const sessions = new SessionManager({ store, lock, keys, config: config.session, now });
  const clients = new Map(config.tenants.map((t) => [t.id, new IdportenClient(t, { now })]));
  const tokens = new TokenService({ sessions, clients, audit, refreshLeewayMs: config.session.refreshLeewayMs, now });
  const ctx = createContext({ config, clients, sessions, tokens, keys, audit, now });

  const isTrustedPeer = trustedPeer(config.server.trustProxy);
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's request log would write URLs, and /auth/callback's URL carries the authorization code.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: config.server.trustProxy,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    return503OnClosing: true,
    rewriteUrl: (req) => {
      // Behind a trusted proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host. Routing
      // (tenants are told apart by host) must see that one, so it becomes the Host before any route matches.
      const forwarded = req.headers['x-forwarded-host'];
      if (forwarded !== undefined && isTrustedPeer(req.socket.remoteAddress)) {
        const nearest = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).split(',').at(-1)?.trim();
        if (nearest) req.headers.host = nearest;
      }
      return req.url ?? '/';
    },
    bodyLimit: 64 * 1024,
  }) as unknown as FastifyInstance;
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute);

  await app.register(cookie);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on same-origin form posts, which the CSRF check must refuse.
    if (!reply.hasHeader('referrer-policy')) reply.header('referrer-policy', 'same-origin');
    if (request.routeOptions.url !== '/auth/logout/frontchannel' && !reply.hasHeader('x-frame-options') && request.url.startsWith('/auth/')) {
      reply.header('x-frame-options', 'DENY');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(route, request.method, reply.statusCode, reply.elapsedTime / 1000);
    // Path only: query strings may carry codes and state.
    request.log.debug({ method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof GatewayError) {
      if (err.status >= 500) request.log.warn({ code: err.code, cause: (err.cause as Error | undefined)?.message }, err.message);
      return sendGatewayError(reply, err);
    }
    if (err instanceof StoreUnavailableError) {
      request.log.warn({ cause: (err.cause as Error | undefined)?.message }, 'session store unavailable');
      return sendProblem(reply, 'store_unavailable', 'The session store could not be reached.');
    }
    if (err.validation) return sendProblem(reply, 'invalid_request', 'The request parameters are not valid.');
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendProblem(reply, 'payload_too_large', 'The request body is too large.');
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return sendProblem(reply, 'invalid_request', 'The request could not be understood.');
    request.log.error({ err: { type: err.name, message: err.message, code: err.code } }, 'unexpected error');
    return sendProblem(reply, 'internal_error', 'Something went wrong in the gateway.');
  });
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, 'route_not_found', 'No route is configured for this path.'));

  await app.register(healthRoutes, { ctx });
  await app.register(loginRoutes, { ctx });
  await app.register(sessionRoutes, { ctx });
  await app.register(logoutRoutes, { ctx });
  app.get('/metrics', async (_request, reply) => {
    if (config.server.metricsPort !== undefined) return sendProblem(reply, 'route_not_found', 'Metrics are served on a separate port.');
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  await registerProxyRoutes(app, {
    tenants: config.tenants,
    trustProxy: config.server.trustProxy,
    audit,
    auditContext: (request) => {
      const session = loadedSession(request);
      return session ? { session: session.hash, sub: session.data.user.sub } : {};
    },
    bearerFor: async (request, tenant: TenantConfig, route: RouteConfig) => {
      const session = await requireSession(ctx, request, tenant, request.url);
      const { token } = route.token === 'altinn' ? await ctx.tokens.altinnToken(session, tenant) : await ctx.tokens.idportenAccessToken(session, tenant);
      return token;
    },
  });

  let retryTimer: NodeJS.Timeout | undefined;
  let closed = false;
  async function warmUp(): Promise<void> {
    const pending = [...clients.entries()].filter(([, c]) => !c.ready);
    await Promise.all(
      pending.map(async ([tenantId, c]) => {
        try {
          await c.configuration();
          logger.info({ tenant: tenantId, issuer: c.issuer }, 'provider metadata loaded');
        } catch (err) {
          logger.warn({ tenant: tenantId, issuer: c.issuer, reason: (err as Error).message }, 'provider metadata not loaded yet; retrying');
        }
      }),
    );
    if (!closed && [...clients.values()].some((c) => !c.ready)) {
      retryTimer = setTimeout(() => void warmUp(), DISCOVERY_RETRY_MS);
      retryTimer.unref();
    }
  }

  async function close(): Promise<void> {
    closed = true;
    clearTimeout(retryTimer);
    await app.close();
    await store.close();
  }

  return { app, ctx, metrics, warmUp, close };
}

async function createStore(config: GatewayConfig, logger: Logger): Promise<{ store: SessionStore; lock: SessionLock }> {
  const storeConfig = config.session.store;
  if (storeConfig.type === 'memory') return { store: new MemorySessionStore(storeConfig.maxSessions), lock: new MemorySessionLock() };
  const { createRedisStore } = await import('./session/redis-store.js');
  return createRedisStore(storeConfig, logger);
}
