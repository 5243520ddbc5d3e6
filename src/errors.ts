/**
 * Every error the gateway shows a client, defined once, with a stable `code` (RFC 9457 problem details).
 * Bodies never carry stack traces, internal addresses, tokens or secrets.
 */

export const PROBLEMS = {
  login_required: { status: 401, title: 'Login required' },
  session_expired: { status: 401, title: 'Session expired' },
  csrf_failed: { status: 403, title: 'CSRF check failed' },
  route_not_found: { status: 404, title: 'Route not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  invalid_request: { status: 400, title: 'Invalid request' },
  unknown_tenant: { status: 421, title: 'Unknown host' },
  upstream_unavailable: { status: 502, title: 'Upstream unavailable' },
  upstream_timeout: { status: 504, title: 'Upstream timeout' },
  idp_unavailable: { status: 503, title: 'ID-porten unavailable' },
  store_unavailable: { status: 503, title: 'Session store unavailable' },
  refresh_in_progress: { status: 503, title: 'Session refresh in progress' },
  internal_error: { status: 500, title: 'Internal error' },
} as const;

export type ProblemCode = keyof typeof PROBLEMS;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  loginUrl?: string;
}

/** An error that maps one-to-one onto a problem response. Throw it anywhere below a route. */
export class GatewayError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly loginUrl?: string;
  /** Extra response headers, e.g. Allow for 405. */
  readonly headers: Record<string, string>;

  constructor(code: ProblemCode, detail: string, opts: { loginUrl?: string; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = PROBLEMS[code].status;
    if (opts.loginUrl !== undefined) this.loginUrl = opts.loginUrl;
    this.headers = opts.headers ?? {};
  }
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemBody(code: ProblemCode, detail: string, loginUrl?: string): ProblemBody {
  const { status, title } = PROBLEMS[code];
  const body: ProblemBody = { type: `urn:idporten-bff:problem:${code}`, title, status, detail, code };
  if (loginUrl !== undefined) body.loginUrl = loginUrl;
  return body;
}

/** Minimal reply shape so this module stays free of Fastify. */
export interface ProblemReply {
  code(status: number): ProblemReply;
  header(name: string, value: string): ProblemReply;
  send(payload: unknown): unknown;
}

export function sendProblem(reply: ProblemReply, code: ProblemCode, detail: string, opts: { loginUrl?: string; headers?: Record<string, string> } = {}): unknown {
  const body = problemBody(code, detail, opts.loginUrl);
  reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).header('cache-control', 'no-store');
  for (const [k, v] of Object.entries(opts.headers ?? {})) reply.header(k, v);
  return reply.send(JSON.stringify(body));
}

export function sendGatewayError(reply: ProblemReply, err: GatewayError): unknown {
  const opts: { loginUrl?: string; headers?: Record<string, string> } = { headers: err.headers };
  if (err.loginUrl !== undefined) opts.loginUrl = err.loginUrl;
  return sendProblem(reply, err.code, err.message, opts);
}
