import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import type { GatewayContext } from '../http/context.js';
import { errorPage, ERROR_PAGE_CSP } from '../http/html.js';
import type { SessionContext } from '../session/session.js';
import { checkCsrf } from '../proxy/csrf.js';
import { tenantRoot } from '../tenant/urls.js';
import { fingerprint } from '../audit/fingerprint.js';

/** State-changing /auth/* requests follow the proxy's CSRF rule; a rejection is audited. */
export function enforceCsrf(ctx: GatewayContext, request: FastifyRequest, tenant: TenantConfig, opts: { allowSameOriginForm?: boolean } = {}): void {
  const result = checkCsrf(request.headers, tenant.publicUrl);
  if (result.ok) return;
  // A plain HTML form on the tenant's own pages cannot send X-CSRF; its Origin header (always sent on POST) proves where it came from.
  if (opts.allowSameOriginForm && request.headers.origin === new URL(tenant.publicUrl).origin) return;
  ctx.audit.event('csrf.reject', { tenant: tenant.id, path: request.routeOptions.url, method: request.method, reason: result.reason });
  throw new GatewayError('csrf_failed', 'This request needs the header X-CSRF: 1 and must come from the application\'s own origin.');
}

export function wantsHtml(request: FastifyRequest): boolean {
  if (request.headers['sec-fetch-mode'] === 'navigate') return true;
  const accept = request.headers.accept ?? '';
  return accept.includes('text/html');
}

export function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  const json = accept.indexOf('application/json');
  const html = accept.indexOf('text/html');
  return json !== -1 && (html === -1 || json < html);
}

export function sendErrorPage(reply: FastifyReply, tenant: TenantConfig, status: number, title: string, message: string, correlationId: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-security-policy', ERROR_PAGE_CSP)
    .send(errorPage({ title, message, correlationId, retryUrl: tenantRoot(tenant) }));
}

/** Revokes refresh then access token at ID-porten (its logout does not revoke API-scoped tokens). Best effort. */
export async function revokeTokens(ctx: GatewayContext, log: FastifyBaseLogger, tenant: TenantConfig, session: SessionContext): Promise<{ refreshToken: boolean; accessToken: boolean }> {
  const client = ctx.clients.get(tenant.id)!;
  const result = { refreshToken: false, accessToken: false };
  const { refreshToken, accessToken } = session.data.tokens;
  for (const [token, hint] of [
    [refreshToken, 'refresh_token'],
    [accessToken, 'access_token'],
  ] as const) {
    if (!token) continue;
    try {
      await client.revoke(token, hint);
      result[hint === 'refresh_token' ? 'refreshToken' : 'accessToken'] = true;
    } catch (err) {
      log.warn({ tenant: tenant.id, session: session.hash, token: fingerprint(token), reason: (err as Error).message }, 'token revocation failed');
    }
  }
  return result;
}

/** Public view of a session (GET /auth/session): never a token. */
export function sessionView(ctx: GatewayContext, session: SessionContext) {
  const { data } = session;
  const endsAt = data.createdAt + ctx.sessions.absoluteLifetimeMs;
  const idleExpiresAt = Math.min(endsAt, session.lastSeenAt + ctx.sessions.idleTimeoutMs);
  return {
    authenticated: true,
    user: { sub: data.user.sub, pid: data.user.pid, acr: data.user.acr, amr: data.user.amr, locale: data.user.locale },
    session: {
      createdAt: new Date(data.createdAt).toISOString(),
      endsAt: new Date(endsAt).toISOString(),
      idleExpiresAt: new Date(idleExpiresAt).toISOString(),
    },
    accessToken: {
      expiresAt: new Date(data.tokens.accessTokenExpiresAt).toISOString(),
      refreshable: Boolean(data.tokens.refreshToken) && ctx.now() < endsAt,
    },
  };
}
