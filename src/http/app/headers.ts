/**
 * Header hygiene between the browser and the app's upstream (a dev server or frontend container).
 * The app side is not trusted with credentials: it never receives a cookie (the session cookie, the
 * login transaction, anything else on the origin), an Authorization header or the CSRF marker, and
 * the browser never receives a cookie from it. The same rules hold for a WebSocket upgrade.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Request headers the app side never gets, whatever the browser sent. */
const WITHHELD = new Set([
  'cookie', 'authorization', 'proxy-authorization', 'x-csrf',
  'forwarded', 'x-real-ip', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port',
  // hop-by-hop (RFC 9110 section 7.6.1): each connection has its own
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'expect',
]);

/** What a WebSocket upgrade forwards: the ws client writes its own handshake headers. */
const WEBSOCKET_FORWARDED = ['user-agent', 'accept-language', 'origin'];

export interface AppRequestContext {
  /** host[:port] of the app's upstream. */
  upstreamHost: string;
  /** The tenant's public URL (its scheme and host become X-Forwarded-Proto and -Host). */
  publicUrl: string;
  peerAddress: string | undefined;
}

/** The request headers the app's upstream gets on a plain HTTP request. */
export function appRequestHeaders(incoming: IncomingHttpHeaders, ctx: AppRequestContext): IncomingHttpHeaders {
  const listed = connectionListed(incoming);
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    const lower = name.toLowerCase();
    if (value === undefined || WITHHELD.has(lower) || listed.has(lower) || lower.startsWith('proxy-') || lower.startsWith('x-forwarded-')) continue;
    out[lower] = value;
  }
  return { ...out, ...forwarding(ctx) };
}

/** The headers a WebSocket upgrade to the app's upstream carries (no cookie, no credentials). */
export function appWebSocketHeaders(incoming: IncomingHttpHeaders, ctx: AppRequestContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of WEBSOCKET_FORWARDED) {
    const value = incoming[name];
    if (typeof value === 'string') out[name] = value;
  }
  return { ...out, ...forwarding(ctx) };
}

/** Response headers from the app's upstream, minus its cookies and its ideas about authentication. */
export function appResponseHeaders<H extends IncomingHttpHeaders | OutgoingHttpHeaders>(headers: H): H {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'set-cookie' || lower === 'set-cookie2' || lower === 'proxy-authenticate' || lower === 'www-authenticate') continue;
    out[name] = value;
  }
  return out as H;
}

function forwarding(ctx: AppRequestContext): Record<string, string> {
  const publicUrl = new URL(ctx.publicUrl);
  return {
    host: ctx.upstreamHost,
    'x-forwarded-proto': publicUrl.protocol.replace(/:$/, ''),
    'x-forwarded-host': publicUrl.host,
    ...(ctx.peerAddress ? { 'x-forwarded-for': ctx.peerAddress } : {}),
  };
}

function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  const connection = headers.connection;
  const value = Array.isArray(connection) ? connection.join(',') : (connection ?? '');
  return new Set(value.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
}
