
import { childSpan, currentTrace, requestSpan, type SpanRef, type TraceContext } from './trace-context.js';

/** The audit events of the contract. One JSON line each, never carrying a raw token, code, cookie or pid. */
export type AuditEvent =
  | 'login.start'
  | 'login.success'
  | 'login.failure'
  | 'login.cancelled'
  | 'token.refresh'
  | 'token.refresh.failure'
  | 'token.exchange'
  | 'logout'
  | 'csrf.reject'
  | 'proxy';

/** How a session ended: the user (rp, all, user), ID-porten (frontchannel, backchannel), an operator (admin), time (expired, idle), a new login (replaced); a refresh token ID-porten no longer accepts is `expired` with a reason. */
export type LogoutChannel = 'rp' | 'frontchannel' | 'backchannel' | 'expired' | 'idle' | 'all' | 'user' | 'admin' | 'replaced';

export interface AuditFields {
  tenant: string;
  /** Hash of the session's store key (never the cookie). */
  session?: string | undefined;
  sub?: string | undefined;
  [field: string]: unknown;
}

export interface AuditLog {
  /** `trace`: the request's trace context, for a line written outside its async context (default: the current one). */
  event(name: AuditEvent, fields: AuditFields, trace?: TraceContext): void;
}

/** The part of a pino logger the audit log writes through. */
export interface ChildLogger {
  child(bindings: Record<string, unknown>): { info(fields: object, message: string): void };
}

/**
 * Writes each event as one line. Inside a request the line also carries the request's `traceId` and a `span`
 * (see spanFor), so a reviewer can put an audit line next to the upstream's and the browser's traces.
 */
export function createAuditLog(logger: ChildLogger, trace: () => TraceContext | undefined = currentTrace): AuditLog {
  const log = logger.child({ audit: true });
  return {
    event(name, fields, context) {
      const ctx = context ?? trace();
      if (ctx === undefined) log.info({ event: name, ...fields }, name);
      else log.info({ event: name, ...fields, traceId: ctx.traceId, span: spanFor(name, fields, ctx) }, name);
    },
  };
}

/**
 * The span an event belongs to. The request's own span for what the request is (the login redirect, the
 * callback, a proxied call, a logout, a CSRF refusal); a child span of it for work done on the way (a token
 * refresh, an Altinn exchange). Its id is the one an upstream sees as the parent in `traceparent`.
 */
export function spanFor(name: AuditEvent, fields: AuditFields, ctx: TraceContext): SpanRef {
  switch (name) {
    case 'login.start':
      return requestSpan(ctx, 'login');
    case 'login.failure':
      return requestSpan(ctx, fields.stage === 'start' ? 'login' : 'callback');
    case 'login.success':
    case 'login.cancelled':
      return requestSpan(ctx, 'callback');
    case 'token.refresh':
    case 'token.refresh.failure':
      return childSpan(ctx, 'token.refresh');
    case 'token.exchange':
      return childSpan(ctx, 'altinn.exchange');
    case 'logout':
      return requestSpan(ctx, 'logout');
    case 'csrf.reject':
      return requestSpan(ctx, 'csrf');
    case 'proxy':
      return requestSpan(ctx, 'proxy');
  }
}
