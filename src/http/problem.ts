/**
 * The one place where errors become HTTP: each code's status and title, and the RFC 9457 problem body
 * (`application/problem+json`). Bodies never carry stack traces, internal addresses, tokens or secrets.
 */
import type { FastifyBaseLogger, FastifyError } from 'fastify';
import { currentTrace, newTraceId, type TraceContext } from '../audit/trace-context.js';
import { GatewayError, RETRY_AFTER_SECONDS, type ErrorCode } from '../errors.js';

/** The statuses the gateway's own answers use. */
export type ProblemStatus = 400 | 401 | 403 | 404 | 405 | 408 | 413 | 421 | 429 | 431 | 500 | 502 | 503 | 504;

/**
 * A code's status and title. A 503 says "not now": every code answered with it names when to try again, its
 * default Retry-After (RFC 9110 §10.2.3), so a 503 code without one does not compile.
 */
export type ProblemEntry =
  | { status: 503; title: string; retryAfterSeconds: number }
  | { status: Exclude<ProblemStatus, 503>; title: string; retryAfterSeconds?: undefined };

export const PROBLEMS: Record<ErrorCode, ProblemEntry> = {
  login_required: { status: 401, title: 'Login required' },
  session_expired: { status: 401, title: 'Session expired' },
  step_up_required: { status: 401, title: 'Step-up login required' },
  csrf_failed: { status: 403, title: 'CSRF check failed' },
  route_not_found: { status: 404, title: 'Route not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  headers_too_large: { status: 431, title: 'Request headers too large' },
  request_timeout: { status: 408, title: 'Request timeout' },
  invalid_request: { status: 400, title: 'Invalid request' },
  unknown_tenant: { status: 421, title: 'Unknown host' },
  upstream_unavailable: { status: 502, title: 'Upstream unavailable' },
  upstream_timeout: { status: 504, title: 'Upstream timeout' },
  resource_refused: { status: 502, title: 'Token for this API refused' },
  idp_unavailable: { status: 503, title: 'ID-porten unavailable', retryAfterSeconds: RETRY_AFTER_SECONDS.idporten },
  store_unavailable: { status: 503, title: 'Session store unavailable', retryAfterSeconds: RETRY_AFTER_SECONDS.store },
  refresh_in_progress: { status: 503, title: 'Session refresh in progress', retryAfterSeconds: RETRY_AFTER_SECONDS.sessionLock },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal_error: { status: 500, title: 'Internal error' },
};

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  loginUrl?: string;
  /** The request's W3C trace id: what a user quotes to support, and what finds the request's log lines. */
  traceId: string;
}

export function problemBody(code: ErrorCode, detail: string, loginUrl?: string, traceId: string = currentTrace()?.traceId ?? newTraceId()): ProblemBody {
  const { status, title } = PROBLEMS[code];
  const body: ProblemBody = { type: `urn:idporten-bff:problem:${code}`, title, status, detail, code, traceId };
  if (loginUrl !== undefined) body.loginUrl = loginUrl;
  return body;
}

/** The reply methods a problem needs (Fastify's reply, or anything shaped like it). */
export interface ProblemReply {
  code(status: number): ProblemReply;
  header(name: string, value: string): ProblemReply;
  send(payload: unknown): unknown;
  /** Fastify's reply has its request; its trace context names the problem's traceId. */
  readonly request?: { readonly trace?: TraceContext | undefined };
}

/** Codes that mean "log in (again)": their answers point the browser at the login. */
export function needsLogin(code: ErrorCode): boolean {
  return code === 'login_required' || code === 'session_expired';
}

/**
 * The Retry-After (delta-seconds) of a problem with `code`: the error's own value when it has one, else its
 * code's default (every 503 code has one); undefined for codes that do not ask to try again.
 */
export function retryAfterSeconds(code: ErrorCode, own?: number): number | undefined {
  return own ?? PROBLEMS[code].retryAfterSeconds;
}

/**
 * Answers `err` as problem JSON; `loginUrl` is added to the answers that need a login, unless the error names
 * its own (a step-up login asks for more than a plain one).
 */
export function sendError(reply: ProblemReply, err: GatewayError, loginUrl?: string): unknown {
  const body = problemBody(err.code, err.message, err.loginUrl ?? (needsLogin(err.code) ? loginUrl : undefined), traceIdOf(reply));
  reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).header('cache-control', 'no-store');
  if (err.allow) reply.header('allow', err.allow.join(', '));
  const retryAfter = retryAfterSeconds(err.code, err.retryAfterSeconds);
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
  return reply.send(JSON.stringify(body));
}

/** The request's trace id; a request that never reached the trace hooks (a 404 before them) gets a fresh one. */
function traceIdOf(reply: ProblemReply): string {
  return reply.request?.trace?.traceId ?? currentTrace()?.traceId ?? newTraceId();
}

/**
 * Any thrown value as a GatewayError: domain errors as they are, Fastify's own client errors (validation,
 * body limits, bad content) as 4xx, anything else as internal_error, logged without its stack or message
 * reaching the client.
 */
export function asGatewayError(err: unknown, log: FastifyBaseLogger): GatewayError {
  if (err instanceof GatewayError) {
    if (PROBLEMS[err.code].status >= 500) log.warn({ code: err.code, cause: (err.cause as Error | undefined)?.message }, err.message);
    return err;
  }
  const e = err as FastifyError;
  if (e.validation) return new GatewayError('invalid_request', 'The request parameters are not valid.');
  if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError('payload_too_large', 'The request body is too large.');
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) return new GatewayError('invalid_request', 'The request could not be understood.');
  log.error({ err: { type: e.name, message: e.message, code: e.code } }, 'unexpected error');
  return new GatewayError('internal_error', 'Something went wrong in the gateway.');
}
