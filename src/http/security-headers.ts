import type { FastifyReply, FastifyRequest } from 'fastify';

/** Response headers on everything the gateway itself answers (a callback onSend hook: no promise per response). */
export function securityHeaders<P>(request: FastifyRequest, reply: FastifyReply, payload: P, done: (err: null, payload: P) => void): void {
  reply.header('x-content-type-options', 'nosniff');
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on same-origin form posts, which the CSRF check must refuse.
  if (!reply.hasHeader('referrer-policy')) reply.header('referrer-policy', 'same-origin');
  // The front-channel logout page is loaded in ID-porten's iframe; every other /auth page refuses framing.
  if (request.routeOptions.url !== '/auth/logout/frontchannel' && !reply.hasHeader('x-frame-options') && request.url.startsWith('/auth/')) {
    reply.header('x-frame-options', 'DENY');
  }
  done(null, payload);
}
