import type {} from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';
import type { GatewayConfig, TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import type { IdportenClient } from '../oidc/idporten-client.js';
import { clearedCookieAttributes, cookiePolicy, sessionCookieAttributes, type CookiePolicy } from '../session/cookies.js';
import type { KeyRing } from '../session/key-ring.js';
import type { SessionManager } from '../session/manager.js';
import type { SessionContext } from '../session/session.js';
import { StoreUnavailableError } from '../session/store.js';
import { createTenantResolver } from '../tenant/resolve.js';
import { loginUrl } from '../tenant/urls.js';
import type { TokenService } from '../tokens/token-service.js';

/** Everything a route needs, built once by app.ts. */
export interface GatewayContext {
  config: GatewayConfig;
  clients: Map<string, IdportenClient>;
  sessions: SessionManager;
  tokens: TokenService;
  keys: KeyRing;
  audit: AuditLog;
  now: () => number;
  tenantForHost: (host: string | undefined) => TenantConfig | undefined;
  cookies: (tenant: TenantConfig) => CookiePolicy;
}

export function createContext(parts: Omit<GatewayContext, 'tenantForHost' | 'cookies'>): GatewayContext {
  const policies = new Map(parts.config.tenants.map((t) => [t.id, cookiePolicy(t.publicUrl, parts.config.session.cookieName, parts.config.session.sameSite)]));
  return { ...parts, tenantForHost: createTenantResolver(parts.config.tenants), cookies: (tenant) => policies.get(tenant.id)! };
}

export function requireTenant(ctx: GatewayContext, request: FastifyRequest): TenantConfig {
  const tenant = ctx.tenantForHost(request.host);
  if (!tenant) throw new GatewayError('unknown_tenant', 'This host is not served by the gateway.');
  return tenant;
}

const loaded = new WeakMap<FastifyRequest, SessionContext | null>();
const endedNow = new WeakSet<FastifyRequest>();

/**
 * The request's live session, or undefined. Expired sessions are destroyed here (audit `logout` with channel
 * `expired` or `idle`); a tampered, unknown or malformed cookie is simply no session.
 */
export async function currentSession(ctx: GatewayContext, request: FastifyRequest, tenant: TenantConfig): Promise<SessionContext | undefined> {
  if (loaded.has(request)) return loaded.get(request) ?? undefined;
  const cookieValue = request.cookies[ctx.cookies(tenant).sessionName];
  let session: SessionContext | undefined;
  try {
    const result = await ctx.sessions.load(cookieValue);
    if (result.state === 'expired') {
      endedNow.add(request);
      await ctx.sessions.destroy(result.session.id);
      ctx.audit.event('logout', {
        tenant: tenant.id,
        session: result.session.hash,
        sub: result.session.data.user.sub,
        channel: result.reason === 'idle' ? 'idle' : 'expired',
      });
    } else if (result.state === 'live' && result.session.data.tenant === tenant.id) {
      session = result.session;
      await ctx.sessions.touch(session);
    }
  } catch (err) {
    if (err instanceof StoreUnavailableError) throw new GatewayError('store_unavailable', 'The session store could not be reached.', { cause: err });
    throw err;
  }
  loaded.set(request, session ?? null);
  return session;
}

/**
 * The request's live session, or a 401: `session_expired` when this request found its session past its
 * idle or absolute deadline, `login_required` when there was none.
 */
export async function requireSession(ctx: GatewayContext, request: FastifyRequest, tenant: TenantConfig, returnTo?: string): Promise<SessionContext> {
  const session = await currentSession(ctx, request, tenant);
  if (session) return session;
  if (endedNow.has(request)) throw new GatewayError('session_expired', 'The session has ended; log in again.', { loginUrl: loginUrl(tenant, returnTo) });
  throw new GatewayError('login_required', 'No live session; log in first.', { loginUrl: loginUrl(tenant, returnTo) });
}

/** The session currentSession found for this request, if it has run (for audit lines written later). */
export function loadedSession(request: FastifyRequest): SessionContext | undefined {
  return loaded.get(request) ?? undefined;
}

export function setSessionCookie(ctx: GatewayContext, reply: FastifyReply, tenant: TenantConfig, value: string): void {
  const policy = ctx.cookies(tenant);
  reply.setCookie(policy.sessionName, value, sessionCookieAttributes(policy));
}

export function clearSessionCookie(ctx: GatewayContext, reply: FastifyReply, tenant: TenantConfig): void {
  const policy = ctx.cookies(tenant);
  reply.clearCookie(policy.sessionName, clearedCookieAttributes(policy));
}
