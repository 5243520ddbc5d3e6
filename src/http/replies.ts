import type {} from '@fastify/cookie';
import type { FastifyReply } from 'fastify';
import { clearedCookieAttributes, sessionCookieAttributes } from '../session/cookies.js';
import type { Tenant } from '../tenant/tenant.js';
import { tenantRoot } from '../tenant/urls.js';
import { ERROR_PAGE_CSP, errorPage } from './html.js';

export function setSessionCookie(reply: FastifyReply, tenant: Tenant, value: string): void {
  reply.setCookie(tenant.cookies.sessionName, value, sessionCookieAttributes(tenant.cookies));
}

export function clearSessionCookie(reply: FastifyReply, tenant: Tenant): void {
  reply.clearCookie(tenant.cookies.sessionName, clearedCookieAttributes(tenant.cookies));
}

/**
 * The small HTML page a browser sees when a login cannot finish; it reflects nothing but a correlation id. A 503
 * page says when to try again (`retryAfterSeconds`, RFC 9110 §10.2.3), as every 503 of the gateway does.
 */
export function sendErrorPage(reply: FastifyReply, tenant: Tenant, status: number, title: string, message: string, correlationId: string, retryAfterSeconds?: number): FastifyReply {
  if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-security-policy', ERROR_PAGE_CSP)
    .send(errorPage({ title, message, correlationId, retryUrl: tenantRoot(tenant.config) }));
}
