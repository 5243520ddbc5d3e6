import type { IncomingHttpHeaders } from 'node:http';
import type { AuditLog } from '../audit/audit-log.js';
import { GatewayError } from '../errors.js';

export type CsrfResult = { ok: true } | { ok: false; reason: 'missing_header' | 'origin_mismatch' };

/**
 * The gateway's CSRF rule for proxied and state-changing /auth/* requests:
 * `X-CSRF: 1` is a non-safelisted header, so a cross-origin page cannot send it without a CORS
 * preflight, which the gateway never approves. `Origin`, when the browser sends it, must be the
 * tenant's own origin; the opaque origin "null" (sandboxed frames, some redirects) never matches.
 */
export function checkCsrf(headers: IncomingHttpHeaders, tenantPublicUrl: string): CsrfResult {
  if (headers['x-csrf'] !== '1') return { ok: false, reason: 'missing_header' };
  const origin = headers.origin;
  if (origin !== undefined && origin !== new URL(tenantPublicUrl).origin) return { ok: false, reason: 'origin_mismatch' };
  return { ok: true };
}

/**
 * A top-level GET navigation the user started or that came from the tenant's own pages.
 * `Sec-Fetch-*` are forbidden header names (Fetch standard): page script cannot set them, so a
 * cross-site page cannot make its navigation look like this. Browsers without Fetch Metadata
 * never match, which fails closed.
 */
export function isFirstPartyNavigation(method: string, headers: IncomingHttpHeaders): boolean {
  if (method !== 'GET' || headers['sec-fetch-mode'] !== 'navigate') return false;
  const site = headers['sec-fetch-site'];
  return site === 'same-origin' || site === 'none';
}

/**
 * State-changing /auth/* requests follow the proxy's rule; a rejection is audited. A plain HTML form on the
 * tenant's own pages cannot send X-CSRF: with `allowSameOriginForm` its Origin header (always sent on
 * POST) proves where it came from.
 */
export function enforceCsrf(
  request: { headers: IncomingHttpHeaders; method: string; routeOptions: { url?: string | undefined } },
  tenant: { id: string; config: { publicUrl: string } },
  audit: AuditLog,
  opts: { allowSameOriginForm?: boolean } = {},
): void {
  const result = checkCsrf(request.headers, tenant.config.publicUrl);
  if (result.ok) return;
  if (opts.allowSameOriginForm && request.headers.origin === new URL(tenant.config.publicUrl).origin) return;
  audit.event('csrf.reject', { tenant: tenant.id, path: request.routeOptions.url, method: request.method, reason: result.reason });
  throw new GatewayError('csrf_failed', 'This request needs the header X-CSRF: 1 and must come from the application\'s own origin.');
}
