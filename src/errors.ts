/**
 * The gateway's error vocabulary, defined once: every failure a client may see has a stable `code`.
 * These errors carry no HTTP: `src/http/problem.ts` maps each code to a status and an RFC 9457 body,
 * in one place, at the edge.
 */

export const ERROR_CODES = [
  'login_required',
  'session_expired',
  'csrf_failed',
  'route_not_found',
  'method_not_allowed',
  'payload_too_large',
  'invalid_request',
  'unknown_tenant',
  'upstream_unavailable',
  'upstream_timeout',
  'idp_unavailable',
  'store_unavailable',
  'refresh_in_progress',
  'rate_limited',
  'internal_error',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** A failure with a stable code and a client-safe detail (never a token, secret or internal address). */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  /** Methods the resource allows (method_not_allowed). */
  readonly allow?: string[];
  /** Seconds after which trying again may succeed (rate_limited, refresh_in_progress). */
  readonly retryAfterSeconds?: number;

  constructor(code: ErrorCode, detail: string, opts: { cause?: unknown; allow?: string[]; retryAfterSeconds?: number } = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    if (opts.allow !== undefined) this.allow = opts.allow;
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

/** The session store could not be reached or failed (thrown by the session layer). */
export class StoreUnavailableError extends GatewayError {
  constructor(message = 'The session store could not be reached.', options?: { cause?: unknown }) {
    super('store_unavailable', message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * The session lock could not be had in time: another request (on this or another instance) holds it, usually
 * because it is refreshing. Not a store outage.
 */
export class LockTimeoutError extends GatewayError {
  readonly reason: 'lock_timeout' | 'lock_lost' = 'lock_timeout';

  constructor(message = 'A token refresh for this session is still in progress; try again shortly.', retryAfterSeconds = 1) {
    super('refresh_in_progress', message, { retryAfterSeconds });
    this.name = 'LockTimeoutError';
  }
}

/**
 * The holder lost the lock before it finished: whatever it had not written yet must not be written. A kind of
 * LockTimeoutError, so callers that map one map both: the lock could not be held in time.
 */
export class LockLostError extends LockTimeoutError {
  override readonly reason = 'lock_lost';

  constructor(message = 'The session lock was lost before its holder finished; try again shortly.', retryAfterSeconds = 1) {
    super(message, retryAfterSeconds);
    this.name = 'LockLostError';
  }
}

export const sessionExpired = (): GatewayError => new GatewayError('session_expired', 'The session has ended; log in again.');
export const loginRequired = (): GatewayError => new GatewayError('login_required', 'No live session; log in first.');
