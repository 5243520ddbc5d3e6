import type { FastifyReply, FastifyRequest } from 'fastify';
import { hstsHeader } from '../config/hsts.js';

/** Response headers on everything the gateway itself answers (a callback onSend hook: no promise per response). */
export function securityHeaders<P>(request: FastifyRequest, reply: FastifyReply, payload: P, done: (err: null, payload: P) => void): void {
  reply.header('x-content-type-options', 'nosniff');
  // The origin's HSTS is the tenant's setting alone: an API upstream's own policy (for its host) never passes.
  const hsts = request.bff?.tenant?.config.hsts;
  if (hsts) reply.header('strict-transport-security', hstsHeader(hsts));
  else reply.removeHeader('strict-transport-security');
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on same-origin form posts, which the CSRF check must refuse.
  if (!reply.hasHeader('referrer-policy')) reply.header('referrer-policy', 'same-origin');
  // The front-channel logout page is loaded in ID-porten's iframe; every other /auth page refuses framing.
  if (request.routeOptions.url !== '/auth/logout/frontchannel' && !reply.hasHeader('x-frame-options') && request.url.startsWith('/auth/')) {
    reply.header('x-frame-options', 'DENY');
  }
  done(null, payload);
}
