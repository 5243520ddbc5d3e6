import type { FastifyInstance, FastifyReply } from 'fastify';
import { LRUCache } from 'lru-cache';
import { GatewayError, RETRY_AFTER_SECONDS } from '../../errors.js';
import { OidcError } from '../../idporten/errors.js';
import type { Tenant } from '../../tenant/tenant.js';
import { tenantRoot } from '../../tenant/urls.js';
import { enforceCsrf } from '../csrf.js';
import { autoPostPage, FRONTCHANNEL_PAGE_CSP, logoutCsp } from '../html.js';
import { LOGOUT_HANDLE_TTL_MS, newLogoutBinding, openLogoutHandle, sealLogoutHandle } from '../logout-handle.js';
import { wantsJson } from '../negotiation.js';
import { clearSessionCookie, sendErrorPage } from '../replies.js';

const LOGOUT_CONTINUE_PATH = '/auth/logout/continue';
const LOGOUT_HANDLE_MAX_LENGTH = 8_192;

/** POST /auth/logout, GET /auth/logout/continue, GET /auth/logout/callback, GET /auth/logout/frontchannel, POST /auth/logout/backchannel. */
export async function logoutRoutes(app: FastifyInstance): Promise<void> {
  const { lifecycle, audit, now } = app.gateway;

  app.post('/auth/logout', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    enforceCsrf(request, tenant, audit, { allowSameOriginForm: true });
    const session = await request.bff.session();
    if (session) await lifecycle.end(session, tenant, 'rp');
    clearSessionCookie(reply, tenant);
    reply.header('cache-control', 'no-store');

    const client = tenant.idporten;
    const endpoint = client.ready ? client.endSessionEndpoint() : undefined;
    if (!endpoint) {
      const logoutUrl = tenantRoot(tenant.config);
      return wantsJson(request) ? reply.send({ logoutUrl }) : reply.redirect(logoutUrl, 303);
    }
    const params = client.endSessionParameters({ idToken: session?.data.tokens.idToken });
    if (wantsJson(request)) {
      // No token in a body or URL a page can read (RFC 10017 section 6.1): the page navigates to a gateway URL
      // whose sealed, one-time, browser-bound handle is turned into the self-posting form there.
      const binding = newLogoutBinding();
      reply.setCookie(logoutBindingCookie(tenant), binding, { httpOnly: true, secure: tenant.cookies.secure, sameSite: 'strict', path: '/', maxAge: LOGOUT_HANDLE_TTL_MS / 1000 });
      const url = new URL(LOGOUT_CONTINUE_PATH, tenant.config.publicUrl);
      url.searchParams.set('t', sealLogoutHandle(tenant.keys, tenant.id, binding, params, now()));
      return reply.send({ logoutUrl: url.toString() });
    }
    return sendLogoutPage(reply, tenant, endpoint, params);
  });

  // Handles this instance has served, so each opens once; its binding cookie is cleared on first use as well,
  // which also covers a replay that reaches another instance from the same browser.
  const usedLogoutHandles = new LRUCache<string, true>({ max: 10_000, ttl: LOGOUT_HANDLE_TTL_MS });

  // A handle is about 1.5 KB with ID-porten's ID token in it. The limit must lie well inside Node's 16 KiB for the
  // request line and headers together, which answers 431 before any route: above it, no limit here could act.
  app.get<{ Querystring: { t?: string } }>(
    LOGOUT_CONTINUE_PATH,
    { schema: { querystring: { type: 'object', properties: { t: { type: 'string', maxLength: LOGOUT_HANDLE_MAX_LENGTH } } } } },
    async (request, reply) => {
      const tenant = request.bff.requireTenant();
      reply.header('cache-control', 'no-store');
      const refuse = (reason: string) => {
        request.log.warn({ tenant: tenant.id, reason }, 'logout continuation refused');
        return sendErrorPage(reply, tenant, 400, 'Logout could not continue', 'This logout link is not valid (any more). You are logged out of this service.', request.id);
      };
      // Only a top-level navigation gets the form; a page script's fetch (Sec-Fetch-* cannot be forged by it) does not.
      const mode = request.headers['sec-fetch-mode'];
      const dest = request.headers['sec-fetch-dest'];
      if ((mode !== undefined && mode !== 'navigate') || (dest !== undefined && dest !== 'document')) return refuse('not a top-level navigation');
      const cookieName = logoutBindingCookie(tenant);
      const binding = request.cookies[cookieName];
      reply.clearCookie(cookieName, { httpOnly: true, secure: tenant.cookies.secure, sameSite: 'strict', path: '/' });
      const handle = request.query.t;
      const opened = typeof handle === 'string' && typeof binding === 'string' && binding.length > 0 ? openLogoutHandle(tenant.keys, tenant.id, binding, handle, now()) : undefined;
      if (!opened) return refuse('handle does not open');
      const replayKey = `${tenant.id}:${opened.jti}`;
      if (usedLogoutHandles.has(replayKey)) return refuse('handle already used');
      usedLogoutHandles.set(replayKey, true, { ttl: Math.max(1_000, opened.exp - now()) });
      const client = tenant.idporten;
      const endpoint = client.ready ? client.endSessionEndpoint() : undefined;
      if (!endpoint) return reply.redirect(tenantRoot(tenant.config), 303);
      return sendLogoutPage(reply, tenant, endpoint, opened.params);
    },
  );

  app.get('/auth/logout/callback', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    return reply.header('cache-control', 'no-store').redirect(tenantRoot(tenant.config), 302);
  });

  app.get<{ Querystring: { iss?: string; sid?: string } }>(
    '/auth/logout/frontchannel',
    { schema: { querystring: { type: 'object', properties: { iss: { type: 'string', maxLength: 2048 }, sid: { type: 'string', maxLength: 512 } } } } },
    async (request, reply) => {
      const tenant = request.bff.requireTenant();
      const { iss, sid } = request.query;
      // OIDC Front-Channel Logout 1.0 section 3: iss and sid identify the provider session; a foreign iss is ignored as an error.
      if (iss !== tenant.config.idporten.issuer) throw new GatewayError('invalid_request', 'iss does not match this tenant\'s issuer.');
      if (!sid) throw new GatewayError('invalid_request', 'sid is required.');
      for (const session of await lifecycle.findBySid(tenant, sid)) await lifecycle.end(session, tenant, 'frontchannel');
      // Loaded in ID-porten's iframe: no framing restriction here, and nothing to cache.
      return reply
        .header('cache-control', 'no-store')
        .header('content-type', 'text/html; charset=utf-8')
        .header('content-security-policy', FRONTCHANNEL_PAGE_CSP)
        .send('<!doctype html><title>Logged out</title>');
    },
  );

  app.post<{ Body: Record<string, string> | undefined }>('/auth/logout/backchannel', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    reply.header('cache-control', 'no-store');
    const token = request.body && typeof request.body === 'object' ? request.body.logout_token : undefined;
    if (typeof token !== 'string' || token.length === 0 || token.length > 16_384) {
      return reply.code(400).send({ error: 'invalid_request', error_description: 'logout_token is required' });
    }
    let claims;
    try {
      claims = await tenant.idporten.verifyLogoutToken(token);
    } catch (err) {
      const reason = err instanceof OidcError ? err.reason : 'invalid logout token';
      request.log.warn({ tenant: tenant.id, reason }, 'back-channel logout token rejected');
      if (err instanceof OidcError && err.kind === 'unavailable') {
        return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS.idporten)).send({ error: 'temporarily_unavailable' });
      }
      return reply.code(400).send({ error: 'invalid_request', error_description: 'logout_token was not accepted' });
    }
    // Logout tokens used, by jti, until they expire, in the session store (shared by every instance): a
    // replayed token is refused (OIDC BCL 2.6 step 8 allows this). Recorded only once its sessions ended, so
    // a delivery that failed (store unreachable: 503) is not refused when it comes again.
    const replayKey = `logout-jti:${tenant.id}:${claims.jti}`;
    // A store that cannot tell must not stop the logout: ending the sessions again is harmless.
    const used = await lifecycle.sessions.remembered(replayKey).catch(() => false);
    if (used) return reply.code(400).send({ error: 'invalid_request', error_description: 'logout_token was already used' });
    // Ends them now, or (store unreachable) refuses them on this instance and keeps trying in the background.
    await lifecycle.endProviderSession(tenant, { sid: claims.sid, sub: claims.sub });
    try {
      await lifecycle.sessions.remember(replayKey, Math.max(60_000, claims.exp * 1000 - now()));
    } catch (err) {
      // The sessions are ended; a replay could only end them again.
      request.log.warn({ tenant: tenant.id, reason: (err as Error).message }, 'back-channel logout token not recorded as used');
    }
    return reply.code(200).send();
  });
}

/** The HttpOnly cookie that binds a logout handle to the browser it was issued to. */
function logoutBindingCookie(tenant: Tenant): string {
  return `${tenant.cookies.sessionName}-logout`;
}

/** The self-posting end-session form (OIDC RP-Initiated Logout 1.0: POST keeps id_token_hint out of URLs and logs). */
function sendLogoutPage(reply: FastifyReply, tenant: Tenant, endpoint: string, params: Record<string, string>): FastifyReply {
  const page = autoPostPage(endpoint, params);
  return reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', logoutCsp(page.csp, endpoint, tenant.config.idporten.postLogoutRedirectUri))
    .header('referrer-policy', 'no-referrer')
    .send(page.html);
}
