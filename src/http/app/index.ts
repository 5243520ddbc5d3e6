/**
 * The app on the tenant's origin (`tenants[].app`): every request that no gateway route owns
 * (`/auth/*`, the health endpoints, an API route) goes to the tenant's SPA, from a folder (static.ts)
 * or an upstream (upstream.ts). Told apart by Host, like the API routes; a host without an app keeps
 * the 404 problem.
 *
 * On every app answer, whichever the source:
 *   - the app's response headers (`app.headers`, or DEFAULT_APP_HEADERS when none are set), and never a
 *     Set-Cookie from the app side;
 *   - with `app.requireLogin`, a page load (negotiation.ts) without a live session is sent to
 *     /auth/login?returnTo=<path and query>, unless `app.publicPaths` names its path; assets, fetches and
 *     WebSocket upgrades are not. The gateway only ever sends the browser on to a path of the tenant's own
 *     origin (return-to.ts): a request line that is anything else (`//evil.example/x`) gets the error page.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { matchesPathGlob, parsePathGlob, type PathGlob } from '../../config/path-glob.js';
import type { AppConfig, TenantConfig } from '../../config/types.js';
import { GatewayError } from '../../errors.js';
import { loginUrl } from '../../tenant/urls.js';
import { escapeHtml } from '../html.js';
import { isPageLoad } from '../negotiation.js';
import { sendErrorPage } from '../replies.js';
import { MAX_RETURN_TO_BYTES, returnToTooLong, sameOriginPath } from '../return-to.js';
import { appPath } from './paths.js';
import { staticApp, type StaticApp } from './static.js';
import { registerUpstreamApp } from './upstream.js';

/**
 * Response headers of the app when `app.headers` sets none. `form-action 'self'` covers the POST to /auth/logout;
 * `object-src 'none'` because `default-src 'self'` would otherwise let plugins load from the origin (ASVS 5.0 V3.4.3).
 */
export const DEFAULT_APP_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/** Paths the gateway owns even where no route of its own matched: never handed to the app. */
const RESERVED = /^\/(auth|healthz|readyz|metrics)(\/|\?|$)/;

/** Methods a static app answers; others get 405. */
const STATIC_METHODS = ['GET', 'HEAD'];

/** One tenant's app as its routes need it. */
interface TenantApp {
  tenant: TenantConfig & { app: AppConfig };
  headers: Readonly<Record<string, string>>;
  /** `app.publicPaths`, parsed (the configuration checked them). */
  publicPaths: readonly PathGlob[];
}

let strategies = 0;

/** Requests on the app's paths that the gateway answered with a page of its own (not the app's). */
const gatewayPages = new WeakSet<FastifyRequest>();

export async function registerAppRoutes(scope: FastifyInstance, tenants: readonly TenantConfig[]): Promise<void> {
  const withApp = tenants.filter((t): t is TenantConfig & { app: AppConfig } => t.app !== undefined);
  const entry = (tenant: TenantConfig & { app: AppConfig }): TenantApp => ({
    tenant,
    headers: Object.keys(tenant.app.headers).length > 0 ? tenant.app.headers : DEFAULT_APP_HEADERS,
    publicPaths: tenant.app.publicPaths.map(parsePathGlob),
  });
  const statics = new Map<string, TenantApp & { files: StaticApp }>();
  for (const tenant of withApp) {
    if (tenant.app.kind === 'static') statics.set(new URL(tenant.publicUrl).host.toLowerCase(), { ...entry(tenant), files: staticApp(tenant.app.dir) });
  }
  if (statics.size > 0) {
    // One registration for sendFile; each tenant names its own root per file.
    await scope.register(fastifyStatic, { serve: false, etag: true, lastModified: true, cacheControl: false, index: false, dotfiles: 'deny' });
    await scope.register(async (appScope) => staticApps(appScope, statics));
  }
  // An upstream app is its own @fastify/http-proxy (with its WebSocket path), under its host.
  for (const tenant of withApp) {
    if (tenant.app.kind === 'upstream') await scope.register(async (appScope) => upstreamApp(appScope, entry(tenant)));
  }
}

/** The hooks every app answer passes, for the tenant app `of` finds for a request. */
function appHooks(scope: FastifyInstance, of: (request: FastifyRequest) => TenantApp | undefined): void {
  scope.addHook('onRequest', async (request, reply) => {
    const found = of(request);
    // A tenant a reload removed keeps its router entries until a restart; its host no longer names it.
    if (!found || request.bff?.tenant?.id !== found.tenant.id) throw new GatewayError('route_not_found', 'No route is configured for this path.');
    const { tenant } = found;
    if (!tenant.app.requireLogin || request.method !== 'GET' || !isPageLoad(request) || RESERVED.test(request.url)) return undefined;
    // Both answers below send the browser on to this request's path: only ever as a path of this origin
    // (OWASP ASVS 5.0 V3.7.2). A request line such as `//evil.example/x` would be read as another host.
    const path = sameOriginPath(request.url, tenant.publicUrl);
    if (path === undefined) {
      gatewayPages.add(request);
      const message = returnToTooLong(request.url)
        ? `This address is longer than the ${MAX_RETURN_TO_BYTES} bytes a login can return to.`
        : 'This address is not a page of this service.';
      return sendErrorPage(reply, request.bff.requireTenant(), 400, 'Page not found', message, request.id);
    }
    if (isPublic(found, request.url)) return undefined;
    if (await request.bff.session()) return undefined;
    // A navigation that arrives cross-site (the redirect back from ID-porten, a link in a mail) carries no
    // SameSite=Strict cookie even when a session is live: sending it to the login would loop. It is
    // answered with a same-origin reload instead, which carries the cookie; only then does it count.
    if (request.bff.tenant?.cookies.sameSite === 'strict' && request.headers['sec-fetch-site'] === 'cross-site') {
      return reply.header('cache-control', 'no-store').header('content-type', 'text/html; charset=utf-8').send(reloadPage(path));
    }
    return reply.redirect(loginUrl(tenant, path), 302);
  });

  scope.addHook('onSend', async (request, reply, payload) => {
    reply.removeHeader('set-cookie');
    // The gateway's own error page keeps its own, stricter headers.
    if (gatewayPages.has(request)) return payload;
    for (const [name, value] of Object.entries(of(request)?.headers ?? DEFAULT_APP_HEADERS)) reply.header(name, value);
    return payload;
  });
}

const guard = (request: FastifyRequest): void => {
  if (RESERVED.test(request.url)) throw new GatewayError('route_not_found', 'No route is configured for this path.');
};

async function upstreamApp(scope: FastifyInstance, found: TenantApp): Promise<void> {
  const { tenant } = found;
  if (tenant.app.kind !== 'upstream') return;
  appHooks(scope, () => found);
  await registerUpstreamApp(scope, { url: tenant.app.url, publicUrl: tenant.publicUrl, host: new URL(tenant.publicUrl).host, guard });
}

/**
 * Every static app behind one catch-all, for all tenants: find-my-way keeps at most 31 constrained handlers
 * per path, so one host-constrained catch-all per tenant stopped at 31 tenants. The router asks whether the
 * request's host has a static app; the tenant's folder is looked up per request.
 */
async function staticApps(scope: FastifyInstance, byHost: ReadonlyMap<string, TenantApp & { files: StaticApp }>): Promise<void> {
  const constraint = `bffStaticApp${strategies++}`;
  scope.addConstraintStrategy({
    name: constraint,
    storage() {
      let handlers: unknown = null;
      return { get: (host: string) => (byHost.has(host) ? handlers : null), set: (_value: unknown, value: unknown) => void (handlers = value) } as never;
    },
    deriveConstraint: (req: { headers: { host?: string } }) => req.headers.host?.toLowerCase(),
    mustMatchWhenDerived: false,
  });
  const of = (request: FastifyRequest) => byHost.get((request.headers.host ?? '').toLowerCase());
  appHooks(scope, of);
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    guard(request);
    if (!STATIC_METHODS.includes(request.method)) {
      throw new GatewayError('method_not_allowed', `${request.method} is not allowed on the app's files.`, { allow: STATIC_METHODS });
    }
    const found = of(request);
    if (!found) throw new GatewayError('route_not_found', 'No route is configured for this path.');
    return found.files.serve(request, reply);
  };
  for (const url of ['/', '/*']) {
    scope.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url, constraints: { [constraint]: 'static' }, handler });
  }
}

/** Whether `app.publicPaths` names the request's path (decoded; a path the app would refuse is never public). */
function isPublic(found: TenantApp, url: string): boolean {
  if (found.publicPaths.length === 0) return false;
  const path = appPath(url);
  return path.kind === 'file' && found.publicPaths.some((glob) => matchesPathGlob(glob, path.segments));
}

/**
 * A page that loads `path` again from this origin (no script: the app's CSP need not allow one). `path` is a
 * checked same-origin path (sameOriginPath), never the raw request line.
 */
function reloadPage(path: string): string {
  const url = escapeHtml(path);
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${url}"><title>Loading…</title></head><body><p><a href="${url}">Continue</a></p></body></html>`;
}
