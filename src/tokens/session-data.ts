import { hash } from 'node:crypto';
import type { IdTokenBinding, IdportenUser } from '../idporten/claims.js';
import type { SessionContext } from '../session/session.js';

/** Everything the gateway keeps about one logged-in browser. Stored sealed; never sent to the browser. */
export interface SessionData {
  tenant: string;
  user: IdportenUser;
  /** Claims a refreshed ID token must keep. */
  idTokenBinding: IdTokenBinding;
  /** Epoch milliseconds. */
  createdAt: number;
  /** A short description of the browser that logged in (for the user's list of sessions). */
  userAgent?: string | undefined;
  tokens: {
    accessToken: string;
    /** When the access token was obtained and when it expires (epoch ms). */
    accessTokenIssuedAt: number;
    accessTokenExpiresAt: number;
    refreshToken?: string | undefined;
    idToken: string;
    scope?: string | undefined;
  };
  /**
   * Tokens obtained from the access token (an Altinn token, …), by token kind. Each is valid only for the
   * access token it came from, so a refresh drops them all.
   */
  derived?: Record<string, DerivedToken> | undefined;
  /** RFC 8707 resource indicators the login's authorization request named: the only ones a refresh may ask for. */
  resources?: string[] | undefined;
  /**
   * Access tokens issued for one resource each (RFC 8707, `routes[].resource`), by resource indicator. Each came
   * from its own refresh grant and lives on the grant, not on the session's access token: a refresh of the session's
   * token (or of another resource's) rotates the refresh token and keeps them.
   */
  resourceTokens?: Record<string, ResourceToken> | undefined;
}

export interface ResourceToken {
  accessToken: string;
  /** When it was asked for and when it expires (epoch ms), as for the session's own access token. */
  accessTokenIssuedAt: number;
  accessTokenExpiresAt: number;
}

export interface DerivedToken {
  token: string;
  expiresAt: number;
  /** Fingerprint of the access token it was obtained from. */
  from: string;
}

export type Session = SessionContext<SessionData>;

/**
 * A session record's fencing value (StoredSession.version): a hash of the refresh token it holds, so the store can
 * tell whether the token a refresh redeemed is still the stored one. 132 bits of SHA-256, kept in clear beside the
 * sealed record: it names the token without revealing it.
 */
export function sessionVersion(data: SessionData): string {
  const token = data.tokens.refreshToken;
  return token ? hash('sha256', token, 'base64url').slice(0, 22) : '';
}
