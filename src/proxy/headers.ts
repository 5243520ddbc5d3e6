import type { IncomingHttpHeaders } from 'node:http';

/** Hop-by-hop headers (RFC 9110 section 7.6.1) plus their legacy companions: they describe one connection, never the message. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'];

/**
 * Request headers the browser sends that the upstream must never see:
 * credentials meant for the gateway (the session cookie, any Authorization of the browser's own),
 * the CSRF marker, Expect (Node has already answered 100-continue; undici refuses to send it),
 * and browser context (Origin, Referer, Fetch Metadata) that would leak the SPA's URLs.
 */
const BROWSER_ONLY = ['authorization', 'proxy-authorization', 'cookie', 'x-csrf', 'expect', 'origin', 'referer', 'host'];

/** Client-asserted addressing; honoured only when the peer is a trusted proxy. */
const FORWARDING = ['forwarded', 'x-real-ip'];

/** Response headers the browser must not get from an upstream: its cookies, and CORS grants (the gateway grants none). */
const UPSTREAM_ONLY = ['set-cookie', 'set-cookie2', 'proxy-authenticate'];

export interface UpstreamRequestContext {
  /** The bearer to send; undefined on public (`token: none`) routes, which send none. */
  bearer: string | undefined;
  /** host[:port] of the upstream URL. */
  upstreamHost: string;
  /** Whether X-Forwarded-* / Forwarded from the client may pass (the peer is a trusted proxy). */
  keepForwardingHeaders: boolean;
}

/**
 * The headers sent upstream. Names listed in the inbound Connection header are removed first and
 * the bearer is set last, so `Connection: authorization` can only remove the browser's own header,
 * never the gateway's.
 */
export function upstreamRequestHeaders(inbound: IncomingHttpHeaders, ctx: UpstreamRequestContext): IncomingHttpHeaders {
  const drop = new Set([...HOP_BY_HOP, ...BROWSER_ONLY, ...connectionListed(inbound.connection)]);
  if (!ctx.keepForwardingHeaders) for (const name of FORWARDING) drop.add(name);

  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(inbound)) {
    if (value === undefined || drop.has(name) || name.startsWith('sec-fetch-')) continue;
    if (name.startsWith('x-forwarded-') && !ctx.keepForwardingHeaders) continue;
    out[name] = value;
  }
  out.host = ctx.upstreamHost;
  if (ctx.bearer !== undefined) out.authorization = `Bearer ${ctx.bearer}`;
  return out;
}

/**
 * The upstream's response headers as the browser gets them. Adds `Cache-Control: no-store` when the
 * upstream said nothing: the response answers a cookie-authenticated request and must not be kept
 * by shared caches or the browser's disk cache unless the upstream chose so.
 */
export function browserResponseHeaders(upstream: IncomingHttpHeaders): IncomingHttpHeaders {
  const drop = new Set([...HOP_BY_HOP, ...UPSTREAM_ONLY, ...connectionListed(upstream.connection)]);
  const out: IncomingHttpHeaders = {};
  for (const [rawName, value] of Object.entries(upstream)) {
    const name = rawName.toLowerCase();
    if (value === undefined || drop.has(name) || name.startsWith('access-control-')) continue;
    out[name] = value;
  }
  if (out['cache-control'] === undefined) out['cache-control'] = 'no-store';
  return out;
}

function connectionListed(connection: string | undefined): string[] {
  if (connection === undefined) return [];
  return connection.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '');
}
