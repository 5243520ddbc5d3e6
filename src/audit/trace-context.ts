/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for one request, without an OpenTelemetry SDK.
 *
 * - A valid `traceparent` from the browser is continued: same trace id and flags; the gateway makes its own
 *   span id, and the upstream gets `traceparent` with that span id as its parent. `tracestate` is passed on
 *   as it came (when it is well formed and the traceparent was valid).
 * - An absent or invalid `traceparent` starts a new trace (random trace id, sampled flag clear); a
 *   `tracestate` without a valid `traceparent` is dropped, as the specification asks.
 * - The current request's context is kept in an AsyncLocalStorage, so code that has no request at hand (the
 *   token lifecycle's audit lines) still writes the request's trace id.
 *
 * The seam for an OpenTelemetry SDK is `TraceContextProvider`: the default one below parses and generates
 * ids itself; a provider backed by `@opentelemetry/api` would return the active span's context instead
 * (see docs/observability.md). Everything else only uses `TraceContext`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';

export interface TraceContext {
  /** 32 lowercase hex characters, never all zeros. */
  readonly traceId: string;
  /** The gateway's span for this request: 16 lowercase hex characters. */
  readonly spanId: string;
  /** The caller's span (the browser's parent-id) when the trace was continued. */
  readonly parentSpanId: string | undefined;
  /** trace-flags as 2 hex characters (`01`: sampled). */
  readonly flags: string;
  /** The caller's tracestate, passed on unchanged; undefined when absent, malformed or the trace is new. */
  readonly tracestate: string | undefined;
  /** With OpenTelemetry on: the real span being run inside the request (token.refresh, altinn.exchange). */
  readonly child?: SpanRef | undefined;
}

/** A traceparent header's fields. */
export interface ParsedTraceparent {
  version: string;
  traceId: string;
  parentId: string;
  flags: string;
}

/** A named unit of work inside a request (login, callback, token.refresh, altinn.exchange, proxy), as logged. */
export interface SpanRef {
  name: string;
  id: string;
  /** The span this one runs under (the request's span for child spans, the caller's for the request's own). */
  parentId?: string;
}

const HEX = /^[0-9a-f]+$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Parses a traceparent per the specification, section 3.2 and 4.3 (versioning):
 * `version-traceid-parentid-flags`, lowercase hex only; version `ff` is invalid; version `00` has exactly
 * these four fields; a later version may append `-…` fields, which are ignored. All-zero ids are invalid.
 * Several traceparent headers are invalid too.
 */
export function parseTraceparent(header: string | string[] | undefined): ParsedTraceparent | undefined {
  if (typeof header !== 'string') return undefined;
  const value = header.trim();
  if (value.length < 55) return undefined;
  const version = value.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return undefined;
  if (version === '00' ? value.length !== 55 : value.length > 55 && value[55] !== '-') return undefined;
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-') return undefined;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flags)) return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { version, traceId, parentId, flags };
}

/** tracestate list members: `key=value`, at most 32 (section 3.3). */
const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const MAX_TRACESTATE_MEMBERS = 32;
/** Longer than the 512 characters the specification asks to propagate, short enough to stay a header. */
const MAX_TRACESTATE_LENGTH = 4096;

/** The tracestate to pass on: several headers joined with commas, empty members dropped; undefined when malformed. */
export function parseTracestate(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const joined = Array.isArray(header) ? header.join(',') : header;
  if (joined.length > MAX_TRACESTATE_LENGTH) return undefined;
  const members = joined.split(',').map((m) => m.trim()).filter((m) => m !== '');
  if (members.length === 0 || members.length > MAX_TRACESTATE_MEMBERS) return undefined;
  const keys = new Set<string>();
  for (const member of members) {
    const eq = member.indexOf('=');
    if (eq <= 0) return undefined;
    const key = member.slice(0, eq);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(member.slice(eq + 1)) || keys.has(key)) return undefined;
    keys.add(key);
  }
  return members.join(',');
}

/**
 * Random bytes from a pool refilled 4 KiB at a time (one call into the CSPRNG per 256 trace ids, as Node does
 * for randomUUID): a call per id costs several microseconds, the pool a fraction of one.
 */
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const hex = POOL.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

export function newTraceId(): string {
  // 16 random bytes are all zero with probability 2^-128; the loop keeps the invariant anyway.
  for (;;) {
    const id = randomHex(16);
    if (id !== ZERO_TRACE) return id;
  }
}

export function newSpanId(): string {
  for (;;) {
    const id = randomHex(8);
    if (id !== ZERO_SPAN) return id;
  }
}

/** Where a request's trace context comes from. The default parses the headers; an OTel-backed one would read the active span. */
export interface TraceContextProvider {
  fromHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): TraceContext;
}

export const w3cTraceContext: TraceContextProvider = {
  fromHeaders(headers) {
    const parent = parseTraceparent(headers['traceparent']);
    if (parent === undefined) return { traceId: newTraceId(), spanId: newSpanId(), parentSpanId: undefined, flags: '00', tracestate: undefined };
    return { traceId: parent.traceId, spanId: newSpanId(), parentSpanId: parent.parentId, flags: knownFlags(parent.flags), tracestate: parseTracestate(headers['tracestate']) };
  },
};

/** Keeps the flags this gateway knows (sampled 0x01, random 0x02 of Trace Context Level 2); the rest are cleared when propagating. */
function knownFlags(flags: string): string {
  return (parseInt(flags, 16) & 0x03).toString(16).padStart(2, '0');
}

/** The traceparent an upstream gets: the request's trace, the gateway's span as the parent (always version 00). */
export function outgoingTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.flags}`;
}

/**
 * A child span of the request's span: the running OpenTelemetry span of that name when there is one, else an id
 * for log lines only (no timing is recorded without an SDK).
 */
export function childSpan(ctx: TraceContext, name: string): SpanRef {
  if (ctx.child !== undefined && ctx.child.name === name) return ctx.child;
  return { name, id: newSpanId(), parentId: ctx.spanId };
}

/** The request's own span, named. */
export function requestSpan(ctx: TraceContext, name: string): SpanRef {
  return ctx.parentSpanId === undefined ? { name, id: ctx.spanId } : { name, id: ctx.spanId, parentId: ctx.parentSpanId };
}

const storage = new AsyncLocalStorage<TraceContext>();

/** Runs fn with ctx as the current trace context (and everything fn schedules). */
export function runWithTrace<T>(ctx: TraceContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** The trace context of the request being handled, if any. */
export function currentTrace(): TraceContext | undefined {
  return storage.getStore();
}
