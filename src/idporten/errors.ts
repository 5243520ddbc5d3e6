/**
 * Why talking to ID-porten failed, in the gateway's words. The routes and the token service map these
 * to responses: `rejected` means the provider or its answer cannot be trusted or accepted (a 4xx for the
 * user, session not created / ended), `invalid_grant` means the refresh chain is dead, `unavailable`
 * means the provider could not be reached or failed (503, nothing ended), `invalid_target` means it will not
 * issue a token for the resource asked for (RFC 8707 section 2; the refresh chain lives on).
 */
export type OidcFailureKind = 'rejected' | 'invalid_grant' | 'unavailable' | 'invalid_target';

export class OidcError extends Error {
  readonly kind: OidcFailureKind;
  /** A short, log-safe reason (never a token or code). */
  readonly reason: string;

  constructor(kind: OidcFailureKind, reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'OidcError';
    this.kind = kind;
    this.reason = reason;
  }
}

/** Sorts an openid-client / fetch error into the kinds above. */
export function classifyProviderError(err: unknown, context: string): OidcError {
  if (err instanceof OidcError) return err;
  const e = err as { name?: string; code?: string; error?: string; status?: number; cause?: unknown; message?: string };
  if (e?.name === 'ResponseBodyError' || typeof e?.error === 'string') {
    if (e.error === 'invalid_grant') return new OidcError('invalid_grant', `${context}: invalid_grant`, { cause: err });
    if (e.error === 'invalid_target') return new OidcError('invalid_target', `${context}: invalid_target`, { cause: err });
    if (typeof e.status === 'number' && e.status >= 500) return new OidcError('unavailable', `${context}: provider answered ${e.status}`, { cause: err });
    return new OidcError('rejected', `${context}: provider refused (${sanitize(e.error)})`, { cause: err });
  }
  if (e?.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || e?.code === 'OAUTH_RESPONSE_IS_NOT_JSON') {
    const status = (e.cause as { status?: number } | undefined)?.status;
    if (typeof status === 'number' && status >= 500) return new OidcError('unavailable', `${context}: provider answered ${status}`, { cause: err });
  }
  if (e?.name === 'TypeError' || e?.name === 'AbortError' || e?.name === 'TimeoutError' || e?.code === 'OAUTH_TIMEOUT') {
    return new OidcError('unavailable', `${context}: provider unreachable`, { cause: err });
  }
  if (typeof e?.code === 'string' && e.code.startsWith('OAUTH_')) {
    // openid-client's message is generic ("invalid response encountered"); its cause names the check that failed.
    const detail = e.cause instanceof Error ? e.cause.message : e.message;
    return new OidcError('rejected', `${context}: ${e.code} ${sanitize(detail)}`, { cause: err });
  }
  return new OidcError('unavailable', `${context}: ${sanitize(e?.message)}`, { cause: err });
}

/** Keeps reasons short and free of anything that looks like a token. */
function sanitize(text: unknown): string {
  if (typeof text !== 'string') return 'unknown';
  return text.replace(/[A-Za-z0-9_-]{20,}(\.[A-Za-z0-9_-]+)*/g, '[redacted]').slice(0, 200);
}
