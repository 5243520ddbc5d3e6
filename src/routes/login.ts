import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { fingerprint } from '../audit/fingerprint.js';
import type { AcrLevel, TenantConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { currentSession, requireTenant, setSessionCookie, type GatewayContext } from '../http/context.js';
import { OidcError } from '../oidc/errors.js';
import { acrFromClaims } from '../oidc/idporten-client.js';
import { clearedCookieAttributes, transactionCookieAttributes } from '../session/cookies.js';
import {
  LOGIN_TRANSACTION_TTL_SECONDS,
  MAX_PENDING_LOGINS,
  openTransaction,
  sealTransaction,
  transactionCookieSuffix,
  type SealedLoginTransaction,
} from '../session/login-transaction.js';
import { SessionManager } from '../session/manager.js';
import type { SessionData } from '../session/session.js';
import { callbackUrl, tenantRoot } from '../tenant/urls.js';
import { safeReturnTo } from './return-to.js';
import { revokeTokens, sendErrorPage, wantsHtml } from './auth-common.js';

interface LoginQuery {
  returnTo?: string;
  acr?: string;
  locale?: string;
}

interface CallbackQuery {
  state?: string;
  code?: string;
  error?: string;
  iss?: string;
}

const stringQuery = (names: string[]) => ({
  type: 'object',
  properties: Object.fromEntries(names.map((n) => [n, { type: 'string', maxLength: 4096 }])),
});

/** GET /auth/login, GET /auth/callback, GET /auth/login/cancelled. */
export async function loginRoutes(app: FastifyInstance, { ctx }: { ctx: GatewayContext }): Promise<void> {
  app.get<{ Querystring: LoginQuery }>('/auth/login', { schema: { querystring: stringQuery(['returnTo', 'acr', 'locale']) } }, async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    const { idporten } = tenant;
    const returnTo = safeReturnTo(request.query.returnTo, tenant.publicUrl);
    const acr = (idporten.allowedAcrValues as string[]).includes(request.query.acr ?? '') ? (request.query.acr as AcrLevel) : idporten.acrValues;
    const locale = idporten.allowedLocales.includes(request.query.locale ?? '') ? request.query.locale! : idporten.uiLocales;
    let started;
    try {
      started = await ctx.clients.get(tenant.id)!.startLogin({ acr, locale, redirectUri: callbackUrl(tenant) });
    } catch (err) {
      const reason = err instanceof OidcError ? err.reason : 'login could not start';
      ctx.audit.event('login.failure', { tenant: tenant.id, reason, stage: 'start' });
      if (wantsHtml(request)) return sendErrorPage(reply, tenant, 503, 'ID-porten is unavailable', 'The login could not start because ID-porten did not answer. Please try again shortly.', request.id);
      throw new GatewayError('idp_unavailable', 'ID-porten could not be reached; try again shortly.', { cause: err });
    }
    const { transaction, url } = started;
    const policy = ctx.cookies(tenant);
    dropOldestTransactions(request, reply, policy.transactionPrefix, ctx, tenant);
    const current = await currentSession(ctx, request, tenant);
    const pending: SealedLoginTransaction = { tenant: tenant.id, ...transaction, returnTo, createdAt: ctx.now(), ...(current ? { replacesSession: current.id } : {}) };
    const sealed = sealTransaction(ctx.keys, pending);
    reply.setCookie(policy.transactionPrefix + transactionCookieSuffix(transaction.state), sealed, transactionCookieAttributes(policy, LOGIN_TRANSACTION_TTL_SECONDS));
    ctx.audit.event('login.start', { tenant: tenant.id, acr, locale, state: fingerprint(transaction.state), par: !url.searchParams.has('state') });
    return reply.header('cache-control', 'no-store').redirect(url.toString(), 302);
  });

  app.get<{ Querystring: CallbackQuery }>('/auth/callback', { schema: { querystring: stringQuery(['state', 'code', 'error', 'iss']) } }, async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    const { state, error } = request.query;
    const policy = ctx.cookies(tenant);
    const cookieName = state ? policy.transactionPrefix + transactionCookieSuffix(state) : undefined;
    const sealed = cookieName ? request.cookies[cookieName] : undefined;
    const tx = state ? openTransaction(ctx.keys, sealed, tenant.id, state, ctx.now()) : undefined;
    // One attempt per transaction: the cookie goes whatever happens next, so a replayed callback URL finds nothing.
    if (cookieName && sealed !== undefined) reply.clearCookie(cookieName, clearedCookieAttributes(policy, 'lax'));
    const fail = (status: number, reason: string, message: string) => {
      ctx.audit.event('login.failure', { tenant: tenant.id, reason, state: fingerprint(state) });
      return sendErrorPage(reply, tenant, status, 'Login failed', message, request.id);
    };

    if (error !== undefined) {
      // RFC 9207: an error response carries iss too; one from another issuer is not ours to act on.
      if (request.query.iss !== undefined && request.query.iss !== tenant.idporten.issuer) return fail(400, 'error response from another issuer', 'The login answer did not come from ID-porten.');
      if (error === 'access_denied') {
        ctx.audit.event('login.cancelled', { tenant: tenant.id, state: fingerprint(state) });
        return reply.header('cache-control', 'no-store').redirect(tenantRoot(tenant, { login_error: 'cancelled' }), 302);
      }
      return fail(400, `provider error ${error.slice(0, 64).replace(/[^a-z_]/gi, '')}`, 'ID-porten could not complete the login.');
    }
    if (!state) return fail(400, 'missing state', 'The login answer was incomplete. Please start the login again.');
    if (!tx) return fail(400, 'unknown or expired login transaction', 'This login has expired or was started in another browser. Please start the login again.');

    const currentUrl = new URL(callbackUrl(tenant));
    currentUrl.search = new URL(request.raw.url ?? '/', 'http://x').search;
    let tokens;
    try {
      tokens = await ctx.clients.get(tenant.id)!.finishLogin(currentUrl, tx);
    } catch (err) {
      const failure = err instanceof OidcError ? err : new OidcError('rejected', 'login failed', { cause: err });
      request.log.warn({ tenant: tenant.id, reason: failure.reason }, 'login failed');
      if (failure.kind === 'unavailable') return fail(503, failure.reason, 'ID-porten did not answer. Please try again shortly.');
      return fail(400, failure.reason, 'The login answer from ID-porten could not be accepted. Please start the login again.');
    }

    // No fixation: whatever session this browser had is destroyed and the new one gets a new id.
    const cookieSession = SessionManager.idForCookie(request.cookies[policy.sessionName]);
    const replaced = [...new Set([cookieSession, tx.replacesSession])].filter((id): id is string => id !== undefined);
    for (const id of replaced) {
      const old = await ctx.sessions.loadById(id);
      if (old.state === 'none' || old.session.data.tenant !== tenant.id) continue;
      await ctx.sessions.destroy(id);
      // Its tokens are nobody's now: revoke them at ID-porten without holding up the login.
      void revokeTokens(ctx, request.log, tenant, old.session);
    }

    const claims = tokens.idTokenClaims;
    const now = ctx.now();
    const acr = acrFromClaims(claims, tx.acr);
    const data: SessionData = {
      tenant: tenant.id,
      user: {
        sub: claims.sub!,
        pid: typeof claims.pid === 'string' ? claims.pid : undefined,
        acr,
        amr: Array.isArray(claims.amr) ? claims.amr.filter((a): a is string => typeof a === 'string') : [],
        locale: typeof claims.locale === 'string' ? claims.locale : undefined,
        sid: typeof claims.sid === 'string' ? claims.sid : undefined,
      },
      idTokenBinding: { iss: claims.iss!, aud: tenant.idporten.clientId, sub: claims.sub!, acr },
      createdAt: now,
      tokens: {
        accessToken: tokens.accessToken,
        accessTokenIssuedAt: now,
        accessTokenExpiresAt: tokens.accessTokenExpiresAt,
        refreshToken: tokens.refreshToken,
        idToken: tokens.idToken,
        scope: tokens.scope,
      },
    };
    const { cookieValue, session } = await ctx.sessions.create(data);
    setSessionCookie(ctx, reply, tenant, cookieValue);
    ctx.audit.event('login.success', {
      tenant: tenant.id,
      session: session.hash,
      sub: data.user.sub,
      acr,
      amr: data.user.amr,
      sid: fingerprint(data.user.sid),
      replacedSession: replaced[0] ? SessionManager.hashForLog(replaced[0]) : undefined,
      idToken: fingerprint(tokens.idToken),
      accessToken: fingerprint(tokens.accessToken),
      refreshToken: fingerprint(tokens.refreshToken),
      accessTokenExpiresAt: new Date(tokens.accessTokenExpiresAt).toISOString(),
    });
    return reply.header('cache-control', 'no-store').redirect(new URL(tx.returnTo, tenant.publicUrl).toString(), 302);
  });

  app.get('/auth/login/cancelled', async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    const policy = ctx.cookies(tenant);
    let cleared = 0;
    for (const name of Object.keys(request.cookies)) {
      if (name.startsWith(policy.transactionPrefix)) {
        reply.clearCookie(name, clearedCookieAttributes(policy, 'lax'));
        cleared++;
      }
    }
    ctx.audit.event('login.cancelled', { tenant: tenant.id, via: 'return-uri', transactions: cleared });
    return reply.header('cache-control', 'no-store').redirect(tenantRoot(tenant, { login_error: 'cancelled' }), 302);
  });
}

/** Keeps at most MAX_PENDING_LOGINS - 1 older transaction cookies so one browser's header stays small. */
function dropOldestTransactions(request: FastifyRequest, reply: FastifyReply, prefix: string, ctx: GatewayContext, tenant: TenantConfig): void {
  const pending = Object.keys(request.cookies).filter((n) => n.startsWith(prefix));
  if (pending.length < MAX_PENDING_LOGINS) return;
  const policy = ctx.cookies(tenant);
  for (const name of pending.slice(0, pending.length - MAX_PENDING_LOGINS + 1)) reply.clearCookie(name, clearedCookieAttributes(policy, 'lax'));
}

