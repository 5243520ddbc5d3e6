import { randomBytes } from 'node:crypto';
import type { SameSite } from '../config/types.js';

/** 32 bytes from the CSPRNG, base64url: 256 bits, 43 characters. */
export function newSessionCookieValue(): string {
  return randomBytes(32).toString('base64url');
}

const SESSION_VALUE = /^[A-Za-z0-9_-]{43}$/;

/** Anything but a well-formed value is "no session" before any store or crypto work happens. */
export function isWellFormedSessionValue(value: unknown): value is string {
  return typeof value === 'string' && SESSION_VALUE.test(value);
}

export interface CookieAttributes {
  httpOnly: true;
  secure: boolean;
  sameSite: SameSite;
  path: '/';
  maxAge?: number;
  expires?: Date;
}

/** How the browser should see one tenant's cookies: `__Host-` prefixed and Secure on https. */
export interface CookiePolicy {
  sessionName: string;
  /** Prefix for login-transaction cookies; the state's hash is appended. */
  transactionPrefix: string;
  secure: boolean;
  sameSite: SameSite;
}

export function cookiePolicy(publicUrl: string, cookieName: string, sameSite: SameSite): CookiePolicy {
  const https = new URL(publicUrl).protocol === 'https:';
  const prefix = https ? '__Host-' : '';
  return {
    sessionName: `${prefix}${cookieName}`,
    transactionPrefix: `${prefix}${cookieName}-login-`,
    secure: https,
    sameSite,
  };
}

export function sessionCookieAttributes(policy: CookiePolicy): CookieAttributes {
  // No Max-Age: the session cookie lives with the browser session; the server enforces idle and absolute expiry.
  return { httpOnly: true, secure: policy.secure, sameSite: policy.sameSite, path: '/' };
}

/** The login transaction crosses sites on the way back from ID-porten, so it must be Lax, and it is short-lived. */
export function transactionCookieAttributes(policy: CookiePolicy, maxAgeSeconds: number): CookieAttributes {
  return { httpOnly: true, secure: policy.secure, sameSite: 'lax', path: '/', maxAge: maxAgeSeconds };
}

export function clearedCookieAttributes(policy: CookiePolicy, sameSite: SameSite = policy.sameSite): CookieAttributes {
  return { httpOnly: true, secure: policy.secure, sameSite, path: '/', maxAge: 0, expires: new Date(0) };
}
