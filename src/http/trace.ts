/**
 * Trace context at the edge: every request gets one (continued from a valid `traceparent`, new otherwise),
 * as `request.trace`, as `traceId`/`spanId` on every log line of the request, and as the current context
 * (AsyncLocalStorage) for code that has no request at hand, such as the token lifecycle's audit lines.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { telemetry, type ServerSpan, type Telemetry } from '../audit/otel.js';
import { currentTrace, runWithTrace, w3cTraceContext, type TraceContext, type TraceContextProvider } from '../audit/trace-context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's W3C trace context (undefined only where the trace hooks are not registered). */
    trace: TraceContext | undefined;
  }
}

/**
 * Registers the hooks on `app` (with fastify-plugin, on the whole server). With OpenTelemetry on (started before
 * the server is built, see `audit/otel.ts`) every request is a server span instead, and `request.trace` carries
 * its ids.
 */
export function traceRequests(app: FastifyInstance, provider: TraceContextProvider = w3cTraceContext, otel: Telemetry | undefined = telemetry()): void {
  app.decorateRequest('trace', undefined);
  if (otel !== undefined) return traceWithSpans(app, otel);
  // Callback hooks: `done` runs inside the context, so the rest of the chain does too.
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const trace = provider.fromHeaders(request.headers);
    request.trace = trace;
    bindTrace(request, reply, trace);
    runWithTrace(trace, done);
  });
  // Before the handler the request's context is made sure of: should a body's reading (socket events) have
  // left it, it is entered again. Node keeps it across them (a test sends a late body), so this is a look-up.
  app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.trace === undefined || currentTrace() === request.trace) done();
    else runWithTrace(request.trace, done);
  });
}

/** The same, with a server span per request: started in onRequest, active through the handler, ended with the answer. */
function traceWithSpans(app: FastifyInstance, otel: Telemetry): void {
  const spans = new WeakMap<FastifyRequest, ServerSpan>();
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const span = otel.startServerSpan(request.headers, request.method, request.routeOptions.url ?? 'unmatched');
    spans.set(request, span);
    request.trace = span.trace;
    bindTrace(request, reply, span.trace);
    span.run(done);
  });
  app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const span = spans.get(request);
    if (span === undefined) return done();
    span.setTenant(request.bff?.tenant?.id);
    span.run(done);
  });
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    spans.get(request)?.end({ status: reply.statusCode, tenant: request.bff?.tenant?.id });
    done();
  });
  app.addHook('onRequestAbort', (request: FastifyRequest, done: HookHandlerDoneFunction) => {
    spans.get(request)?.end({ status: 499, tenant: request.bff?.tenant?.id });
    done();
  });
}

/**
 * Puts the trace ids on the request's own logger, which Fastify makes per request anyway: setting its bindings
 * costs a fraction of a grandchild logger per request. A logger without setBindings gets a child instead.
 */
function bindTrace(request: FastifyRequest, reply: FastifyReply, trace: TraceContext): void {
  const bindings = { traceId: trace.traceId, spanId: trace.spanId };
  const log = request.log as FastifyRequest['log'] & { setBindings?: (bindings: Record<string, string>) => void };
  if (typeof log.setBindings === 'function' && log !== request.server.log) {
    log.setBindings(bindings);
    return;
  }
  request.log = request.log.child(bindings);
  reply.log = request.log;
}
