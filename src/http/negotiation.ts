import type { FastifyRequest } from 'fastify';

/** A browser navigation or a client that prefers a page: gets HTML error pages rather than problem JSON. */
export function wantsHtml(request: FastifyRequest): boolean {
  if (request.headers['sec-fetch-mode'] === 'navigate') return true;
  const accept = request.headers.accept ?? '';
  return accept.includes('text/html');
}

/** A client that asks for JSON before HTML. */
export function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  const json = accept.indexOf('application/json');
  const html = accept.indexOf('text/html');
  return json !== -1 && (html === -1 || json < html);
}

/** A top-level GET navigation (the only kind of request that may be redirected to the login). */
export function isTopLevelNavigation(request: FastifyRequest): boolean {
  return request.method === 'GET' && request.headers['sec-fetch-mode'] === 'navigate';
}

/**
 * A page load (gateway contract, "Adoption"): `Sec-Fetch-Dest: document`, or, from a client that sends no
 * Fetch metadata (an older browser, curl), a request that asks for HTML. A page's script cannot set
 * Sec-Fetch-* (they are forbidden request headers), so a fetch never passes for a navigation. GET and HEAD only.
 * Whether the path has a dot in it does not matter: `/kunde/912.345.678` is as much a page as `/kunde`.
 */
export function isPageLoad(request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  const dest = request.headers['sec-fetch-dest'];
  if (dest !== undefined) return dest === 'document';
  const mode = request.headers['sec-fetch-mode'];
  if (mode !== undefined) return mode === 'navigate';
  return (request.headers.accept ?? '').includes('text/html');
}
