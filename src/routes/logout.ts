import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { LRUCache } from 'lru-cache';
import { fingerprint } from '../audit/fingerprint.js';
import type { LogoutChannel } from '../audit/audit-log.js';
import type { TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { clearSessionCookie, currentSession, requireTenant, type GatewayContext } from '../http/context.js';
import { autoPostPage, logoutCsp } from '../http/html.js';
import { OidcError } from '../oidc/errors.js';
import type { SessionContext } from '../session/session.js';
import { tenantRoot } from '../tenant/urls.js';
import { enforceCsrf, revokeTokens, wantsJson } from './auth-common.js';

/** POST /auth/logout, GET /auth/logout/callback, GET /auth/logout/frontchannel, POST /auth/logout/backchannel. */
export async function logoutRoutes(app: FastifyInstance, { ctx }: { ctx: GatewayContext }): Promise<void> {
  // Back-channel logout tokens seen, by jti, until they expire: a replayed token is refused (OIDC BCL 2.6 step 8 allows this).
  const seenLogoutTokens = new LRUCache<string, true>({ max: 10_000, ttl: 10 * 60_000 });

  /** Ends one session from any channel: revoke tokens, destroy, audit. */
  async function endSession(tenant: TenantConfig, session: SessionContext, channel: LogoutChannel, log: FastifyBaseLogger) {
    const revoked = await revokeTokens(ctx, log, tenant, session);
    await ctx.sessions.destroy(session.id);
    ctx.audit.event('logout', {
      tenant: tenant.id,
      session: session.hash,
      sub: session.data.user.sub,
      channel,
      sid: fingerprint(session.data.user.sid),
      accessToken: fingerprint(session.data.tokens.accessToken),
      refreshToken: fingerprint(session.data.tokens.refreshToken),
      revoked,
    });
  }

  app.post('/auth/logout', async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    enforceCsrf(ctx, request, tenant, { allowSameOriginForm: true });
    const session = await currentSession(ctx, request, tenant);
    if (session) await endSession(tenant, session, 'rp', request.log);
    clearSessionCookie(ctx, reply, tenant);
    reply.header('cache-control', 'no-store');

    const client = ctx.clients.get(tenant.id)!;
    const endpoint = client.ready ? client.endSessionEndpoint() : undefined;
    if (!endpoint) {
      const logoutUrl = tenantRoot(tenant);
      return wantsJson(request) ? reply.send({ logoutUrl }) : reply.redirect(logoutUrl, 303);
    }
    const params = client.endSessionParameters({ idToken: session?.data.tokens.idToken, state: randomBytes(16).toString('base64url') });
    if (wantsJson(request)) {
      const url = new URL(endpoint);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      return reply.send({ logoutUrl: url.toString() });
    }
    const page = autoPostPage(endpoint, params);
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', logoutCsp(page.csp, endpoint, tenant.idporten.postLogoutRedirectUri))
      .header('referrer-policy', 'no-referrer')
      .send(page.html);
  });

  app.get('/auth/logout/callback', async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    return reply.header('cache-control', 'no-store').redirect(tenantRoot(tenant), 302);
  });

  app.get<{ Querystring: { iss?: string; sid?: string } }>(
    '/auth/logout/frontchannel',
    { schema: { querystring: { type: 'object', properties: { iss: { type: 'string', maxLength: 2048 }, sid: { type: 'string', maxLength: 512 } } } } },
    async (request, reply) => {
      const tenant = requireTenant(ctx, request);
      const { iss, sid } = request.query;
      // OIDC Front-Channel Logout 1.0 section 3: iss and sid identify the provider session; a foreign iss is ignored as an error.
      if (iss !== tenant.idporten.issuer) throw new GatewayError('invalid_request', 'iss does not match this tenant\'s issuer.');
      if (!sid) throw new GatewayError('invalid_request', 'sid is required.');
      const sessions = await ctx.sessions.findBySid(tenant.id, sid);
      for (const session of sessions) await endSession(tenant, session, 'frontchannel', request.log);
      // Loaded in ID-porten's iframe: no framing restriction here, and nothing to cache.
      return reply.header('cache-control', 'no-store').header('content-type', 'text/html; charset=utf-8').send('<!doctype html><title>Logged out</title>');
    },
  );

  app.post<{ Body: Record<string, string> | undefined }>('/auth/logout/backchannel', async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    reply.header('cache-control', 'no-store');
    const token = request.body && typeof request.body === 'object' ? request.body.logout_token : undefined;
    if (typeof token !== 'string' || token.length === 0 || token.length > 16_384) {
      return reply.code(400).send({ error: 'invalid_request', error_description: 'logout_token is required' });
    }
    let claims;
    try {
      claims = await ctx.clients.get(tenant.id)!.verifyLogoutToken(token);
    } catch (err) {
      const reason = err instanceof OidcError ? err.reason : 'invalid logout token';
      request.log.warn({ tenant: tenant.id, reason }, 'back-channel logout token rejected');
      if (err instanceof OidcError && err.kind === 'unavailable') return reply.code(503).send({ error: 'temporarily_unavailable' });
      return reply.code(400).send({ error: 'invalid_request', error_description: 'logout_token was not accepted' });
    }
    const replayKey = `${tenant.id}:${claims.jti}`;
    if (seenLogoutTokens.has(replayKey)) return reply.code(400).send({ error: 'invalid_request', error_description: 'logout_token was already used' });
    seenLogoutTokens.set(replayKey, true, { ttl: Math.max(60_000, claims.exp * 1000 - ctx.now()) });
    const sessions = claims.sid ? await ctx.sessions.findBySid(tenant.id, claims.sid) : await ctx.sessions.findBySub(tenant.id, claims.sub!);
    // With both sid and sub, only sessions of that subject end.
    for (const session of sessions) {
      if (claims.sub && session.data.user.sub !== claims.sub) continue;
      await endSession(tenant, session, 'backchannel', request.log);
    }
    return reply.code(200).send();
  });
}
