import type { AcrLevel } from '../config/types.js';

/** Everything the gateway keeps about one logged-in browser. Stored encrypted; never sent to the browser. */
export interface SessionData {
  tenant: string;
  user: {
    sub: string;
    pid?: string | undefined;
    acr: AcrLevel;
    amr: string[];
    locale?: string | undefined;
    /** ID-porten's session id (front-channel / back-channel logout). */
    sid?: string | undefined;
  };
  /** Claims a refreshed ID token must keep. */
  idTokenBinding: { iss: string; aud: string; sub: string; acr: AcrLevel };
  /** Epoch milliseconds. */
  createdAt: number;
  tokens: {
    accessToken: string;
    /** When the access token was obtained and when it expires (epoch ms). */
    accessTokenIssuedAt: number;
    accessTokenExpiresAt: number;
    refreshToken?: string | undefined;
    idToken: string;
    scope?: string | undefined;
  };
  /** Cached Altinn token, valid only for the access token it was exchanged from. */
  altinn?: { token: string; expiresAt: number; accessTokenFingerprint: string } | undefined;
}

/** A session as loaded for one request. */
export interface SessionContext {
  /** Store key: a hash of the cookie value. */
  id: string;
  /** Short hash of the store key for logs. */
  hash: string;
  data: SessionData;
  /** Epoch ms of the last request seen (idle timeout). */
  lastSeenAt: number;
}

const ACR_RANK: Record<AcrLevel, number> = { 'idporten-loa-substantial': 1, 'idporten-loa-high': 2 };

export function isAcrLevel(value: unknown): value is AcrLevel {
  return typeof value === 'string' && Object.hasOwn(ACR_RANK, value);
}

/** True when `actual` is at least `required` (ID-porten: high ≥ substantial). */
export function acrSatisfies(actual: unknown, required: AcrLevel): actual is AcrLevel {
  return isAcrLevel(actual) && ACR_RANK[actual] >= ACR_RANK[required];
}
