import type { IncomingHttpHeaders } from 'node:http';

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
