/** The types of the tracing seam (`otel.ts`), apart so that `otel-sdk.ts` needs nothing else of it. */
import type { TraceContext } from './trace-context.js';

/** The outcome vocabulary of the audit log (docs/observability.md). */
export type SpanOutcome = 'success' | 'failure' | 'rejected' | 'cancelled';

/** The only attributes a span gets. */
export interface SpanAttributes {
  route?: string | undefined;
  tenant?: string | undefined;
  method?: string | undefined;
  status?: number | undefined;
  outcome?: SpanOutcome | undefined;
}

/** One request's server span. */
export interface ServerSpan {
  /** The request's trace context, with the server span's ids. */
  readonly trace: TraceContext;
  /** Runs fn with the server span as the active span (and the trace context as the current one). */
  run<T>(fn: () => T): T;
  /** Names the tenant once it is known (client spans of the request copy it). */
  setTenant(tenant: string | undefined): void;
  /** Ends the span once; later calls do nothing. */
  end(attrs: SpanAttributes): void;
}

/** What the rest of the gateway uses when tracing is on. */
export interface Telemetry {
  /** Starts a request's server span, continuing a valid `traceparent` from the headers. */
  startServerSpan(headers: Readonly<Record<string, string | string[] | undefined>>, method: string, route: string): ServerSpan;
  /** Runs fn in a child span of the active one (an internal span named `name`), ended with fn's outcome. */
  inSpan<T>(name: string, attrs: SpanAttributes, fn: () => Promise<T>): Promise<T>;
  /** Flushes the spans still buffered and unregisters everything. */
  shutdown(): Promise<void>;
}
