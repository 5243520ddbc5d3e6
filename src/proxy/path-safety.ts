/**
 * Maps the raw request path onto the route's upstream path, refusing anything that could make
 * the upstream (or a proxy in front of it) resolve a path outside the route's upstream base.
 *
 * The check runs on the raw request target, not on a decoded form: what the upstream sees is the
 * raw text, and each decoding layer (router, upstream framework, servlet container) is a chance
 * to turn `%2e%2e` or `%252e` into `..`. So the rule is deliberately narrower than RFC 3986:
 * - segments may hold only RFC 3986 `pchar`s (section 3.3); no backslash, `#`, space or controls;
 * - no empty segment except one trailing slash (`//` is not a path separator we forward);
 * - no dot segments (section 3.3, 5.2.4), also not before a `;` parameter (`..;/` is a
 *   traversal for servlet containers) and not as a Unicode look-alike after NFKC;
 * - percent-escapes must be valid UTF-8 and may not encode `.`, `/`, `\`, `%` or control
 *   characters: unreserved characters never need escaping (section 2.3), and encoded `/`, `\`
 *   and `%` (double encoding) mean different things to different decoders.
 */

const PCHARS = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*$/;
const FORBIDDEN_ESCAPE = /%(?:[01][0-9A-Fa-f]|7[Ff]|2[EeFf5]|5[Cc])/;
const ONLY_DOTS = /^\.+$/;

/**
 * Returns the path to request upstream, or undefined when the raw path is not a plain descendant
 * of `routePath`. `rawUrl` is the request target as received (path and optional query);
 * `upstreamBasePath` is the pathname of the route's upstream URL.
 */
export function upstreamPathFor(rawUrl: string, routePath: string, upstreamBasePath: string): string | undefined {
  const queryAt = rawUrl.indexOf('?');
  const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  if (!rawPath.startsWith(routePath)) return undefined;
  const rest = rawPath.slice(routePath.length);
  const base = upstreamBasePath.endsWith('/') ? upstreamBasePath.slice(0, -1) : upstreamBasePath;
  if (rest === '') return base === '' ? '/' : base;
  if (!rest.startsWith('/')) return undefined;

  const segments = rest.slice(1).split('/');
  for (const [index, segment] of segments.entries()) {
    const isLast = index === segments.length - 1;
    if (segment === '' ? !isLast : !isSafeSegment(segment)) return undefined;
  }
  return base + rest;
}

function isSafeSegment(segment: string): boolean {
  if (!PCHARS.test(segment)) return false;
  // Without escapes the segment is the plain ASCII PCHARS allows: it decodes and normalises to itself.
  if (!segment.includes('%')) return !ONLY_DOTS.test(segment.split(';', 1)[0] ?? '');
  if (FORBIDDEN_ESCAPE.test(segment)) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return false; // malformed UTF-8, including overlong encodings of '.' and '/'
  }
  const lookalike = decoded.normalize('NFKC');
  if (lookalike.includes('/') || lookalike.includes('\\')) return false;
  const beforeParameters = lookalike.split(';', 1)[0] ?? '';
  return !ONLY_DOTS.test(beforeParameters);
}
