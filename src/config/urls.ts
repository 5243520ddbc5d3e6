/**
 * URL rules shared by every URL in the configuration. Plain http is accepted only for the local
 * machine: anywhere else it would carry session cookies and bearer tokens readable on the network.
 *
 * Two audiences, two notions of "the local machine":
 * - URLs the gateway itself connects to (issuer, upstreams, Altinn, Redis): localhost, 127.0.0.1 and
 *   [::1]. A NAME.localhost is left to the system resolver, which need not keep it on the machine.
 * - URLs the browser opens (publicUrl, postLogoutRedirectUri): also NAME.localhost, which browsers
 *   resolve to loopback themselves and treat as a secure context (RFC 6761 section 6.3).
 */

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const ACROSS_THE_NETWORK = 'elsewhere cookies and tokens would cross the network unencrypted, so use https';
const HTTP_ONLY_LOCAL = `http is allowed only for localhost, 127.0.0.1 and [::1]; ${ACROSS_THE_NETWORK}`;
const HTTP_ONLY_LOOPBACK_ORIGIN = `http is allowed only for localhost, NAME.localhost, 127.0.0.1 and [::1]; ${ACROSS_THE_NETWORK}`;

/** A host name the gateway's own connections reach on this machine. */
export function isLocalHost(hostname: string): boolean {
  return LOCAL_HOSTS.has(hostname.toLowerCase());
}

/** A host name a browser keeps on this machine: the above, or any name under .localhost (RFC 6761 section 6.3). */
export function isLoopbackOriginHost(hostname: string): boolean {
  const name = hostname.toLowerCase();
  return isLocalHost(name) || (name.endsWith('.localhost') && name.length > '.localhost'.length);
}

export type UrlAudience = 'gateway' | 'browser';

/** An absolute http(s) URL without credentials or fragment; http only for the local machine. */
export function parseWebUrl(text: string, audience: UrlAudience = 'gateway'): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('must be an absolute URL such as https://example.no/path');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('must be an http or https URL');
  if (url.protocol === 'http:') {
    if (audience === 'browser' && !isLoopbackOriginHost(url.hostname)) throw new Error(HTTP_ONLY_LOOPBACK_ORIGIN);
    if (audience === 'gateway' && !isLocalHost(url.hostname)) throw new Error(HTTP_ONLY_LOCAL);
  }
  if (url.username !== '' || url.password !== '') throw new Error('must not contain a user name or password');
  if (url.hash !== '' || text.includes('#')) throw new Error('must not contain a fragment (#...)');
  return url;
}

/** A browser-facing origin: scheme, host and optional port, nothing else. An optional trailing slash is dropped. */
export function parseOrigin(text: string): string {
  const url = parseWebUrl(text, 'browser');
  if (url.pathname !== '/' || url.search !== '' || text.includes('?')) {
    throw new Error('must be an origin only (scheme, host and optional port), e.g. https://mva.example.no');
  }
  return url.origin;
}

/** A URL without query or fragment, trailing slash removed, so a path can be appended to it. */
export function parseBaseUrl(text: string): string {
  const url = parseWebUrl(text);
  if (url.search !== '' || text.includes('?')) throw new Error('must not contain a query string (?...)');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * An OpenID Provider issuer identifier: https URL without query or fragment (OIDC Discovery 1.0
 * section 3). Kept exactly as written, since it is compared as a string with the `iss` the provider returns.
 */
export function parseIssuer(text: string): string {
  parseBaseUrl(text);
  return text;
}

/** A redis:// or rediss:// URL. The message never repeats the URL, which may carry a password. */
export function parseRedisUrl(text: string): string {
  redisUrl(text);
  return text;
}

/** True for redis:// (no TLS) to a server off this machine; `text` has passed parseRedisUrl. */
export function isPlaintextRemoteRedis(text: string): boolean {
  const url = redisUrl(text);
  return url.protocol === 'redis:' && !isLocalHost(url.hostname);
}

function redisUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('must be a URL such as redis://127.0.0.1:6379');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error('must start with redis:// or rediss://');
  if (url.hostname === '') throw new Error('must name a host, e.g. rediss://redis.example.no:6379');
  return url;
}
