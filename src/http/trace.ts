/**
 * Trace context at the edge: every request gets one (continued from a valid `traceparent`, new otherwise),
 * as `request.trace`, as `traceId`/`spanId` on every log line of the request, and as the current context
 * (AsyncLocalStorage) for code that has no request at hand, such as the token lifecycle's audit lines.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { runWithTrace, w3cTraceContext, type TraceContext, type TraceContextProvider } from '../audit/trace-context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's W3C trace context (undefined only where the trace hooks are not registered). */
    trace: TraceContext | undefined;
  }
}

/** Registers the hooks on `app` (with fastify-plugin, on the whole server). */
export function traceRequests(app: FastifyInstance, provider: TraceContextProvider = w3cTraceContext): void {
  app.decorateRequest('trace', undefined);
  // Callback hooks: `done` runs inside the context, so the rest of the chain does too.
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const trace = provider.fromHeaders(request.headers);
    request.trace = trace;
    request.log = request.log.child({ traceId: trace.traceId, spanId: trace.spanId });
    reply.log = request.log;
    runWithTrace(trace, done);
  });
  // A body is read from the socket's events, outside the context: it is entered again before the handler.
  app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.trace === undefined) done();
    else runWithTrace(request.trace, done);
  });
}
