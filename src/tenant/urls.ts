import type { TenantConfig } from '../config/types.js';

/** Where the browser starts a login; `returnTo` is validated again by /auth/login. */
export function loginUrl(tenant: TenantConfig, returnTo?: string): string {
  const url = new URL('/auth/login', tenant.publicUrl);
  if (returnTo) url.searchParams.set('returnTo', returnTo);
  return url.toString();
}

/** The redirect_uri registered at ID-porten: always from publicUrl, never from the request's Host. */
export function callbackUrl(tenant: TenantConfig): string {
  return new URL('/auth/callback', tenant.publicUrl).toString();
}

export function tenantRoot(tenant: TenantConfig, query?: Record<string, string>): string {
  const url = new URL('/', tenant.publicUrl);
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
  return url.toString();
}
