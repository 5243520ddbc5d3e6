/**
 * The OpenTelemetry SDK behind `otel.ts`: loaded with a dynamic import only when tracing is switched on, so a
 * gateway without tracing never loads a byte of it.
 *
 * - Server spans: the request hooks (`http/trace.ts`) call `startServerSpan`. A valid `traceparent` is
 *   continued by the same rules as without the SDK (`parseTraceparent`, `parseTracestate`): the browser's trace
 *   id, its span as the parent. The trace flags are the sampler's decision (`OTEL_TRACES_SAMPLER`, by default
 *   parent-based, always on for a new trace).
 * - Internal spans: `inSpan` (token refresh, Altinn exchange); the audit line written inside names that span.
 * - Client spans: every undici request (the proxy's to the upstream, `fetch` to ID-porten and Altinn) made
 *   while a recording gateway span is active, found through undici's diagnostics channels. Its `traceparent`
 *   is set (replacing the one `proxy/headers.ts` wrote with the server span as the parent) to name the client
 *   span as the parent, so the upstream's span hangs under the gateway's client span.
 *
 * Attributes: `http.request.method`, `http.route` (the pattern), `http.response.status_code`, `bff.tenant`,
 * `bff.outcome`. Nothing else: no URL, query, header, token, code, cookie or user identity.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  context,
  createContextKey,
  createTraceState,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NodeTracerProvider,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import type { ServerSpan, SpanAttributes, SpanOutcome } from './otel-types.js';
import { currentTrace, parseTraceparent, parseTracestate, runWithTrace, type TraceContext } from './trace-context.js';

const NAME = 'idporten-bff';

/** What client spans copy from the request they are made in. */
interface RequestInfo {
  route: string;
  tenant: string | undefined;
}
const REQUEST_INFO = createContextKey('idporten-bff request');

export function outcomeOf(status: number): SpanOutcome {
  if (status === 499) return 'cancelled';
  if (status >= 500) return 'failure';
  return status >= 400 ? 'rejected' : 'success';
}

function attributes(attrs: SpanAttributes): Attributes {
  const out: Attributes = {};
  if (attrs.method !== undefined) out['http.request.method'] = attrs.method;
  if (attrs.route !== undefined) out['http.route'] = attrs.route;
  if (attrs.status !== undefined) out['http.response.status_code'] = attrs.status;
  if (attrs.tenant !== undefined) out['bff.tenant'] = attrs.tenant;
  if (attrs.outcome !== undefined) out['bff.outcome'] = attrs.outcome;
  return out;
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

export interface SdkOptions {
  env: NodeJS.ProcessEnv;
  exporters: Array<'otlp' | 'console'>;
  exporter?: unknown;
}

export async function startSdk(opts: SdkOptions): Promise<Sdk> {
  const processors: SpanProcessor[] = [];
  if (opts.exporter !== undefined) processors.push(new SimpleSpanProcessor(opts.exporter as SpanExporter));
  else {
    // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT; the processor OTEL_BSP_*.
    if (opts.exporters.includes('otlp')) processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
    if (opts.exporters.includes('console')) processors.push(new BatchSpanProcessor(new ConsoleSpanExporter()));
  }
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': opts.env.OTEL_SERVICE_NAME?.trim() || NAME }))
    .merge(await detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  // The global tracer provider, the W3C propagator and the AsyncLocalStorage context manager.
  provider.register();
  return new Sdk(provider, provider.getTracer(NAME));
}

/** undici's request object, as far as the diagnostics channels show it (v6 and v7: headers as a flat array). */
interface UndiciRequest {
  method: string;
  headers: string[] | string;
  addHeader?: (name: string, value: string) => unknown;
}

export class Sdk {
  readonly #provider: NodeTracerProvider;
  readonly #tracer: Tracer;
  readonly #clientSpans = new WeakMap<object, Span>();
  readonly #channels: Array<[string, (message: unknown) => void]>;

  constructor(provider: NodeTracerProvider, tracer: Tracer) {
    this.#provider = provider;
    this.#tracer = tracer;
    this.#channels = [
      ['undici:request:create', (m) => this.#requestCreated((m as { request: UndiciRequest }).request)],
      ['undici:request:headers', (m) => this.#responseHeaders(m as { request: object; response: { statusCode: number } })],
      ['undici:request:trailers', (m) => this.#responseEnded((m as { request: object }).request)],
      ['undici:request:error', (m) => this.#requestFailed((m as { request: object }).request)],
    ];
    for (const [name, fn] of this.#channels) subscribe(name, fn);
  }

  startServerSpan(headers: Readonly<Record<string, string | string[] | undefined>>, method: string, route: string): ServerSpan {
    const parent = parseTraceparent(headers['traceparent']);
    const tracestate = parent === undefined ? undefined : parseTracestate(headers['tracestate']);
    const parentContext =
      parent === undefined
        ? ROOT_CONTEXT
        : trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.parentId,
            traceFlags: parseInt(parent.flags, 16) & 0x01,
            isRemote: true,
            ...(tracestate === undefined ? {} : { traceState: createTraceState(tracestate) }),
          });
    const span = this.#tracer.startSpan(`${method} ${route}`, { kind: SpanKind.SERVER, attributes: attributes({ method, route }) }, parentContext);
    const ids = span.spanContext();
    // The sampler decides the sampled flag; the random flag (Trace Context level 2) stays the caller's.
    const flags = (ids.traceFlags & 0x01) | (parent === undefined ? 0 : parseInt(parent.flags, 16) & 0x02);
    const traceContext: TraceContext = { traceId: ids.traceId, spanId: ids.spanId, parentSpanId: parent?.parentId, flags: hex2(flags), tracestate };
    const info: RequestInfo = { route, tenant: undefined };
    const active = trace.setSpan(parentContext, span).setValue(REQUEST_INFO, info);
    let ended = false;
    return {
      trace: traceContext,
      run: (fn) => context.with(active, () => runWithTrace(traceContext, fn)),
      setTenant: (tenant) => {
        info.tenant = tenant;
      },
      end: (attrs) => {
        if (ended) return;
        ended = true;
        const status = attrs.status;
        span.setAttributes(attributes({ tenant: info.tenant, ...attrs, outcome: attrs.outcome ?? (status === undefined ? undefined : outcomeOf(status)) }));
        if (status !== undefined && status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
    };
  }

  async inSpan<T>(name: string, attrs: SpanAttributes, fn: () => Promise<T>): Promise<T> {
    const parentContext = context.active();
    const parentSpan = trace.getSpan(parentContext);
    const info = parentContext.getValue(REQUEST_INFO) as RequestInfo | undefined;
    const span = this.#tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes: attributes({ route: info?.route, tenant: info?.tenant, ...attrs }) }, parentContext);
    const active = trace.setSpan(parentContext, span);
    const request = currentTrace();
    const run = () => context.with(active, fn);
    try {
      // Audit lines written inside name this span (see childSpan in trace-context.ts).
      const child = { name, id: span.spanContext().spanId, parentId: parentSpan?.spanContext().spanId ?? request?.spanId };
      const result = await (request === undefined ? run() : runWithTrace({ ...request, child }, run));
      span.setAttribute('bff.outcome', 'success');
      return result;
    } catch (err) {
      span.setAttribute('bff.outcome', 'failure');
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  }

  #requestCreated(request: UndiciRequest): void {
    const parentContext = context.active();
    const parentSpan = trace.getSpan(parentContext);
    if (parentSpan === undefined || !parentSpan.isRecording()) return;
    const info = parentContext.getValue(REQUEST_INFO) as RequestInfo | undefined;
    const method = String(request.method);
    const span = this.#tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes: attributes({ method, route: info?.route, tenant: info?.tenant }) }, parentContext);
    const ids = span.spanContext();
    const flags = currentTrace()?.flags ?? hex2(ids.traceFlags & 0x01);
    setHeader(request, 'traceparent', `00-${ids.traceId}-${ids.spanId}-${flags}`);
    this.#clientSpans.set(request, span);
  }

  #responseHeaders({ request, response }: { request: object; response: { statusCode: number } }): void {
    const span = this.#clientSpans.get(request);
    if (span === undefined) return;
    span.setAttributes(attributes({ status: response.statusCode, outcome: outcomeOf(response.statusCode) }));
    if (response.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  }

  #responseEnded(request: object): void {
    const span = this.#clientSpans.get(request);
    if (span === undefined) return;
    this.#clientSpans.delete(request);
    span.end();
  }

  #requestFailed(request: object): void {
    const span = this.#clientSpans.get(request);
    if (span === undefined) return;
    this.#clientSpans.delete(request);
    span.setAttribute('bff.outcome', 'failure');
    span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }

  async shutdown(): Promise<void> {
    for (const [name, fn] of this.#channels) unsubscribe(name, fn);
    try {
      await this.#provider.shutdown();
    } finally {
      trace.disable();
      context.disable();
      propagation.disable();
    }
  }
}

/** Sets one header on an undici request, replacing a value already there (never a second header of the name). */
function setHeader(request: UndiciRequest, name: string, value: string): void {
  if (Array.isArray(request.headers)) {
    for (let i = 0; i < request.headers.length; i += 2) {
      if (String(request.headers[i]).toLowerCase() === name) {
        request.headers[i + 1] = value;
        return;
      }
    }
    request.headers.push(name, value);
  } else if (typeof request.headers === 'string') {
    const lines = request.headers.split('\r\n').filter((line) => line !== '' && !line.toLowerCase().startsWith(`${name}:`));
    request.headers = `${[...lines, `${name}: ${value}`].join('\r\n')}\r\n`;
  } else request.addHeader?.(name, value);
}
