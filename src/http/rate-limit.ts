/**
 * Limits on starting and finishing logins, the two routes that cost a round trip to ID-porten with client
 * authentication (a PAR request at the start, a token request at the callback) and that anyone may call.
 *
 * - Per client address and tenant (`server.rateLimit.login`, 30 a minute by default), with
 *   `@fastify/rate-limit`, registered inside the gateway's own scope so that a host application in library
 *   mode keeps its own routes unlimited. Over the limit: 429 problem `rate_limited` with `Retry-After`
 *   (RFC 6585 §4, RFC 9110 §10.2.3). The client address is the one the proxies in `server.trustProxy` report
 *   (the right-most X-Forwarded-For entry that is not one of them), worked out here rather than taken from
 *   `request.ip`, so that in library mode a host whose Fastify trusts every proxy (`trustProxy: true`, which
 *   takes the client-written left-most entry) cannot let a client rotate its way past the limit. With no
 *   proxies listed it is `request.ip`: the TCP peer standalone, the host's choice in library mode.
 * - Per browser: the redirect-loop breaker (`LoginLoopBreaker`): a browser whose logins came back more than
 *   LOGIN_LOOP.maxRoundTrips times within LOGIN_LOOP.windowMs and that starts yet another one gets a page that
 *   says so instead of another trip to ID-porten.
 *
 * OWASP ASVS 5.0 V2.4.1: anti-automation against excessive calls to functions that use costly resources.
 */
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { RateLimitConfig } from '../config/types.js';
import { GatewayError } from '../errors.js';
import { forwardedClient, trustedPeer } from '../proxy/trusted-peer.js';
import type { Tenant } from '../tenant/tenant.js';
import { sendErrorPage } from './replies.js';

/** The routes with their own counters: a login start and a login callback are counted apart. */
export type LoginRateBucket = 'login' | 'callback';

/**
 * The seam for a shared counter store. With several instances behind a load balancer each instance counts on
 * its own (the limit is then N × max); a Redis-backed store makes the limit hold across them. What the plugin
 * would pass: an ioredis client (`Redis` or `Cluster`, the one the session store already opens), the key
 * namespace below, and `failOpen` so that a Redis outage does not stop logins (the per-browser loop breaker and
 * ID-porten's own limits still apply).
 */
export interface LoginRateLimitStore {
  /** An ioredis client (`@fastify/rate-limit` defines its Lua commands on it). */
  redis: unknown;
  /** Key prefix in Redis; the bucket, tenant and address follow it. */
  nameSpace?: string;
  /** When the store cannot be reached, let the request through instead of answering 500. */
  failOpen?: boolean;
}

export const REDIS_RATE_LIMIT_NAMESPACE = 'idporten-bff:rate-limit:';

export interface LoginRateLimitOptions {
  limits: RateLimitConfig;
  /** `server.trustProxy`: the proxies whose X-Forwarded-For entries name the client. */
  trustProxy: false | readonly string[];
  /** undefined: a memory store per instance. */
  store?: LoginRateLimitStore;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The onRequest hook that counts a request against `bucket` (see registerLoginRateLimit). */
    loginRateLimit(bucket: LoginRateBucket): onRequestAsyncHookHandler;
  }
}

/** Most distinct keys (bucket, tenant, address) the memory store keeps; the least recently used go first. */
const MEMORY_STORE_KEYS = 10_000;

/**
 * Registers `@fastify/rate-limit` on `scope` (the gateway's own scope, never the host application's) without any
 * global limit, and decorates `scope.loginRateLimit(bucket)`: one limiter per bucket, so the HEAD route Fastify
 * adds for a GET shares its GET's counter (HEAD /auth/login runs the same handler and costs the same PAR call).
 */
export async function registerLoginRateLimit(scope: FastifyInstance, opts: LoginRateLimitOptions): Promise<void> {
  const { max, windowMs } = opts.limits.login;
  await scope.register(rateLimit, {
    global: false,
    max,
    timeWindow: windowMs,
    cache: MEMORY_STORE_KEYS,
    // The answer is the gateway's problem JSON, headers included; the plugin adds none of its own.
    addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': false },
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    ...(opts.store
      ? { redis: opts.store.redis, nameSpace: opts.store.nameSpace ?? REDIS_RATE_LIMIT_NAMESPACE, skipOnError: opts.store.failOpen ?? true }
      : {}),
  });
  const clientOf = clientAddress(opts.trustProxy);
  const limiters = new Map<LoginRateBucket, onRequestAsyncHookHandler>();
  scope.decorate('loginRateLimit', (bucket: LoginRateBucket): onRequestAsyncHookHandler => {
    let hook = limiters.get(bucket);
    if (hook) return hook;
    const limiter = scope.createRateLimit({ max, timeWindow: windowMs, keyGenerator: (request) => rateKey(bucket, request, clientOf(request)) });
    hook = async (request) => {
      // An unknown host is answered 421 by the route without any call to ID-porten; there is nothing to count.
      if (!request.bff?.tenant) return;
      const result = await limiter(request);
      if (result.isAllowed || !result.isExceeded) return;
      request.log.warn({ tenant: request.bff.tenant.id, bucket, max }, 'login rate limit exceeded');
      throw new GatewayError('rate_limited', 'Too many login requests from this address; try again later.', {
        retryAfterSeconds: Math.max(1, result.ttlInSeconds),
      });
    };
    limiters.set(bucket, hook);
    return hook;
  });
}

/** bucket, tenant and client address (IPv6 by its /64, as one host usually holds a whole /64). */
export function rateKey(bucket: LoginRateBucket, request: FastifyRequest, client: string): string {
  return `${bucket}:${request.bff?.tenant?.id ?? '-'}:${normalizeIP(client, 64)}`;
}

/** The client address a login counts against (see the top of this file). */
function clientAddress(trustProxy: false | readonly string[]): (request: FastifyRequest) => string {
  if (trustProxy === false || trustProxy.length === 0) return (request) => request.ip;
  const isTrusted = trustedPeer([...trustProxy]);
  return (request) => forwardedClient(request.raw.socket.remoteAddress, request.headers['x-forwarded-for'], isTrusted) ?? request.ip;
}

/**
 * The redirect-loop breaker's numbers: a login start after `maxRoundTrips` logins came back to the callback within
 * `windowMs` (counted from the first of them) is taken for a loop.
 */
export const LOGIN_LOOP = { maxRoundTrips: 5, windowMs: 60_000 } as const;

interface LoopCount {
  /** Logins that came back to the callback in this window. */
  n: number;
  /** When the window started (ms since the epoch, the gateway's clock). */
  s: number;
}

/**
 * Stops a redirect loop before it makes yet another round trip to ID-porten: the page sends the browser to
 * /auth/login, ID-porten's single sign-on sends it straight back to /auth/callback, the login completes, and the
 * page still does not see a session (a cookie it does not get, a check that fails) and starts over, several times
 * a second, each time with a PAR and a token request with client authentication.
 *
 * The signal is the number of completed round trips (a callback that found its own login transaction) this
 * browser made in the window, in a small counter cookie of its own, `<session cookie name>-loop`, sealed with the
 * key ring (nobody else can set it to lock a browser out) and bound to the tenant. The transaction cookies are
 * no signal: the callback clears each one, so a loop whose logins complete never piles them up. Nor are login
 * starts: a page may start many logins that never come back (tabs, a user who leaves ID-porten's page), which
 * is no loop and costs at most the per-address limit. A browser that keeps no cookies sends no signal; the
 * per-address limit still holds for it.
 */
export class LoginLoopBreaker {
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  static cookieName(tenant: Tenant): string {
    return `${tenant.cookies.sessionName}-loop`;
  }

  /** At a login start: the seconds until the window ends when this browser is looping, otherwise undefined. */
  looping(request: FastifyRequest, tenant: Tenant): number | undefined {
    const now = this.#now();
    const count = this.#open(request.cookies[LoginLoopBreaker.cookieName(tenant)], tenant, now);
    if (!count || count.n < LOGIN_LOOP.maxRoundTrips) return undefined;
    return secondsLeft(count, now);
  }

  /** At the callback, once it found its transaction: counts one more round trip. */
  roundTrip(request: FastifyRequest, reply: FastifyReply, tenant: Tenant): void {
    const now = this.#now();
    const name = LoginLoopBreaker.cookieName(tenant);
    const previous = this.#open(request.cookies[name], tenant, now);
    const count: LoopCount = previous ? { n: previous.n + 1, s: previous.s } : { n: 1, s: now };
    reply.setCookie(name, tenant.keys.seal(JSON.stringify(count), aad(tenant)), {
      httpOnly: true,
      secure: tenant.cookies.secure,
      // Lax: it is set at the end of a cross-site chain and read at the next top-level navigation to the login.
      sameSite: 'lax',
      path: '/',
      maxAge: secondsLeft(count, now),
    });
  }

  #open(sealed: string | undefined, tenant: Tenant, now: number): LoopCount | undefined {
    if (sealed === undefined || sealed.length > 512) return undefined;
    const plain = tenant.keys.open(sealed, aad(tenant));
    if (plain === undefined) return undefined;
    try {
      const value = JSON.parse(plain) as Partial<LoopCount>;
      if (!Number.isSafeInteger(value.n) || !Number.isSafeInteger(value.s)) return undefined;
      const count = value as LoopCount;
      // An old window, or one from a clock that ran ahead, starts a new one.
      if (count.s > now || now - count.s >= LOGIN_LOOP.windowMs) return undefined;
      return count;
    } catch {
      return undefined;
    }
  }
}

const secondsLeft = (count: LoopCount, now: number): number => Math.max(1, Math.ceil((count.s + LOGIN_LOOP.windowMs - now) / 1000));
const aad = (tenant: Tenant): string => `login-loop:${tenant.id}`;

/** The page a looping browser gets instead of another trip to ID-porten: it reflects nothing but the request id. */
export function sendLoginLoopPage(reply: FastifyReply, tenant: Tenant, retryAfterSeconds: number, correlationId: string): FastifyReply {
  reply.header('retry-after', String(retryAfterSeconds));
  return sendErrorPage(
    reply,
    tenant,
    429,
    'Too many logins',
    'This browser has logged in many times within a minute. That usually means the page keeps sending you back to the login. Please wait a minute and try again; if it happens again, the service may not be keeping your login.',
    correlationId,
  );
}
