import type { ResourceToken, SessionData } from './session-data.js';

type Lifetime = Pick<ResourceToken, 'accessTokenIssuedAt' | 'accessTokenExpiresAt'>;

/**
 * When to refresh: inside the configured leeway before expiry, but never more than a quarter of the token's
 * lifetime, so a 5-second token is not refreshed on every request while a 120-second one gets its 30 s.
 */
export function refreshLeeway(tokens: Lifetime, configuredLeewayMs: number): number {
  const lifetime = Math.max(0, tokens.accessTokenExpiresAt - tokens.accessTokenIssuedAt);
  return Math.min(configuredLeewayMs, lifetime / 4);
}

export function needsRefresh(data: SessionData, configuredLeewayMs: number, now: number): boolean {
  return tokenNeedsRefresh(data.tokens, configuredLeewayMs, now);
}

/** The same rule for any access token the session holds (its own, or one for a resource). */
export function tokenNeedsRefresh(token: Lifetime, configuredLeewayMs: number, now: number): boolean {
  return now >= token.accessTokenExpiresAt - refreshLeeway(token, configuredLeewayMs);
}

export function accessTokenValid(data: SessionData, now: number): boolean {
  return now < data.tokens.accessTokenExpiresAt;
}
