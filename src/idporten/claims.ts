import type { JWTPayload } from 'jose';
import type { AcrLevel } from '../config/types.js';
import { isAcrLevel } from './acr.js';

/** The user as the gateway keeps and shows it, from ID-porten's ID token claims. */
export interface IdportenUser {
  /** Pairwise subject. */
  sub: string;
  /** The national identity number; kept server side, shown only where a tenant opts in. */
  pid?: string | undefined;
  acr: string;
  amr: string[];
  locale?: string | undefined;
  /** ID-porten's session id (front-channel / back-channel logout). */
  sid?: string | undefined;
}

/** Claims every refreshed ID token must keep (OIDC Core 12.2), and the assurance it must not fall below. */
export interface IdTokenBinding {
  iss: string;
  aud: string;
  sub: string;
  acr: string;
}

export function acrFromClaims(claims: JWTPayload, fallback: string): string {
  return isAcrLevel(claims.acr) ? claims.acr : fallback;
}

/** The user and the binding from a verified login ID token (whose acr already satisfied `requestedAcr`). */
export function userFromClaims(claims: JWTPayload, requestedAcr: AcrLevel, clientId: string): { user: IdportenUser; binding: IdTokenBinding } {
  const acr = acrFromClaims(claims, requestedAcr);
  return {
    user: {
      sub: claims.sub!,
      pid: typeof claims.pid === 'string' ? claims.pid : undefined,
      acr,
      amr: Array.isArray(claims.amr) ? claims.amr.filter((a): a is string => typeof a === 'string') : [],
      locale: typeof claims.locale === 'string' ? claims.locale : undefined,
      sid: typeof claims.sid === 'string' ? claims.sid : undefined,
    },
    binding: { iss: claims.iss!, aud: clientId, sub: claims.sub!, acr },
  };
}
