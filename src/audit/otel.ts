/**
 * OpenTelemetry, switched on by the standard `OTEL_*` environment variables and off by default.
 *
 * Off (the default) nothing of OpenTelemetry is loaded: `inSpan` runs its function as it is and the hand-made
 * W3C trace context (`trace-context.ts`, `http/trace.ts`) works alone. On, `startTelemetry` imports the SDK
 * (`otel-sdk.ts`, the only file that imports `@opentelemetry/*`), registers it globally, and from then on the
 * request hooks open a server span per request, the token lifecycle's refresh and exchanges are spans, and
 * every outgoing undici request made inside a request (the upstream, ID-porten, Altinn) is a client span
 * whose id the receiver sees as the parent in its `traceparent`.
 *
 * Spans carry only the route (pattern), tenant, method, status and outcome: never tokens, codes, cookies,
 * URLs with their queries or a user's identity.
 */
import type { SpanAttributes, Telemetry } from './otel-types.js';

export type { ServerSpan, SpanAttributes, SpanOutcome, Telemetry } from './otel-types.js';

let active: Telemetry | undefined;

/** The running telemetry, or undefined when tracing is off. */
export function telemetry(): Telemetry | undefined {
  return active;
}

/** Runs fn in a span when tracing is on; off, it is fn() and nothing else. */
export function inSpan<T>(name: string, attrs: SpanAttributes, fn: () => Promise<T>): Promise<T> {
  return active === undefined ? fn() : active.inSpan(name, attrs, fn);
}

/**
 * Whether the environment asks for trace export: `OTEL_SDK_DISABLED=true` wins; then `OTEL_TRACES_EXPORTER`
 * (`otlp` or `console` switch it on, `none` off); otherwise an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) switches it on. Unlike the specification's default exporter (`otlp`),
 * nothing set means off: a gateway exports spans only when told where to.
 */
export function tracingExporters(env: NodeJS.ProcessEnv): Array<'otlp' | 'console'> {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return [];
  const listed = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
  if (listed.length > 0) {
    if (listed.includes('none')) return [];
    return [...new Set(listed.filter((s): s is 'otlp' | 'console' => s === 'otlp' || s === 'console'))];
  }
  const endpoint = (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim();
  return endpoint !== '' ? ['otlp'] : [];
}

export interface StartTelemetryOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Export to this exporter (an `@opentelemetry/sdk-trace-base` SpanExporter, e.g. `InMemorySpanExporter`) with a
   * simple processor instead of the ones the environment names; tracing is then on whatever the environment says.
   */
  exporter?: unknown;
}

/**
 * Starts tracing when the environment (or a given exporter) asks for it, before the server is built; returns
 * the telemetry, or undefined when tracing stays off (nothing of OpenTelemetry is then imported).
 */
export async function startTelemetry(opts: StartTelemetryOptions = {}): Promise<Telemetry | undefined> {
  if (active !== undefined) return active;
  const env = opts.env ?? process.env;
  const exporters = tracingExporters(env);
  if (opts.exporter === undefined && exporters.length === 0) return undefined;
  const { startSdk } = await import('./otel-sdk.js');
  const started = await startSdk({ env, exporters, exporter: opts.exporter });
  active = {
    startServerSpan: started.startServerSpan.bind(started),
    inSpan: started.inSpan.bind(started),
    shutdown: async () => {
      active = undefined;
      await started.shutdown();
    },
  };
  return active;
}
