import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from './config/types.js';
import { GatewayError, RETRY_AFTER_SECONDS } from './errors.js';
import type { GatewayCore } from './http/core.js';
import { answerClientError } from './http/client-error.js';
import { asGatewayError, sendError } from './http/problem.js';
import { RequestLogger } from './http/request-logger.js';
import { createLogger } from './logging.js';
import { idportenBff, validated, type IdportenBffOptions, type ReloadResult } from './plugin.js';
import { trustedPeer } from './proxy/trusted-peer.js';
import type { SessionLock, SessionStore } from './session/store.js';

export interface AppDeps {
  logger?: Logger;
  /** A store and lock to use instead of the configured ones; close() closes them. */
  store?: SessionStore;
  lock?: SessionLock;
  now?: () => number;
  /** Sees every route as it is registered (the OpenAPI test compares them with openapi.yaml). */
  onRoute?: (route: RouteOptions) => void;
}

export interface Gateway {
  app: FastifyInstance;
  /** The gateway's parts (config, tenants, token lifecycle, metrics), for the process entry and tests. */
  core: GatewayCore;
  /** Loads every tenant's provider metadata; keeps retrying in the background until it succeeds. */
  warmUp(): Promise<void>;
  /**
   * Applies a new configuration's tenants, routes and apps without dropping sessions (see the plugin's bffReload);
   * throws ReloadRefused, logged, when it is invalid or needs a restart.
   */
  reload(config: IdportenBffOptions['config']): Promise<ReloadResult>;
  /** Stops background work and closes the server and the store. */
  close(): Promise<void>;
}

/** The standalone server: Fastify with the options a gateway at the edge needs, plus the plugin. */
export async function buildApp(config: GatewayConfig, deps: AppDeps = {}): Promise<Gateway> {
  const logger = deps.logger ?? createLogger({ level: config.server.logLevel });
  const isTrustedPeer = trustedPeer(config.server.trustProxy);
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's request log would write URLs, and /auth/callback's URL carries the authorization code.
    logController: new LogController({ disableRequestLogging: true }),
    // A request's pino child is made when the request first logs a line, not for every request.
    childLoggerFactory: RequestLogger.factory,
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
    // A URL the router cannot decode (a lone '%'): the gateway's problem JSON, not Fastify's body echoing the path.
    frameworkErrors: (err, request, reply) => void sendError(reply as never, asGatewayError(err, request.log)),
    // What Node's parser refuses (no route runs): problem JSON, and never anything behind an answer already sent.
    clientErrorHandler: answerClientError,
    bodyLimit: 64 * 1024,
    // Slow clients (slowloris) are bounded: the whole request within server.requestTimeout, its headers within
    // server.headersTimeout. Node checks both every connectionsCheckingInterval (30 s by default), so that is
    // kept well below the headers timeout for the limit to hold as written.
    requestTimeout: config.server.requestTimeoutMs,
    http: {
      headersTimeout: config.server.headersTimeoutMs,
      requestTimeout: config.server.requestTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingInterval(config.server.headersTimeoutMs),
    },
  }) as unknown as FastifyInstance;
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute);
  // While the server closes, Fastify answers every new request 503 itself (return503OnClosing) and closes its
  // connection; that answer says when to try again too. Fastify marks itself closing and runs the preClose hooks
  // without giving way to I/O in between, so no request sees the one without the other; the listener costs
  // requests nothing before then.
  app.addHook('preClose', (done) => {
    app.server.prependListener('request', (_req, res) => res.setHeader('retry-after', String(RETRY_AFTER_SECONDS.closing)));
    done();
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, new GatewayError('route_not_found', 'No route is configured for this path.')));
  // Outside the gateway's scope too (an unmatched path whose body Fastify cannot parse, say), every error is the
  // gateway's problem JSON, never Fastify's own error body.
  app.setErrorHandler((err, request, reply) => sendError(reply, asGatewayError(err, request.log)));

  await app.register(idportenBff, {
    config: validated(config),
    ...(deps.store && deps.lock ? { store: deps.store, lock: deps.lock } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  const close = async () => {
    await app.close();
    // A store handed in is this server's to close too (the plugin leaves stores it did not open alone).
    await deps.store?.close();
  };
  return { app, core: app.gateway, warmUp: () => app.bffWarmUp(), reload: (next) => app.bffReload(next), close };
}

/** How often Node looks for connections past their headers or request timeout: a quarter of it, 100 ms to 1 s. */
function connectionsCheckingInterval(headersTimeoutMs: number): number {
  return headersTimeoutMs > 0 ? Math.min(1000, Math.max(100, Math.floor(headersTimeoutMs / 4))) : 1000;
}
