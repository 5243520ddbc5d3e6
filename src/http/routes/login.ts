import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { fingerprint } from '../../audit/fingerprint.js';
import type { AcrLevel } from '../../config/types.js';
import { GatewayError, RETRY_AFTER_SECONDS } from '../../errors.js';
import { LOGIN_PROMPTS, type LoginPrompt } from '../../idporten/client.js';
import { OidcError } from '../../idporten/errors.js';
import { clearedCookieAttributes, transactionCookieAttributes } from '../../session/cookies.js';
import {
  LOGIN_TRANSACTION_TTL_SECONDS,
  MAX_PENDING_LOGINS,
  openTransaction,
  sealTransaction,
  transactionCookieSuffix,
  type SealedLoginTransaction,
} from '../../session/login-transaction.js';
import type { Tenant } from '../../tenant/tenant.js';
import { callbackUrl, tenantRoot } from '../../tenant/urls.js';
import { TokenLifecycle } from '../../tokens/lifecycle.js';
import { wantsHtml } from '../negotiation.js';
import { LoginLoopBreaker, sendLoginLoopPage } from '../rate-limit.js';
import { sendErrorPage, setSessionCookie } from '../replies.js';
import { MAX_RETURN_TO_BYTES, returnToTooLong, safeReturnTo } from '../return-to.js';

interface LoginQuery {
  returnTo?: string;
  acr?: string;
  locale?: string;
  prompt?: string;
  max_age?: string;
}

/**
 * The largest max_age taken (one year, in seconds). ID-porten's own sessions last two hours at most, so anything
 * longer asks for nothing more; a value far beyond that is a mistake, refused rather than passed on.
 */
export const MAX_AGE_LIMIT_SECONDS = 365 * 24 * 3600;

/** The login controls of a /auth/login query (OIDC Core 3.1.2.1), or invalid_request for a value not taken. */
function loginControls(query: LoginQuery): { prompt?: LoginPrompt; maxAge?: number } {
  const controls: { prompt?: LoginPrompt; maxAge?: number } = {};
  if (query.prompt !== undefined) {
    if (!(LOGIN_PROMPTS as readonly string[]).includes(query.prompt)) throw new GatewayError('invalid_request', `prompt must be one of ${LOGIN_PROMPTS.join(', ')}.`);
    controls.prompt = query.prompt as LoginPrompt;
  }
  if (query.max_age !== undefined) {
    const maxAge = /^\d{1,10}$/.test(query.max_age) ? Number(query.max_age) : Number.NaN;
    if (!(maxAge <= MAX_AGE_LIMIT_SECONDS)) throw new GatewayError('invalid_request', `max_age must be a whole number of seconds from 0 to ${MAX_AGE_LIMIT_SECONDS}.`);
    controls.maxAge = maxAge;
  }
  return controls;
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
export async function loginRoutes(app: FastifyInstance): Promise<void> {
  const { lifecycle, audit, now } = app.gateway;
  const loop = new LoginLoopBreaker(now);

  const loginOptions = { schema: { querystring: stringQuery(['returnTo', 'acr', 'locale', 'prompt', 'max_age']) }, onRequest: app.loginRateLimit('login') };
  app.get<{ Querystring: LoginQuery }>('/auth/login', loginOptions, async (request, reply) => {
    const tenant = request.bff.requireTenant();
    // A returnTo is carried in the transaction cookie; an overlong one would be a cookie bomb.
    if (returnToTooLong(request.query.returnTo)) throw new GatewayError('invalid_request', `returnTo is longer than ${MAX_RETURN_TO_BYTES} bytes.`);
    const { prompt, maxAge } = loginControls(request.query);
    const loopRetryAfter = loop.looping(request, tenant);
    if (loopRetryAfter !== undefined) {
      audit.event('login.failure', { tenant: tenant.id, reason: 'login loop', stage: 'start' });
      return sendLoginLoopPage(reply, tenant, loopRetryAfter, request.id);
    }
    const { idporten } = tenant.config;
    const returnTo = safeReturnTo(request.query.returnTo, tenant.config.publicUrl);
    const acr = (idporten.allowedAcrValues as string[]).includes(request.query.acr ?? '') ? (request.query.acr as AcrLevel) : idporten.acrValues;
    const locale = idporten.allowedLocales.includes(request.query.locale ?? '') ? request.query.locale! : idporten.uiLocales;
    let started;
    try {
      started = await tenant.idporten.startLogin({ acr, locale, prompt, maxAge, redirectUri: callbackUrl(tenant.config) });
    } catch (err) {
      const reason = err instanceof OidcError ? err.reason : 'login could not start';
      audit.event('login.failure', { tenant: tenant.id, reason, stage: 'start' });
      if (wantsHtml(request)) {
        const message = 'The login could not start because ID-porten did not answer. Please try again shortly.';
        return sendErrorPage(reply, tenant, 503, 'ID-porten is unavailable', message, request.id, RETRY_AFTER_SECONDS.idporten);
      }
      throw new GatewayError('idp_unavailable', 'ID-porten could not be reached; try again shortly.', { cause: err });
    }
    const { transaction, url } = started;
    const policy = tenant.cookies;
    const current = await request.bff.session();
    const pending: SealedLoginTransaction = { tenant: tenant.id, ...transaction, returnTo, createdAt: now(), ...(current ? { replacesSession: current.id } : {}) };
    const sealed = sealTransaction(tenant.keys, pending);
    const name = policy.transactionPrefix + transactionCookieSuffix(transaction.state);
    dropOldestTransactions(request, reply, tenant, cookieBytes(name, sealed));
    reply.setCookie(name, sealed, transactionCookieAttributes(policy, LOGIN_TRANSACTION_TTL_SECONDS));
    audit.event('login.start', {
      tenant: tenant.id,
      acr,
      locale,
      ...(prompt ? { prompt } : {}),
      ...(maxAge !== undefined ? { maxAge } : {}),
      state: fingerprint(transaction.state),
      par: !url.searchParams.has('state'),
    });
    return reply.header('cache-control', 'no-store').redirect(url.toString(), 302);
  });

  const callbackOptions = { schema: { querystring: stringQuery(['state', 'code', 'error', 'iss']) }, onRequest: app.loginRateLimit('callback') };
  app.get<{ Querystring: CallbackQuery }>('/auth/callback', callbackOptions, async (request, reply) => {
    const tenant = request.bff.requireTenant();
    const { state, error } = request.query;
    const policy = tenant.cookies;
    const cookieName = state ? policy.transactionPrefix + transactionCookieSuffix(state) : undefined;
    const sealed = cookieName ? request.cookies[cookieName] : undefined;
    const tx = state ? openTransaction(tenant.keys, sealed, tenant.id, state, now()) : undefined;
    // One attempt per transaction: the cookie goes whatever happens next, so a replayed callback URL finds nothing.
    if (cookieName && sealed !== undefined) reply.clearCookie(cookieName, clearedCookieAttributes(policy, 'lax'));
    const fail = (status: number, reason: string, message: string, retryAfterSeconds?: number) => {
      audit.event('login.failure', { tenant: tenant.id, reason, state: fingerprint(state) });
      return sendErrorPage(reply, tenant, status, 'Login failed', message, request.id, retryAfterSeconds);
    };

    if (error !== undefined) {
      // RFC 9207: an error response carries iss too; one from another issuer is not ours to act on.
      if (request.query.iss !== undefined && request.query.iss !== tenant.config.idporten.issuer) return fail(400, 'error response from another issuer', 'The login answer did not come from ID-porten.');
      if (error === 'access_denied') {
        audit.event('login.cancelled', { tenant: tenant.id, state: fingerprint(state) });
        return reply.header('cache-control', 'no-store').redirect(tenantRoot(tenant.config, { login_error: 'cancelled' }), 302);
      }
      return fail(400, `provider error ${error.slice(0, 64).replace(/[^a-z_]/gi, '')}`, 'ID-porten could not complete the login.');
    }
    if (!state) return fail(400, 'missing state', 'The login answer was incomplete. Please start the login again.');
    if (!tx) return fail(400, 'unknown or expired login transaction', 'This login has expired or was started in another browser. Please start the login again.');
    loop.roundTrip(request, reply, tenant);

    const currentUrl = new URL(callbackUrl(tenant.config));
    currentUrl.search = new URL(request.raw.url ?? '/', 'http://x').search;
    let tokens;
    try {
      tokens = await tenant.idporten.finishLogin(currentUrl, tx);
    } catch (err) {
      const failure = err instanceof OidcError ? err : new OidcError('rejected', 'login failed', { cause: err });
      request.log.warn({ tenant: tenant.id, reason: failure.reason }, 'login failed');
      if (failure.kind === 'unavailable') return fail(503, failure.reason, 'ID-porten did not answer. Please try again shortly.', RETRY_AFTER_SECONDS.idporten);
      return fail(400, failure.reason, 'The login answer from ID-porten could not be accepted. Please start the login again.');
    }

    // No fixation: whatever session this browser had is ended and the new one gets a new id.
    const { cookieValue } = await lifecycle.begin(tenant, tokens, {
      requestedAcr: tx.acr,
      replaces: [TokenLifecycle.idForCookie(request.cookies[policy.sessionName]), tx.replacesSession],
      userAgent: request.headers['user-agent']?.slice(0, 256),
    });
    setSessionCookie(reply, tenant, cookieValue);
    return reply.header('cache-control', 'no-store').redirect(new URL(tx.returnTo, tenant.config.publicUrl).toString(), 302);
  });

  app.get('/auth/login/cancelled', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    const policy = tenant.cookies;
    let cleared = 0;
    for (const name of Object.keys(request.cookies)) {
      if (name.startsWith(policy.transactionPrefix)) {
        reply.clearCookie(name, clearedCookieAttributes(policy, 'lax'));
        cleared++;
      }
    }
    audit.event('login.cancelled', { tenant: tenant.id, via: 'return-uri', transactions: cleared });
    return reply.header('cache-control', 'no-store').redirect(tenantRoot(tenant.config, { login_error: 'cancelled' }), 302);
  });
}

/**
 * The most the pending transaction cookies (the new one included) may add to the origin's Cookie header. With
 * returnTo at its 2,048-byte limit a transaction cookie is about 3.2 KB, so the count alone (MAX_PENDING_LOGINS)
 * would allow some 16 KB; this keeps the header, session cookie and the page's own cookies included, well under 8 KB.
 */
const PENDING_LOGINS_BUDGET_BYTES = 6 * 1024;

/** What one cookie adds to the Cookie header: `name=value; `. */
function cookieBytes(name: string, value: string): number {
  return Buffer.byteLength(name) + Buffer.byteLength(value) + 3;
}

/**
 * Keeps the newest older transaction cookies that fit both MAX_PENDING_LOGINS - 1 and, with the new one,
 * PENDING_LOGINS_BUDGET_BYTES; the rest (the oldest, which come first in the Cookie header) are cleared.
 */
function dropOldestTransactions(request: FastifyRequest, reply: FastifyReply, tenant: Tenant, newCookieBytes: number): void {
  const policy = tenant.cookies;
  const pending = Object.keys(request.cookies).filter((n) => n.startsWith(policy.transactionPrefix));
  let used = newCookieBytes;
  let kept = 0;
  for (let i = pending.length - 1; i >= 0; i--) {
    const name = pending[i]!;
    const bytes = cookieBytes(name, request.cookies[name] ?? '');
    if (kept < MAX_PENDING_LOGINS - 1 && used + bytes <= PENDING_LOGINS_BUDGET_BYTES) {
      used += bytes;
      kept++;
    } else {
      reply.clearCookie(name, clearedCookieAttributes(policy, 'lax'));
    }
  }
}

