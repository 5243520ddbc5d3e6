import { randomBytes } from 'node:crypto';
import type { KeyRing } from '../session/key-ring.js';

/**
 * The one-time handle in the `logoutUrl` that `POST /auth/logout` gives a JSON client. It carries the
 * end-session parameters (the ID token as `id_token_hint` among them) sealed under the key ring, so any
 * instance can open it without shared state, and nothing in the URL is readable:
 *
 * - the additional data binds it to its purpose, its tenant and a random browser binding (an HttpOnly
 *   cookie set with it), so a handle copied to another tenant or another browser does not open;
 * - it expires after LOGOUT_HANDLE_TTL_MS, and the route keeps the `jti`s it has served (one use each).
 */
export const LOGOUT_HANDLE_TTL_MS = 120_000;

export interface LogoutHandle {
  jti: string;
  /** Epoch ms after which the handle is refused. */
  exp: number;
  params: Record<string, string>;
}

function additionalData(tenantId: string, binding: string): string {
  return `logout-continue.v1\u0000${tenantId}\u0000${binding}`;
}

/** A fresh random value for the browser binding cookie (256 bits). */
export function newLogoutBinding(): string {
  return randomBytes(32).toString('base64url');
}

export function sealLogoutHandle(keys: KeyRing, tenantId: string, binding: string, params: Record<string, string>, now: number): string {
  const contents: LogoutHandle = { jti: randomBytes(16).toString('base64url'), exp: now + LOGOUT_HANDLE_TTL_MS, params };
  return keys.seal(JSON.stringify(contents), additionalData(tenantId, binding));
}

/** The handle's contents, or undefined when it does not open for this tenant and binding, is malformed or has expired. */
export function openLogoutHandle(keys: KeyRing, tenantId: string, binding: string, handle: string, now: number): LogoutHandle | undefined {
  const plain = keys.open(handle, additionalData(tenantId, binding));
  if (plain === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(plain);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const { jti, exp, params } = parsed as Partial<LogoutHandle>;
  if (typeof jti !== 'string' || typeof exp !== 'number' || !params || typeof params !== 'object') return undefined;
  if (now >= exp) return undefined;
  for (const value of Object.values(params)) if (typeof value !== 'string') return undefined;
  return { jti, exp, params };
}
