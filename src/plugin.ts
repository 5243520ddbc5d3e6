/**
 * The gateway as a Fastify plugin (library mode): `await app.register(idportenBff, { config })` adds
 * `/auth/*`, the API routes, health endpoints and each tenant's app to an existing server, and decorates every request with
 * `request.bff` (its tenant, its user, a bearer for a named route). The standalone server (`app.ts`) is
 * this plugin plus its own Fastify options and `listen`.
 *
 * Wiring only: config → store → sessions → tenants → token lifecycle → HTTP routes and proxy.
 */
import { isDeepStrictEqual } from 'node:util';
import cookie from '@fastify/cookie';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createAuditLog } from './audit/audit-log.js';
import { AppliedIntegrationsWatch } from './digdir/applied-watch.js';
import { tenantIntegrations } from './digdir/tenant-integrations.js';
import { GatewayMetrics } from './audit/metrics.js';
import { loadConfigFile, normaliseConfig } from './config/load.js';
import { hasClient } from './config/normalise.js';
import type { GatewayConfig } from './config/types.js';
import { BffRequest, auditIdentity } from './http/bff-request.js';
import type { GatewayCore } from './http/core.js';
import { registerAppRoutes } from './http/app/index.js';
import { hideAuthUrlSecrets } from './http/auth-url-logging.js';
import { asGatewayError, sendError } from './http/problem.js';
import { registerLoginRateLimit } from './http/rate-limit.js';
import { healthRoutes } from './http/routes/health.js';
import { loginRoutes } from './http/routes/login.js';
import { logoutRoutes } from './http/routes/logout.js';
import { metricsRoute } from './http/routes/metrics.js';
import { sessionRoutes } from './http/routes/session.js';
import { userSessionRoutes } from './http/routes/sessions.js';
import { securityHeaders } from './http/security-headers.js';
import { traceRequests } from './http/trace.js';
import { registerProxyRoutes, type ProxyRouting } from './proxy/register.js';
import { UpstreamNonces } from './net/dpop-nonces.js';
import { clientRoute } from './http/routes/client.js';
import { KeyRing } from './session/key-ring.js';
import { SessionManager } from './session/manager.js';
import { MemorySessionLock, MemorySessionStore } from './session/memory-store.js';
import type { SessionLock, SessionStore } from './session/store.js';
import { Discovery } from './tenant/discovery.js';
import { RuntimeTenants, type RuntimeTenant } from './tenant/runtime.js';
import type { TenantStore } from './tenant/tenant-store.js';
import { Tenants } from './tenant/tenant.js';
import { loginUrl } from './tenant/urls.js';
import { TokenLifecycle } from './tokens/lifecycle.js';
import { LogoutJournal } from './tokens/logout-journal.js';
import { MAX_PENDING_LOGOUTS } from './tokens/pending-logouts.js';
import { sessionVersion, type SessionData } from './tokens/session-data.js';

// The types a host's handlers meet on `request.bff`; exporting them also brings their `declare module 'fastify'`
// (request.bff) into a consumer's type-check.
export type { BffRequest, BffUser } from './http/bff-request.js';

export interface IdportenBffOptions {
  /** The configuration: a file path, or an object in the file's shape (`${ENV}` expanded from `env`). */
  config: string | Record<string, unknown> | ValidatedConfig;
  env?: NodeJS.ProcessEnv;
  /** A store and lock to use instead of the configured ones (instances in one process can share them). */
  store?: SessionStore;
  lock?: SessionLock;
  now?: () => number;
}

/** A configuration that has already passed validation (see `validated`). */
export interface ValidatedConfig {
  readonly validated: GatewayConfig;
}

/** Marks a configuration loaded with `loadConfigFile` / `normaliseConfig` so the plugin takes it as it is. */
export function validated(config: GatewayConfig): ValidatedConfig {
  return { validated: config };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Loads every tenant's provider metadata; keeps retrying in the background until it succeeds. */
    bffWarmUp(): Promise<void>;
    /**
     * Serves a new configuration's tenants, routes and apps from the next request on, keeping the session store,
     * the key ring and every live session of the tenants it keeps. Throws ReloadRefused (and logs it) when the
     * configuration is invalid or changes what only a restart can; then the running one keeps serving.
     */
    bffReload(config: IdportenBffOptions['config']): Promise<ReloadResult>;
  }
}

/** What a reload changed, by tenant id. */
export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
}

/** A configuration a reload refused; the running configuration keeps serving. */
export class ReloadRefused extends Error {
  override readonly name = 'ReloadRefused';
}

async function idportenBffPlugin(app: FastifyInstance, opts: IdportenBffOptions): Promise<void> {
  /**
   * The configuration as given (file or object, and each reload's). What is served, `config`, is it with the
   * run-time tenants, and each tenant that awaits its client given the one `integrations apply` made.
   */
  let given = resolveConfig(opts);
  const now = opts.now ?? Date.now;
  const log = app.log as FastifyBaseLogger;
  // Where apply and rotate-keys keep a tenant's client is read at start, on reload and every few seconds, so a
  // rotated key is taken up without a reload; a tenant with no client yet is left out and named.
  const applied = new AppliedIntegrationsWatch({ apply: async (resolved) => void swap(resolved, { dryRun: false }), log });
  const metrics = new GatewayMetrics();
  // First: a journal directory that cannot be used stops the start with a ConfigError, before anything is opened.
  const { journalDir, absoluteLifetimeMs } = given.session;
  const journal = journalDir === undefined ? undefined : await LogoutJournal.open(journalDir, { now, maxAgeMs: absoluteLifetimeMs, maxEntries: MAX_PENDING_LOGOUTS, log });
  const { store: untimedStore, lock } = opts.store && opts.lock ? { store: opts.store, lock: opts.lock } : await createStore(given, log);
  const store = metrics.timedStore(untimedStore);
  const audit = metrics.counting(createAuditLog(log));
  const keys = new KeyRing(given.session.keys);
  // Tenants added through the admin API: read before the routes are registered, so their route paths are.
  const runtimeSource = await openTenantStore(given, keys, log);
  const runtime = runtimeSource && new RuntimeTenants({
    tenantStore: runtimeSource.store,
    env: opts.env ?? process.env,
    baseDir: given.tenantsDir?.baseDir ?? process.cwd(),
    log,
    configured: () => configuredTenants(given),
    // Applied integrations of run-time tenants are kept by tenant id in Redis (a tenant file holds its own).
    awaitingClient: () => given.digdir !== undefined && given.session.store.type === 'redis',
    apply: async (list, { dryRun }) => void swap(await served(given, list), { dryRun }),
  });
  /** The tenants of `base` that the admin API does not manage (in tenantsDir mode, those not from tenantsDir), with or without their client. */
  const configuredTenants = (base: GatewayConfig): RuntimeTenant[] => {
    const managed = new Set(runtimeSource?.inTenantsDir ? base.tenantsDir?.ids : []);
    return [...base.tenants, ...(base.awaitingClient ?? [])].filter((tenant) => !managed.has(tenant.id));
  };
  /** `base` with the run-time tenants; one whose id or host name a configured tenant has is left out (logged). */
  const withRuntimeTenants = (base: GatewayConfig, list: readonly RuntimeTenant[]): GatewayConfig => {
    if (!runtime) return base;
    const configured = configuredTenants(base);
    const ids = new Set(configured.map((tenant) => tenant.id));
    const hostnames = new Set(configured.map((tenant) => new URL(tenant.publicUrl).hostname));
    const added = list.filter((tenant) => {
      const clash = ids.has(tenant.id) || hostnames.has(new URL(tenant.publicUrl).hostname);
      if (clash) log.error({ tenant: tenant.id }, 'run-time tenant not served: the configuration file has a tenant of this id or host name');
      return !clash;
    });
    const all = [...configured, ...added];
    return { ...base, tenants: all.filter(hasClient), awaitingClient: all.filter((tenant) => !hasClient(tenant)) };
  };
  /** What `base` and the run-time tenants `list` serve: each tenant that awaits its client given the applied one. */
  const served = (base: GatewayConfig, list: readonly RuntimeTenant[]): Promise<GatewayConfig> => applied.resolve(withRuntimeTenants(base, list));
  await runtime?.load();
  let config = await served(given, runtime?.tenants ?? []);
  const tenants = new Tenants(config, { now, keys });
  // A tenant with its own sessionKeys seals and opens its sessions with them; the others use the session key ring.
  const sessions = new SessionManager<SessionData>({ store, lock, keys, keysFor: (tenant) => tenants.byId(tenant)?.keys, config: config.session, now, versionOf: sessionVersion });
  // Resource servers' DPoP nonces, shared through the store: the proxy's upstreams and the Altinn exchange.
  const upstreamNonces = new UpstreamNonces(store, { now, warn: (reason) => log.warn({ reason }, 'upstream DPoP nonce not shared through the store') });
  const lifecycle = new TokenLifecycle({
    sessions,
    audit,
    log,
    upstreamNonces,
    refreshLeewayMs: config.session.refreshLeewayMs,
    now,
    handleKeys: keys,
    // Its pending logouts are refused and retried from the start; their tenants are found by id.
    logoutJournal: journal && { journal, tenantById: (id) => tenants.byId(id) },
  });
  // `config` follows reloads; everything else is made once.
  const core: GatewayCore = {
    get config() { return config; },
    get integrations() { return tenantIntegrations(given); },
    tenants, lifecycle, keys, audit, metrics, now, runtimeTenants: runtime,
  };

  // Visible to the host application: cookies parsed, and request.bff on every request.
  if (!app.hasDecorator('parseCookie')) await app.register(cookie);
  app.decorate('gateway', core);
  app.decorateRequest('bff', null as unknown as BffRequest);
  traceRequests(app);
  // A callback hook: the common case (a tenant's host) finishes without a promise.
  app.addHook('onRequest', (request, _reply, done) => {
    const tenant = tenants.forHost(request.host);
    request.bff = new BffRequest(lifecycle, tenant, request.cookies, request.headers.referer);
    if (tenant) return done();
    endRemovedTenantSession(request.host, request.cookies).then(() => done(), done);
  });

  /** A reload removed this host's tenant: a session its cookie still names is ended (and revoked) when met. */
  const endRemovedTenantSession = async (host: string, cookies: Record<string, string | undefined> | undefined): Promise<void> => {
    const removed = tenants.removedForHost(host);
    const cookieValue = removed ? cookies?.[removed.cookies.sessionName] : undefined;
    if (!removed || cookieValue === undefined) return;
    try {
      const current = await lifecycle.current(removed, cookieValue);
      if (current.state === 'live') await lifecycle.end(current.session, removed, 'admin', { reason: 'tenant removed from the configuration' });
    } catch (err) {
      log.warn({ tenant: removed.id, reason: (err as Error).message }, 'session of a removed tenant not ended yet');
    }
  };

  let routing: ProxyRouting | undefined;
  const discovery = new Discovery(tenants, log);
  app.decorate('bffWarmUp', () => discovery.run());
  app.addHook('onReady', async () => {
    void discovery.run();
    runtime?.start();
    // Only a configuration with a digdir block has tenants that await their client: the others need no check.
    applied.start(() => (given.digdir ? withRuntimeTenants(given, runtime?.tenants ?? []) : given));
  });
  app.addHook('onClose', async () => {
    discovery.stop();
    await applied.stop();
    await runtime?.close();
    await lifecycle.settled();
    await sessions.close();
    await journal?.close();
    if (!opts.store) await store.close();
  });

  // The gateway's own routes, in their own scope: their error handling, body parsing and headers stay theirs.
  await app.register(async (scope) => {
    // The host's request log (and anything else written through a request's logger) never gets the code, state
    // or handles that /auth/* URLs carry, whatever the host's logger options.
    hideAuthUrlSecrets(scope);
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    scope.setErrorHandler((err, request, reply) => {
      const tenant = request.bff?.tenant;
      return sendError(reply, asGatewayError(err, request.log), tenant ? loginUrl(tenant.config) : undefined);
    });
    scope.addHook('onSend', securityHeaders);
    scope.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.observeRequest(request.bff?.tenant?.id, route, request.method, reply.statusCode, reply.elapsedTime / 1000);
      // Path only: query strings may carry codes and state.
      request.log.debug({ method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
      done();
    });
    // Login start and callback, per client address and tenant; in this scope only, never the host application's.
    await registerLoginRateLimit(scope, { limits: config.server.rateLimit, trustProxy: config.server.trustProxy });
    await scope.register(healthRoutes);
    await scope.register(loginRoutes);
    await scope.register(sessionRoutes);
    await scope.register(userSessionRoutes);
    await scope.register(clientRoute);
    await scope.register(logoutRoutes);
    await scope.register(metricsRoute);
    routing = await registerProxyRoutes(scope, {
      tenants: config.tenants,
      trustProxy: config.server.trustProxy,
      audit,
      auditContext: auditIdentity,
      loginUrl: (request, tenant) => loginUrl(tenant, request.url),
      bearerFor: (request, tenant, route) => request.bff.bearerFor(tenant.id, route),
      bearerNow: (request, tenant, route) => request.bff.bearerNow(tenant.id, route),
      hasSession: async (request) => (await request.bff.session()) !== undefined,
      dpop: {
        keyOf: (request) => request.bff.loaded?.data.dpop,
        nonces: upstreamNonces,
      },
    });
    // Last: the tenant's app answers whatever no route above owns.
    await registerAppRoutes(scope, config.tenants);
  });

  /**
   * Serves `next` from the next request on. Everything that can fail is worked out first; then tenants and routes
   * are swapped together, in one synchronous step, so a request sees the old configuration or the new one. With
   * `dryRun`, only the checks.
   */
  const swap = (next: GatewayConfig, { dryRun }: { dryRun: boolean }): ReloadResult | undefined => {
    refuseRestartOnlyChanges(config, next);
    const change = tenants.prepare(next);
    let swapRoutes: () => void;
    try {
      swapRoutes = routing!.prepare(next.tenants);
    } catch (err) {
      throw new ReloadRefused((err as Error).message);
    }
    if (dryRun) return undefined;
    swapRoutes();
    tenants.adopt(change);
    config = next;
    void discovery.run();
    const result = { added: change.added, removed: change.removed, changed: change.changed };
    log.info(result, 'configuration reloaded');
    return result;
  };

  app.decorate('bffReload', async (input: IdportenBffOptions['config']): Promise<ReloadResult> => {
    try {
      let next: GatewayConfig;
      try {
        next = resolveConfig({ ...opts, config: input });
      } catch (err) {
        throw new ReloadRefused(`invalid configuration: ${(err as Error).message}`);
      }
      // The run-time tenants as they are now (in tenantsDir mode, the folder as it is now).
      await runtime?.refresh({ force: true });
      const resolved = await served(next, runtime?.tenants ?? []).catch((err: Error) => {
        throw new ReloadRefused(`the clients integrations apply made could not be read: ${err.message}`);
      });
      const result = swap(resolved, { dryRun: false })!;
      given = next;
      return result;
    } catch (err) {
      if (err instanceof ReloadRefused) log.error({ reason: err.message }, 'configuration reload refused; the running configuration keeps serving');
      throw err;
    }
  });
}

/**
 * What a reload cannot change: the session store, cookie and key ring (`session.*`), the listener and its
 * limits (`server.*`), and the tenants' apps (their routes are registered at start).
 */
function refuseRestartOnlyChanges(current: GatewayConfig, next: GatewayConfig): void {
  for (const part of ['session', 'server'] as const) {
    if (!isDeepStrictEqual(current[part], next[part])) throw new ReloadRefused(`${part}.* changed; a restart is needed to apply it`);
  }
  const appOf = new Map(current.tenants.map((t) => [t.id, t.app]));
  for (const tenant of next.tenants) {
    if (!isDeepStrictEqual(appOf.get(tenant.id), tenant.app)) throw new ReloadRefused(`tenants[${tenant.id}].app changed or added; a restart is needed to apply it`);
  }
}

/** The plugin, with its decorators and hooks visible to the server it is registered on. */
export const idportenBff = fp(idportenBffPlugin, { fastify: '5.x', name: 'idporten-bff' });
export default idportenBff;

function resolveConfig(opts: IdportenBffOptions): GatewayConfig {
  const env = opts.env ?? process.env;
  if (typeof opts.config === 'string') return loadConfigFile(opts.config, env);
  if ('validated' in opts.config && typeof opts.config.validated === 'object') return (opts.config as ValidatedConfig).validated;
  return normaliseConfig(opts.config, env);
}

/**
 * Where tenants added through the admin API are kept: the Redis store when the gateway uses one, else tenantsDir;
 * undefined when there is neither (the admin API then cannot add tenants).
 */
async function openTenantStore(config: GatewayConfig, keys: KeyRing, log: FastifyBaseLogger): Promise<{ store: TenantStore; inTenantsDir: boolean } | undefined> {
  const storeConfig = config.session.store;
  if (storeConfig.type === 'redis') {
    const [{ redisClient }, { RedisTenantStore }] = await Promise.all([import('./session/redis-store.js'), import('./tenant/tenant-store.js')]);
    const redis = redisClient(storeConfig);
    // The session store reports Redis being away; this connection keeps retrying quietly.
    redis.on('error', () => undefined);
    await redis.connect().catch(() => log.warn('redis unreachable; run-time tenants are read once it answers'));
    return { store: new RedisTenantStore(redis, storeConfig.keyPrefix, keys), inTenantsDir: false };
  }
  if (config.tenantsDir) {
    const { DirTenantStore } = await import('./tenant/tenant-store.js');
    return { store: new DirTenantStore(config.tenantsDir.path, config.tenantsDir.applied), inTenantsDir: true };
  }
  return undefined;
}

async function createStore(config: GatewayConfig, log: FastifyBaseLogger): Promise<{ store: SessionStore; lock: SessionLock }> {
  const storeConfig = config.session.store;
  if (storeConfig.type === 'memory') return { store: new MemorySessionStore(storeConfig.maxSessions), lock: new MemorySessionLock() };
  const { createRedisStore } = await import('./session/redis-store.js');
  return createRedisStore(storeConfig, log as never);
}
