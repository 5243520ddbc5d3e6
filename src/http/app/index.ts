/**
 * The app on the tenant's origin (`tenants[].app`): every request that no gateway route owns
 * (`/auth/*`, the health endpoints, an API route) goes to the tenant's SPA, from a folder (static.ts)
 * or an upstream (upstream.ts). Told apart by Host, like the API routes; a host without an app keeps
 * the 404 problem.
 *
 * On every app answer, whichever the source:
 *   - the app's response headers (`app.headers`, or DEFAULT_APP_HEADERS when none are set), and never a
 *     Set-Cookie from the app side;
 *   - with `app.requireLogin`, a top-level navigation without a live session is sent to
 *     /auth/login?returnTo=<path and query>; assets, fetches and WebSocket upgrades are not.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig, TenantConfig } from '../../config/types.js';
import { GatewayError } from '../../errors.js';
import { loginUrl } from '../../tenant/urls.js';
import { escapeHtml } from '../html.js';
import { staticApp } from './static.js';
import { registerUpstreamApp } from './upstream.js';

/** Response headers of the app when `app.headers` sets none. `form-action 'self'` covers the POST to /auth/logout. */
export const DEFAULT_APP_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/** Paths the gateway owns even where no route of its own matched: never handed to the app. */
const RESERVED = /^\/(auth|healthz|readyz|metrics)(\/|\?|$)/;

/** Methods a static app answers; others get 405. */
const STATIC_METHODS = ['GET', 'HEAD'];

export async function registerAppRoutes(scope: FastifyInstance, tenants: readonly TenantConfig[]): Promise<void> {
  const withApp = tenants.filter((t): t is TenantConfig & { app: AppConfig } => t.app !== undefined);
  if (withApp.some((t) => t.app.kind === 'static')) {
    // One registration for sendFile; each tenant names its own root per file.
    await scope.register(fastifyStatic, { serve: false, etag: true, lastModified: true, cacheControl: false, index: false, dotfiles: 'deny' });
  }
  for (const tenant of withApp) {
    await scope.register(async (appScope) => tenantApp(appScope, tenant));
  }
}

async function tenantApp(scope: FastifyInstance, tenant: TenantConfig & { app: AppConfig }): Promise<void> {
  const { app } = tenant;
  const host = new URL(tenant.publicUrl).host;
  const headers = Object.keys(app.headers).length > 0 ? app.headers : DEFAULT_APP_HEADERS;

  const guard = (request: FastifyRequest): void => {
    if (RESERVED.test(request.url)) throw new GatewayError('route_not_found', 'No route is configured for this path.');
  };

  scope.addHook('onRequest', async (request, reply) => {
    // A tenant a reload removed keeps its router entries until a restart; its host no longer names it.
    if (request.bff?.tenant?.id !== tenant.id) throw new GatewayError('route_not_found', 'No route is configured for this path.');
    if (!app.requireLogin || !isPageNavigation(request) || RESERVED.test(request.url)) return undefined;
    if (await request.bff.session()) return undefined;
    // A navigation that arrives cross-site (the redirect back from ID-porten, a link in a mail) carries no
    // SameSite=Strict cookie even when a session is live: sending it to the login would loop. It is
    // answered with a same-origin reload instead, which carries the cookie; only then does it count.
    if (request.bff.tenant?.cookies.sameSite === 'strict' && request.headers['sec-fetch-site'] === 'cross-site') {
      return reply.header('cache-control', 'no-store').header('content-type', 'text/html; charset=utf-8').send(reloadPage(request.url));
    }
    return reply.redirect(loginUrl(tenant, request.url), 302);
  });

  scope.addHook('onSend', async (_request, reply, payload) => {
    reply.removeHeader('set-cookie');
    for (const [name, value] of Object.entries(headers)) reply.header(name, value);
    return payload;
  });

  if (app.kind === 'upstream') {
    await registerUpstreamApp(scope, { url: app.url, publicUrl: tenant.publicUrl, host, guard });
    return;
  }

  const files = staticApp(app.dir);
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    guard(request);
    if (!STATIC_METHODS.includes(request.method)) {
      throw new GatewayError('method_not_allowed', `${request.method} is not allowed on the app's files.`, { allow: STATIC_METHODS });
    }
    return files.serve(request, reply);
  };
  for (const url of ['/', '/*']) {
    scope.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url, constraints: { host }, handler });
  }
}

/** A page that loads `path` again from this origin (no script: the app's CSP need not allow one). */
function reloadPage(path: string): string {
  const url = escapeHtml(path);
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${url}"><title>Loading…</title></head><body><p><a href="${url}">Continue</a></p></body></html>`;
}

/** A top-level page load: `Sec-Fetch-Mode: navigate`, or (older clients) a GET that asks for HTML. */
function isPageNavigation(request: FastifyRequest): boolean {
  if (request.method !== 'GET') return false;
  const mode = request.headers['sec-fetch-mode'];
  if (mode !== undefined) return mode === 'navigate';
  return (request.headers.accept ?? '').includes('text/html');
}
