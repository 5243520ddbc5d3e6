import type { AcrLevel, TenantConfig } from '../config/types.js';
import type { LoginPrompt } from '../idporten/client.js';

/**
 * Where the browser starts a login; `returnTo` is validated again by /auth/login. `ask` names what the login
 * must ask ID-porten for (a step-up: a level, and a fresh login).
 */
export function loginUrl(tenant: TenantConfig, returnTo?: string, ask: { acr?: AcrLevel; prompt?: LoginPrompt } = {}): string {
  const url = new URL('/auth/login', tenant.publicUrl);
  if (returnTo) url.searchParams.set('returnTo', returnTo);
  if (ask.acr) url.searchParams.set('acr', ask.acr);
  if (ask.prompt) url.searchParams.set('prompt', ask.prompt);
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
