/**
 * The proxy's allow-list: which gateway paths go to which upstream with which token.
 */

import type { IssueList } from './errors.js';
import { childPath } from './path.js';
import { parseDurationMs } from './duration.js';
import { normaliseForwardHeaders } from './headers.js';
import { parseSizeBytes } from './size.js';
import { parseBaseUrl } from './urls.js';
import type { RawRoute } from './schema.js';
import type { RouteConfig } from './types.js';

const DEFAULT_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** OPTIONS is left out on purpose: the gateway answers no CORS preflight. */
const PROXYABLE_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);
const DEFAULT_TIMEOUT = '30s';
const DEFAULT_BODY_LIMIT = '30MB';
/** Paths the gateway answers itself; a route there would shadow them or be shadowed. */
const RESERVED_PREFIXES = ['/auth', '/healthz', '/readyz', '/metrics'];
/** RFC 3986 pchar plus "/", without "%" so no encoded segment can hide a "." or "/". */
const PATH_CHARACTERS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]+$/;

export function normaliseRoutes(raw: RawRoute[], path: string, issues: IssueList): RouteConfig[] {
  const routes: RouteConfig[] = [];
  raw.forEach((route, index) => {
    const at = childPath(path, index);
    const routePath = issues.attempt(childPath(at, 'path'), () => checkRoutePath(route.path));
    const upstream = issues.attempt(childPath(at, 'upstream'), () => parseBaseUrl(route.upstream));
    const methods = issues.attempt(childPath(at, 'methods'), () => normaliseMethods(route.methods ?? DEFAULT_METHODS));
    const timeoutMs = issues.attempt(childPath(at, 'timeout'), () => parseDurationMs(route.timeout ?? DEFAULT_TIMEOUT));
    const bodyLimitBytes = issues.attempt(childPath(at, 'bodyLimit'), () => parseSizeBytes(route.bodyLimit ?? DEFAULT_BODY_LIMIT));
    const forwardHeaders = normaliseForwardHeaders(route.forwardHeaders ?? [], childPath(at, 'forwardHeaders'), issues);
    const resource = route.resource === undefined ? undefined : issues.attempt(childPath(at, 'resource'), () => checkResource(route.resource!, route.token));
    if (route.resource !== undefined && resource === undefined) return;
    if (routePath === undefined || upstream === undefined || methods === undefined) return;
    if (timeoutMs === undefined || bodyLimitBytes === undefined) return;

    const clash = routes.findIndex((other) => overlaps(other.path, routePath));
    if (clash !== -1) {
      const other = routes[clash]?.path;
      const what = other === routePath ? 'repeats' : 'overlaps';
      issues.add(childPath(at, 'path'), `${what} ${childPath(childPath(path, clash), 'path')} (${other}); each request must match exactly one route`);
      return;
    }
    routes.push({ path: routePath, upstream, token: route.token, forwardHeaders, methods, timeoutMs, bodyLimitBytes, ...(route.acr ? { acr: route.acr } : {}), ...(resource ? { resource } : {}) });
  });
  return routes;
}

function checkRoutePath(path: string): string {
  if (!path.startsWith('/') || path === '/') throw new Error('must start with "/" and name at least one segment, e.g. /mva/validering');
  if (path.endsWith('/')) throw new Error('must not end with "/"');
  if (!PATH_CHARACTERS.test(path)) throw new Error('may hold only letters, digits, "/" and -._~!$&\'()*+,;=:@ (no "%", "?" or "#")');
  const segments = path.slice(1).split('/');
  if (segments.some((segment) => segment === '')) throw new Error('must not contain "//"');
  if (segments.some((segment) => segment === '.' || segment === '..')) throw new Error('must not contain "." or ".." segments');
  const reserved = RESERVED_PREFIXES.find((prefix) => overlaps(prefix, path));
  if (reserved) throw new Error(`must not start with ${reserved}: the gateway serves that path itself`);
  return path;
}

/** An absolute URI per RFC 3986 section 4.3: a scheme, then anything but whitespace. */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$/;

/**
 * RFC 8707 section 2: a resource indicator is an absolute URI without a fragment. It is kept as written, since the
 * provider copies it into the token's `aud` and the upstream compares that string. Only the session's own
 * ID-porten token can be asked for per resource: the Altinn token is exchanged from the session's access token,
 * and a public route sends none.
 */
function checkResource(resource: string, token: RouteConfig['token']): string {
  if (token !== 'idporten') {
    throw new Error(
      token === 'none'
        ? 'a route with token: none sends no token, so it has no resource; remove resource or use token: idporten'
        : 'applies to token: idporten only (the Altinn token is exchanged from the session\'s own access token); remove resource or use token: idporten',
    );
  }
  if (!ABSOLUTE_URI.test(resource) || URL.parse(resource) === null) throw new Error('must be an absolute URI such as https://api.example.no/ (RFC 8707 section 2)');
  if (resource.includes('#')) throw new Error('must not contain a fragment (#...) (RFC 8707 section 2)');
  return resource;
}

/** True when one path equals the other or contains it as whole leading segments (/mva and /mva/x). */
function overlaps(a: string, b: string): boolean {
  return a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);
}

function normaliseMethods(methods: string[]): string[] {
  const upper = methods.map((method) => method.toUpperCase());
  const unknown = upper.filter((method) => !PROXYABLE_METHODS.has(method));
  if (unknown.length > 0) {
    throw new Error(`unsupported method ${unknown.join(', ')}; allowed: ${[...PROXYABLE_METHODS].join(', ')}`);
  }
  return [...new Set(upper)];
}
