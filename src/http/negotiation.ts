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
