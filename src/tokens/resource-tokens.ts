import { GatewayError } from '../errors.js';
import type { TokenSet } from '../idporten/client.js';
import { accessTokenValid, needsRefresh, tokenNeedsRefresh } from './refresh-policy.js';
import type { ResourceToken, Session, SessionData } from './session-data.js';

/**
 * What one refresh grant is for: the session's own access token, or the access token of one RFC 8707 resource
 * (`routes[].resource`). Every grant presents the session's one refresh token and rotates it, so both kinds go
 * through the same claim → redeem → compare-and-set path (`refresh.ts`), one at a time per session.
 */
export interface RefreshTarget {
  /** The `resource` parameter of the grant; undefined for the session's own token. */
  readonly resource: string | undefined;
  /** Whether the target's token is missing or inside its refresh leeway. */
  needs(data: SessionData, leewayMs: number, now: number): boolean;
  /** Whether the target's token may still be sent (a loser of a claim serves it meanwhile). */
  valid(data: SessionData, now: number): boolean;
  /** The session's data holding what the grant brought (`issuedAt`: when the grant was asked for). */
  apply(data: SessionData, refreshed: TokenSet, issuedAt: number): SessionData;
}

/** The session's own access token: the refresh every session has had. */
export const SESSION_TOKEN: RefreshTarget = {
  resource: undefined,
  needs: needsRefresh,
  valid: accessTokenValid,
  apply(data, refreshed, issuedAt) {
    const { tokens } = data;
    return {
      ...data,
      tokens: {
        accessToken: refreshed.accessToken,
        accessTokenIssuedAt: issuedAt,
        accessTokenExpiresAt: refreshed.accessTokenExpiresAt,
        // Rotating refresh tokens: the new one replaces the old; a provider that reuses tokens sends none.
        refreshToken: refreshed.refreshToken ?? tokens.refreshToken,
        idToken: refreshed.idToken ?? tokens.idToken,
        scope: refreshed.scope ?? tokens.scope,
      },
      // Tokens obtained from the old access token (Altinn, …) die with it. Resource tokens (`resourceTokens`) stay:
      // each was issued on the grant, not from the access token, and rotating the refresh token revokes no access
      // token, so they are sent until they near their own expiry and are then refreshed on their own.
      derived: undefined,
    };
  },
};

const targets = new Map<string, RefreshTarget>();

/** The refresh target of one resource (one object per resource, so it can key single-flight and cooldowns). */
export function resourceTarget(resource: string): RefreshTarget {
  let target = targets.get(resource);
  if (!target) {
    target = {
      resource,
      needs: (data, leewayMs, now) => {
        const token = data.resourceTokens?.[resource];
        return token === undefined || tokenNeedsRefresh(token, leewayMs, now);
      },
      valid: (data, now) => {
        const token = data.resourceTokens?.[resource];
        return token !== undefined && now < token.accessTokenExpiresAt;
      },
      apply(data, refreshed, issuedAt) {
        const token: ResourceToken = { accessToken: refreshed.accessToken, accessTokenIssuedAt: issuedAt, accessTokenExpiresAt: refreshed.accessTokenExpiresAt };
        return {
          ...data,
          // The grant rotated the session's refresh token (and may bring a new ID token); the session's own access
          // token, its scope and whatever was derived from it are untouched.
          tokens: { ...data.tokens, refreshToken: refreshed.refreshToken ?? data.tokens.refreshToken, idToken: refreshed.idToken ?? data.tokens.idToken },
          resourceTokens: { ...data.resourceTokens, [resource]: token },
        };
      },
    };
    targets.set(resource, target);
  }
  return target;
}

/** The resource's access token when it needs no refresh; else undefined. */
export function usableResourceToken(data: SessionData, resource: string, leewayMs: number, now: number): string | undefined {
  return resourceTarget(resource).needs(data, leewayMs, now) ? undefined : data.resourceTokens![resource]!.accessToken;
}

/**
 * Throws login_required unless the session's login named `resource` in its authorization request: a provider may
 * refuse a resource its grant does not hold after the refresh token is spent (oidc-provider does), so a resource
 * configured after this login is asked for only by a new login.
 */
export function grantedResource(session: Session, resource: string): void {
  if (session.data.resources?.includes(resource)) return;
  throw new GatewayError('login_required', 'This API needs a new login: its resource was not part of this session\'s login.');
}
