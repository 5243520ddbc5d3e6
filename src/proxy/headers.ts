import type { IncomingHttpHeaders } from 'node:http';
import { outgoingTraceparent, w3cTraceContext, type TraceContext } from '../audit/trace-context.js';

/*
 * Request headers an upstream gets (an allow-list; every other header the browser sent stays behind):
 *
 *   content negotiation   accept, accept-language, accept-encoding
 *   the body              content-type, content-length, content-disposition, content-encoding
 *   conditionals, ranges  if-match, if-none-match, if-modified-since, if-unmodified-since, if-range, range
 *   the client            user-agent
 *   tracing               x-request-id
 *   per route             the names in routes[].forwardHeaders
 *
 * Set by the gateway itself, whatever the browser sent:
 *   host                  the upstream's host
 *   authorization         Bearer <the session's token>, or DPoP <token> on a DPoP route (dpop-upstream.ts)
 *   dpop                  the DPoP proof, on a DPoP route
 *   x-forwarded-for       the client address; appended to the chain when the peer is a trusted proxy
 *                         (server.trustProxy), otherwise replacing anything the client sent
 *   x-forwarded-proto     the tenant's public scheme (from publicUrl)
 *   x-forwarded-host      the tenant's public host (from publicUrl)
 *   traceparent           W3C Trace Context: the request's trace id with the gateway's span as the parent
 *                         (a valid browser traceparent is continued, otherwise the trace is the gateway's)
 *   tracestate            the browser's, passed on unchanged when its traceparent was valid
 *
 * Never forwarded, also not through forwardHeaders: the browser's own authorization, cookie, x-csrf,
 * hop-by-hop headers and the names listed in Connection, proxy-*, forwarded, x-real-ip and the
 * client's x-forwarded-*. A name listed in Connection is dropped even when it is on the list.
 * Expect and Transfer-Encoding are not forwarded either: Node has already answered 100-continue,
 * undici refuses Expect, and undici frames the streamed body itself (Content-Length when the
 * browser sent one, chunked otherwise).
 */
export const FORWARDED_REQUEST_HEADERS: readonly string[] = [
  'accept', 'accept-language', 'accept-encoding',
  'content-type', 'content-length', 'content-disposition', 'content-encoding',
  'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'range',
  'user-agent',
  'x-request-id',
];

/** Set from the request's trace context, never copied from the browser (also not through forwardHeaders). */
const TRACE_HEADERS = new Set(['traceparent', 'tracestate']);

/** Hop-by-hop headers (RFC 9110 section 7.6.1) plus their legacy companions: they describe one connection, never the message. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'];

/**
 * Names no route can add with forwardHeaders: credentials meant for the gateway, the CSRF marker,
 * framing the proxy owns, and addressing the gateway sets itself.
 */
const NEVER_FORWARDED = new Set([
  ...HOP_BY_HOP,
  'authorization', 'dpop', 'cookie', 'x-csrf', 'host', 'expect', 'forwarded', 'x-real-ip',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host',
]);

/** Whether `name` may be forwarded by a route's forwardHeaders (for configuration checks too). */
export function isForwardableHeaderName(name: string): boolean {
  const lower = name.trim().toLowerCase();
  return /^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(lower) && !NEVER_FORWARDED.has(lower) && !lower.startsWith('proxy-') && !lower.startsWith('x-forwarded-');
}

/** Response headers the browser must not get from an upstream: its cookies, and CORS grants (the gateway grants none). */
const UPSTREAM_ONLY = ['set-cookie', 'set-cookie2', 'proxy-authenticate'];

/**
 * Cache instructions aimed at CDNs and other shared caches (RFC 9213 targeted fields and the vendor
 * forms before it): such a cache obeys them in place of Cache-Control, so they would undo `private`.
 */
const SHARED_CACHE_CONTROL = ['cdn-cache-control', 'surrogate-control', 'cloudflare-cdn-cache-control', 'edge-control'];

/** Response headers that never reach the browser (besides those the upstream's Connection lists and CORS grants). */
const NEVER_TO_BROWSER: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...UPSTREAM_ONLY, ...SHARED_CACHE_CONTROL]);

/** Cache-Control directives that permit or tune storage in a shared cache. */
const SHARED_CACHE_DIRECTIVES = new Set(['public', 's-maxage', 'proxy-revalidate']);

export interface UpstreamRequestContext {
  /** The bearer to send; undefined on public (`token: none`) routes, which send none. */
  bearer: string | undefined;
  /** host[:port] of the upstream URL. */
  upstreamHost: string;
  /** Whether the TCP peer is a trusted proxy: then the X-Forwarded-For chain it sent is continued. */
  keepForwardingHeaders: boolean;
  /** The TCP peer's address (request.raw.socket.remoteAddress). */
  peerAddress?: string | undefined;
  /** The tenant's public URL: its scheme and host become X-Forwarded-Proto and X-Forwarded-Host. */
  publicUrl?: string | undefined;
  /** The route; its forwardHeaders extend the allow-list. */
  route?: RouteHeaderOptions | undefined;
  /** The request's trace context; without one it is derived from the inbound headers here. */
  trace?: TraceContext | undefined;
}

/** What headers.ts reads from a route (typed here so it does not depend on when RouteConfig gets forwardHeaders). */
export interface RouteHeaderOptions {
  path: string;
  forwardHeaders?: readonly string[] | undefined;
}

/**
 * The headers sent upstream: the allow-listed headers the browser sent, then the ones the gateway
 * sets. Names listed in the inbound Connection header are removed, and the bearer is set last, so
 * `Connection: authorization` can never remove the gateway's own header.
 */
export function upstreamRequestHeaders(inbound: IncomingHttpHeaders, ctx: UpstreamRequestContext): IncomingHttpHeaders {
  const allowed = withoutListed(allowedFor(ctx.route?.forwardHeaders), connectionListed(inbound.connection));

  const out: IncomingHttpHeaders = {};
  for (const name of Object.keys(inbound)) {
    const value = inbound[name];
    if (value !== undefined && allowed.has(name) && !TRACE_HEADERS.has(name)) out[name] = value;
  }

  const trace = ctx.trace ?? w3cTraceContext.fromHeaders(inbound);
  out.traceparent = outgoingTraceparent(trace);
  if (trace.tracestate !== undefined) out.tracestate = trace.tracestate;

  const client = ctx.peerAddress === undefined ? undefined : displayAddress(ctx.peerAddress);
  const chain = ctx.keepForwardingHeaders ? listValues(inbound['x-forwarded-for']) : [];
  if (client !== undefined) chain.push(client);
  if (chain.length > 0) out['x-forwarded-for'] = chain.join(', ');
  if (ctx.publicUrl !== undefined) {
    const forwarded = forwardedFor(ctx.publicUrl);
    out['x-forwarded-proto'] = forwarded.proto;
    out['x-forwarded-host'] = forwarded.host;
  }

  out.host = ctx.upstreamHost;
  if (ctx.bearer !== undefined) out.authorization = `Bearer ${ctx.bearer}`;
  return out;
}

/**
 * The upstream's response headers as the browser gets them. The answer belongs to one signed-in
 * user, so no shared cache (a CDN in front of the gateway) may keep it:
 *   - Cache-Control: an upstream's `no-store` stays as it is; otherwise `private` is added, and
 *     `public`, `s-maxage`, `proxy-revalidate` and a field-limited `private="…"` are removed.
 *     Without Cache-Control from the upstream the answer is `no-store`.
 *   - Vary: Cookie is merged into the upstream's Vary.
 *   - CDN-targeted cache fields (CDN-Cache-Control, Surrogate-Control, …) are dropped.
 * Set-Cookie, CORS grants, Proxy-Authenticate and hop-by-hop headers never pass; values lose any character
 * invalid in HTTP.
 */
export function browserResponseHeaders(upstream: IncomingHttpHeaders): IncomingHttpHeaders {
  const listed = connectionListed(upstream.connection);
  const out: IncomingHttpHeaders = {};
  for (const rawName of Object.keys(upstream)) {
    const value = upstream[rawName];
    const name = rawName.toLowerCase();
    if (value === undefined || NEVER_TO_BROWSER.has(name) || name.startsWith('access-control-') || (listed.length > 0 && listed.includes(name))) continue;
    out[name] = typeof value === 'string' ? validInHttp(value) : value.map(validInHttp);
  }
  out['cache-control'] = privateCacheControl(out['cache-control']);
  out.vary = varyWithCookie(out.vary);
  return out;
}

// eslint-disable-next-line no-control-regex
const INVALID_IN_HEADER = /[^\t\x20-\x7E\x80-\xFF]/;
// eslint-disable-next-line no-control-regex
const INVALID_IN_HEADER_ALL = /[^\t\x20-\x7E\x80-\xFF]/g;

/** A header value without characters invalid in HTTP (RFC 9110 §5.5), which Node would refuse to send. */
function validInHttp(value: string): string {
  // A test is cheaper than a replace that finds nothing, which is nearly always.
  return INVALID_IN_HEADER.test(value) ? value.replace(INVALID_IN_HEADER_ALL, '') : value;
}

/** Cache-Control for an answer to a cookie-authenticated request. */
export function privateCacheControl(value: string | string[] | undefined): string {
  if (value === undefined) return 'no-store';
  const directives = splitList(typeof value === 'string' ? value : value.join(', '));
  if (directives.length === 0) return 'no-store';
  const kept: string[] = [];
  let alreadyPrivate = false;
  for (const directive of directives) {
    const eq = directive.indexOf('=');
    const name = (eq === -1 ? directive : directive.slice(0, eq)).trim().toLowerCase();
    // `private="Set-Cookie"` limits privacy to the fields it names and leaves the rest shareable.
    if (SHARED_CACHE_DIRECTIVES.has(name) || (name === 'private' && eq !== -1)) continue;
    if (eq === -1 && (name === 'no-store' || name === 'private')) alreadyPrivate = true;
    kept.push(directive);
  }
  if (!alreadyPrivate) kept.unshift('private');
  return kept.join(', ');
}

/** The upstream's Vary with Cookie added (once; `*` already varies on everything). */
export function varyWithCookie(value: string | string[] | undefined): string {
  const names = listValues(value);
  if (names.includes('*')) return '*';
  if (!names.some((name) => name.toLowerCase() === 'cookie')) names.push('Cookie');
  return names.join(', ');
}

/** Splits a comma-separated field value, keeping quoted strings (`no-cache="a, b"`) whole. */
function splitList(value: string): string[] {
  const items: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value.charCodeAt(i);
    if (quoted && char === BACKSLASH) i++;
    else if (char === QUOTE) quoted = !quoted;
    else if (char === COMMA && !quoted) {
      pushTrimmed(items, value.slice(start, i));
      start = i + 1;
    }
  }
  pushTrimmed(items, value.slice(start));
  return items;
}

const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const COMMA = 0x2c;

function pushTrimmed(items: string[], item: string): void {
  const trimmed = item.trim();
  if (trimmed !== '') items.push(trimmed);
}

/** The items of a comma-separated field, trimmed, empty ones dropped (a fresh array the caller may extend). */
/** The comma-separated items of a header that may come as one line or several, trimmed, empty ones dropped. */
export function listValues(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  // Nearly always one item (Connection: keep-alive, a single Vary or X-Forwarded-For).
  if (typeof value === 'string' && !value.includes(',')) {
    const item = value.trim();
    return item === '' ? [] : [item];
  }
  return (Array.isArray(value) ? value : [value]).flatMap((line) => line.split(',')).map((item) => item.trim()).filter((item) => item !== '');
}

const DEFAULT_ALLOWED: ReadonlySet<string> = new Set(FORWARDED_REQUEST_HEADERS);
/** Bound for the caches below: they hold one entry per route or tenant, this only caps a misuse. */
const MAX_CACHED = 1000;
/** The allow-list per distinct forwardHeaders list (one per route; keyed by content, so a changed list is never served stale). */
const allowedByList = new Map<string, ReadonlySet<string>>();

/** The request headers a route forwards, before the inbound Connection header removes any (never modify the result). */
function allowedFor(forwardHeaders: readonly string[] | undefined): ReadonlySet<string> {
  if (forwardHeaders === undefined || forwardHeaders.length === 0) return DEFAULT_ALLOWED;
  const key = forwardHeaders.join('\n');
  let allowed = allowedByList.get(key);
  if (allowed === undefined) {
    const set = new Set(FORWARDED_REQUEST_HEADERS);
    for (const name of forwardHeaders) {
      if (isForwardableHeaderName(name)) set.add(name.trim().toLowerCase());
    }
    allowed = set;
    if (allowedByList.size >= MAX_CACHED) allowedByList.clear();
    allowedByList.set(key, allowed);
  }
  return allowed;
}

/** `allowed` without the names the inbound Connection header lists (a copy only when one of them is in it). */
function withoutListed(allowed: ReadonlySet<string>, listed: string[]): ReadonlySet<string> {
  if (!listed.some((name) => allowed.has(name))) return allowed;
  const copy = new Set(allowed);
  for (const name of listed) copy.delete(name);
  return copy;
}

/** X-Forwarded-Proto and -Host per tenant public URL. */
const forwardedByPublicUrl = new Map<string, { proto: string; host: string }>();

function forwardedFor(publicUrl: string): { proto: string; host: string } {
  let forwarded = forwardedByPublicUrl.get(publicUrl);
  if (forwarded === undefined) {
    const url = new URL(publicUrl);
    forwarded = { proto: url.protocol.slice(0, -1), host: url.host };
    if (forwardedByPublicUrl.size >= MAX_CACHED) forwardedByPublicUrl.clear();
    forwardedByPublicUrl.set(publicUrl, forwarded);
  }
  return forwarded;
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; upstreams get the plain IPv4 form. */
function displayAddress(address: string): string {
  if (!address.startsWith('::')) return address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped?.[1] ?? address;
}

function connectionListed(connection: string | undefined): string[] {
  return listValues(connection).map((name) => name.toLowerCase());
}
