import { createHash } from 'node:crypto';
import type { AcrLevel } from '../config/types.js';
import type { KeyRing } from './key-ring.js';

/** What the callback needs from the login that started it, sealed into a short-lived cookie. */
export interface SealedLoginTransaction {
  tenant: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  acr: AcrLevel;
  /** RFC 8707 resource indicators the authorization request named. */
  resources?: string[];
  returnTo: string;
  createdAt: number;
  /**
   * The session (store key, never the cookie) this login replaces. The callback arrives cross-site, where a
   * SameSite=Strict session cookie is not sent, so the login remembers it at its start.
   */
  replacesSession?: string;
}

/** ≤ 10 minutes, as the contract allows; ID-porten's login page needs a few. */
export const LOGIN_TRANSACTION_TTL_SECONDS = 600;
/** Several tabs may log in at once; beyond this many pending logins the oldest are dropped. */
export const MAX_PENDING_LOGINS = 5;

/**
 * Each pending login has its own cookie, named after a hash of its `state`, so parallel logins in several
 * tabs never overwrite each other and the callback finds its own by the `state` it receives.
 */
export function transactionCookieSuffix(state: string): string {
  return createHash('sha256').update(state).digest('base64url').slice(0, 16);
}

export function sealTransaction(keys: KeyRing, tx: SealedLoginTransaction): string {
  return keys.seal(JSON.stringify(tx), `login:${tx.tenant}:${transactionCookieSuffix(tx.state)}`);
}

export function openTransaction(keys: KeyRing, sealed: string | undefined, tenant: string, state: string, now: number): SealedLoginTransaction | undefined {
  if (!sealed) return undefined;
  const plain = keys.open(sealed, `login:${tenant}:${transactionCookieSuffix(state)}`);
  if (plain === undefined) return undefined;
  try {
    const tx = JSON.parse(plain) as SealedLoginTransaction;
    if (tx.tenant !== tenant || tx.state !== state) return undefined;
    if (now - tx.createdAt > LOGIN_TRANSACTION_TTL_SECONDS * 1000) return undefined;
    return tx;
  } catch {
    return undefined;
  }
}
