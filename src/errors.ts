/**
 * The gateway's error vocabulary, defined once: every failure a client may see has a stable `code`.
 * These errors carry no HTTP: `src/http/problem.ts` maps each code to a status and an RFC 9457 body,
 * in one place, at the edge.
 */

export const ERROR_CODES = [
  'login_required',
  'session_expired',
  'step_up_required',
  'csrf_failed',
  'route_not_found',
  'method_not_allowed',
  'payload_too_large',
  'headers_too_large',
  'request_timeout',
  'invalid_request',
  'unknown_tenant',
  'upstream_unavailable',
  'upstream_timeout',
  'resource_refused',
  'idp_unavailable',
  'store_unavailable',
  'refresh_in_progress',
  'rate_limited',
  'internal_error',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Whole seconds after which trying again may succeed, per cause: the Retry-After (RFC 9110 §10.2.3) of every
 * 503 the gateway answers. The code table in `src/http/problem.ts` gives each 503 code its default from here; a
 * GatewayError that knows better carries its own `retryAfterSeconds`, which wins.
 */
export const RETRY_AFTER_SECONDS = {
  /**
   * The session store. The Redis client tries to reconnect at most every 1-2 s (1 s behind Sentinel, 2 s on one
   * server or a Cluster), so after a blip or a failover the store is usually back within a second or two.
   */
  store: 2,
  /**
   * ID-porten: the pause the gateway keeps itself before asking it again to refresh a session it failed to
   * refresh (the cooldown in `tokens/refresh.ts`); an outage of ID-porten seldom ends within seconds.
   */
  idporten: 5,
  /**
   * A session lock another request holds, usually to refresh: a refresh takes well under a second. A holder that
   * died blocks the session for at most one lease (4 s on Redis), which the lock itself may name instead.
   */
  sessionLock: 1,
  /**
   * The server is closing: its answer closes the connection, and the retry, on a new one, reaches another
   * instance at once (or this one once it has restarted).
   */
  closing: 1,
  /**
   * Not ready (/readyz): the store or a tenant's provider metadata is missing. The public answer must not tell
   * which, so it is the longer of their two values, whatever the cause.
   */
  notReady: 5,
} as const;

/** A failure with a stable code and a client-safe detail (never a token, secret or internal address). */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  /** Methods the resource allows (method_not_allowed). */
  readonly allow?: string[];
  /** Seconds after which trying again may succeed, when this error knows better than its code's default. */
  readonly retryAfterSeconds?: number;
  /** Where this error's login starts, when it needs one of its own (step_up_required). */
  readonly loginUrl?: string;

  constructor(code: ErrorCode, detail: string, opts: { cause?: unknown; allow?: string[]; retryAfterSeconds?: number; loginUrl?: string } = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    if (opts.allow !== undefined) this.allow = opts.allow;
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
    if (opts.loginUrl !== undefined) this.loginUrl = opts.loginUrl;
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

  constructor(message = 'A token refresh for this session is still in progress; try again shortly.', retryAfterSeconds: number = RETRY_AFTER_SECONDS.sessionLock) {
    super('refresh_in_progress', message, { retryAfterSeconds });
    this.name = 'LockTimeoutError';
  }
}

/**
 * The holder lost the lock before it finished (its lease lapsed, or it held it too long): the next waiter may go.
 * What the holder still writes is decided by the store's compare-and-set, not by the lock. A kind of
 * LockTimeoutError, so callers that map one map both: the lock could not be held in time.
 */
export class LockLostError extends LockTimeoutError {
  override readonly reason = 'lock_lost';

  constructor(message = 'The session lock was lost before its holder finished; try again shortly.', retryAfterSeconds: number = RETRY_AFTER_SECONDS.sessionLock) {
    super(message, retryAfterSeconds);
    this.name = 'LockLostError';
  }
}

export const sessionExpired = (): GatewayError => new GatewayError('session_expired', 'The session has ended; log in again.');
export const loginRequired = (): GatewayError => new GatewayError('login_required', 'No live session; log in first.');
/** The session's assurance level is below what the route asks for; `loginUrl` logs in again at that level. */
export const stepUpRequired = (level: string, loginUrl: string): GatewayError =>
  new GatewayError('step_up_required', `This call needs a login at ${level}; log in again at that level.`, { loginUrl });
