/**
 * RFC 8707 resource indicators (`routes[].resource`), black box: a real oidc-provider with resource indicators on,
 * real HTTP, and upstreams that accept only a JWT whose `aud` is their own resource. Every configured resource is
 * named in the authorization request (section 2.1); each route's token is asked for by a refresh grant with
 * `resource` (section 2.2), kept per resource, refreshed on its own, and never sent to another upstream.
 */
import t, { type Test } from 'tap';
import { createRemoteJWKSet } from 'jose';
import { fingerprint } from '../src/audit/fingerprint.js';
import { ConfigError, normaliseConfig } from '../src/config/load.js';
import { API_RESOURCE, type TokenGrantRecord } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { startEchoUpstream, type EchoUpstream } from './helpers/echo-upstream.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { keptCookieSender, startPeerGateway, startStack, type Stack, type StackOptions } from './helpers/stack.js';
import type { Teardown } from './helpers/teardown.js';

const RESOURCE_A = 'https://api-a.example.no/';
const RESOURCE_B = 'urn:example:api-b';
const api = { 'x-csrf': '1' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ResourceStack {
  stack: Stack;
  a: EchoUpstream;
  b: EchoUpstream;
  plain: EchoUpstream;
}

/** Two routes with their own resource and one without, each to an upstream that verifies the audience it expects. */
async function resourceStack(t: Teardown, opts: StackOptions = {}): Promise<ResourceStack> {
  const upstreams: EchoUpstream[] = [];
  let issuerJwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  // The look-alike's keys are known once it runs; the upstreams start first so that the routes can name them.
  const keys: Parameters<typeof startEchoUpstream>[0]['verificationKey'] = (header, token) => issuerJwks!(header, token);
  for (const audience of [RESOURCE_A, RESOURCE_B, API_RESOURCE]) {
    const upstream = await startEchoUpstream({ verificationKey: keys, audience });
    t.teardown(() => upstream.close());
    upstreams.push(upstream);
  }
  const [a, b, plain] = upstreams as [EchoUpstream, EchoUpstream, EchoUpstream];
  const stack = await startStack(t, {
    ...opts,
    routes: [
      { path: '/a', upstream: a.origin, token: 'idporten', resource: RESOURCE_A },
      { path: '/b', upstream: b.origin, token: 'idporten', resource: RESOURCE_B },
      { path: '/plain', upstream: plain.origin, token: 'idporten' },
    ],
  });
  issuerJwks = createRemoteJWKSet(new URL(stack.op.jwksUri));
  return { stack, a, b, plain };
}

async function login(stack: Stack): Promise<{ browser: Browser; cookieValue: string }> {
  const browser = new Browser();
  await loginAtLookalike(browser, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  const cookieValue = browser.cookie('localhost', 'bff')?.value;
  if (!cookieValue) throw new Error('login set no session cookie');
  return { browser, cookieValue };
}

const refreshGrants = (stack: Stack, since = 0): TokenGrantRecord[] => stack.op.observed.grants.slice(since).filter((g) => g.grantType === 'refresh_token');
const bearerOf = (upstream: EchoUpstream, index: number): string => String(upstream.requests[index]?.headers.authorization ?? '').replace(/^Bearer /, '');

t.test('each upstream sees only a token for its own audience, the resources named through PAR (RFC 8707 sections 2.1, 2.2)', (t) => ownAudienceOnly(t, true));
t.test('each upstream sees only a token for its own audience, the resources named in the authorization URL (RFC 8707 sections 2.1, 2.2)', (t) => ownAudienceOnly(t, false));

async function ownAudienceOnly(t: Test, usePar: boolean): Promise<void> {
  const { stack, a, b, plain } = await resourceStack(t, { idporten: { usePar } });
  const { browser } = await login(stack);
  const authorize = browser.history.map((r) => new URL(r.url)).find((url) => url.origin === stack.op.issuer && url.pathname === '/authorize');
  if (usePar) t.ok(authorize?.searchParams.has('request_uri') && !authorize.searchParams.has('resource'), 'the resources went in the pushed request');
  else t.same(authorize?.searchParams.getAll('resource'), [RESOURCE_A, RESOURCE_B], 'one resource parameter per resource in the authorization URL');
  for (const path of ['/a/x', '/b/x', '/plain/x', '/a/y', '/b/y']) {
    const res = await browser.fetch(`${stack.publicUrl}${path}`, { headers: api });
    t.equal(res.status, 200, `${path} answered 200 by an upstream that verified the audience`);
  }
  t.equal(a.requests[0]?.claims?.aud, RESOURCE_A, 'route /a carries a token for its resource');
  t.equal(b.requests[0]?.claims?.aud, RESOURCE_B, 'route /b carries a token for its resource');
  t.equal(plain.requests[0]?.claims?.aud, API_RESOURCE, 'the route without resource carries the session token, as before');
  const seen = [bearerOf(a, 0), bearerOf(b, 0), bearerOf(plain, 0)];
  t.equal(new Set(seen).size, 3, 'three different tokens: none reaches two upstreams');
  t.equal(bearerOf(a, 1), bearerOf(a, 0), 'the resource token is kept in the session and sent again');
  const grants = refreshGrants(stack);
  t.same(grants.map((g) => g.resource).sort(), [RESOURCE_A, RESOURCE_B], 'one refresh grant per resource, each naming it; none for the plain route');
  t.ok(grants.every((g) => g.ok), 'the provider accepted both resources: the authorization request named them');
  t.notOk(stack.logText().includes(bearerOf(a, 0)), 'the resource token is not logged');
}

t.test('a resource token is refreshed on its own; a refresh of the session token keeps it, and the other way round', async (t) => {
  const TTL = 8; // refresh leeway: a quarter of the lifetime, 2 s
  const { stack, a, plain } = await resourceStack(t, { op: { accessTokenTtlSeconds: TTL } });
  const { browser } = await login(stack);
  const loggedInAt = Date.now();
  const call = async (path: string) => (await browser.fetch(`${stack.publicUrl}${path}`, { headers: api })).status;

  await sleep(2_500);
  const aObtainedAt = Date.now();
  t.equal(await call('/a/1'), 200);
  const firstA = bearerOf(a, 0);

  // The session token enters its leeway (about 5 s after login) while the /a token still has about 2.5 s to go.
  await sleep(Math.max(0, loggedInAt + 5_600 - Date.now()));
  let mark = stack.op.observed.grants.length;
  t.equal(await call('/plain/1'), 200);
  t.same(refreshGrants(stack, mark).map((g) => g.resource ?? 'session'), ['session'], 'the session token was refreshed, without resource');
  mark = stack.op.observed.grants.length;
  t.equal(await call('/a/2'), 200);
  t.same(refreshGrants(stack, mark), [], 'the /a token survived the refresh of the session token: no grant');
  t.equal(bearerOf(a, 1), firstA, 'and the same /a token went out');

  // Now the /a token enters its leeway; the session token, refreshed a moment ago, does not.
  await sleep(Math.max(0, aObtainedAt + 6_300 - Date.now()));
  mark = stack.op.observed.grants.length;
  const plainSeen = plain.requests.length;
  t.equal(await call('/a/3'), 200);
  t.same(refreshGrants(stack, mark).map((g) => g.resource), [RESOURCE_A], 'one refresh grant, for resource A alone');
  t.not(bearerOf(a, 2), firstA, 'a new /a token went out');
  t.equal(await call('/plain/2'), 200);
  t.same(refreshGrants(stack, mark).length, 1, 'the refresh for /a did not touch the session token');
  t.equal(bearerOf(plain, plainSeen), bearerOf(plain, plainSeen - 1), 'the session token sent is the one refreshed before');
  t.equal(stack.op.stats.refreshGrantErrors, 0, 'no refresh token presented twice');
});

t.test('many parallel calls to two resource routes across two instances sharing Redis present each refresh token once', { skip: redisMissingReason() ?? false }, async (t) => {
  const TTL = 6;
  const redis = await startRedis(t);
  const { stack, a, b, plain } = await resourceStack(t, {
    op: { accessTokenTtlSeconds: TTL },
    session: { store: { type: 'redis', url: redis.url, keyPrefix: 'bff-resource:' } },
  });
  const peer = await startPeerGateway(t, stack);
  const { cookieValue } = await login(stack);
  const send = keptCookieSender(stack, cookieValue);
  t.equal((await send(undefined, '/a/warm', { headers: api })).status, 200);
  t.equal((await send(peer.port, '/b/warm', { headers: api })).status, 200);

  // Every token the session holds is now inside its leeway (or expired): each of the calls below needs a grant.
  await sleep(TTL * 1000);
  const mark = stack.op.observed.grants.length;
  const calls = Array.from({ length: 24 }, (_, i) => send(i % 4 < 2 ? undefined : peer.port, `${i % 2 === 0 ? '/a' : '/b'}/${i}`, { headers: api }));
  const statuses = (await Promise.all(calls)).map((res) => res.status);
  t.same(statuses, statuses.map(() => 200), 'every call was answered 200 by its upstream');

  const grants = refreshGrants(stack, mark);
  const presented = grants.map((g) => g.presented);
  t.equal(new Set(presented).size, presented.length, 'each refresh token was presented once');
  t.ok(grants.every((g) => g.ok), 'no grant refused: none presented a spent token');
  t.same([...new Set(grants.map((g) => g.resource))].sort(), [RESOURCE_A, RESOURCE_B], 'a grant for each resource, none without');
  t.ok(grants.length <= 4, `at most one grant per resource per instance (${grants.length})`);
  // Each grant presented the token the one before it issued: a chain, nothing lost on the way.
  for (let i = 1; i < grants.length; i += 1) t.equal(grants[i]!.presented, grants[i - 1]!.issued, `grant ${i + 1} presented the token grant ${i} issued`);
  t.ok(a.requests.every((r) => r.claims?.aud === RESOURCE_A) && b.requests.every((r) => r.claims?.aud === RESOURCE_B), 'each upstream only saw its own audience');

  // Nothing was lost: the session goes on, on both instances, and its next refresh grant succeeds.
  t.equal((await send(peer.port, '/plain/after', { headers: api })).status, 200);
  t.equal((await send(undefined, '/a/after', { headers: api })).status, 200);
  t.equal(plain.requests.at(-1)?.claims?.aud, API_RESOURCE);
  t.equal(stack.op.stats.refreshGrantErrors, 0, 'no refresh grant failed');
});

t.test('logout revokes the resource tokens with the session\'s own tokens (RFC 7009)', async (t) => {
  const { stack, a, b } = await resourceStack(t);
  const { browser, cookieValue } = await login(stack);
  for (const path of ['/a/x', '/b/x', '/plain/x']) t.equal((await browser.fetch(`${stack.publicUrl}${path}`, { headers: api })).status, 200);
  const loaded = await stack.gateway.core.lifecycle.sessions.load(cookieValue);
  if (loaded.state !== 'live') throw new Error('no live session');
  const { refreshToken, accessToken } = loaded.session.data.tokens;

  const logout = await browser.fetch(`${stack.publicUrl}/auth/logout`, { method: 'POST', headers: { ...api, accept: 'application/json' } });
  t.equal(logout.status, 200);
  const revoked = stack.op.observed.revoked;
  for (const [name, token] of [['refresh token', refreshToken], ['session access token', accessToken], ['/a token', bearerOf(a, 0)], ['/b token', bearerOf(b, 0)]] as const) {
    t.ok(revoked.includes(fingerprint(token)!), `the ${name} was revoked`);
  }
  t.equal(await stack.op.isRefreshTokenActive(refreshToken!), false, 'the grant is gone at the provider');
  const audit = stack.audit('logout').at(-1);
  t.match(audit?.revoked, { refreshToken: true, accessToken: true, resourceTokens: true }, 'the logout audit line says so');
});

t.test('a provider that refuses a resource (invalid_target, RFC 8707 section 2) gives a problem, and the session lives on', async (t) => {
  const { stack, a } = await resourceStack(t);
  const { browser } = await login(stack);
  const call = (path: string) => browser.fetch(`${stack.publicUrl}${path}`, { headers: api });
  stack.op.refuseResource(RESOURCE_A, true);
  const refused = await call('/a/x');
  t.equal(refused.status, 502);
  t.match(refused.headers.get('content-type'), /^application\/problem\+json/);
  t.match(JSON.parse(refused.body), { code: 'resource_refused', status: 502 });
  t.equal(a.requests.length, 0, 'nothing went to the upstream');
  t.equal(stack.op.stats.refreshGrantErrors, 1, 'the provider answered the grant invalid_target');

  t.equal((await call('/plain/x')).status, 200, 'the route without resource still works');
  t.equal((await call('/b/x')).status, 200, 'another resource still works: the refresh token presented was not spent');
  stack.op.refuseResource(RESOURCE_A, false);
  t.equal((await call('/a/x')).status, 200, 'once the provider takes the resource again, the route works');
  t.equal((await browser.fetch(`${stack.publicUrl}/auth/session`)).status, 200, 'the session was never lost');
  t.equal(stack.op.stats.refreshGrantErrors, 1, 'and no refresh token was presented twice');
});

t.test('a resource added after a login is asked for only by a new login: 401 login_required, no grant the provider could refuse after spending the refresh token', async (t) => {
  const RESOURCE_C = 'https://api-c.example.no/';
  const { stack, a, b } = await resourceStack(t);
  const { browser } = await login(stack);
  t.equal((await browser.fetch(`${stack.publicUrl}/b/x`, { headers: api })).status, 200);
  const raw = structuredClone(stack.rawConfig) as { tenants: { routes: { path: string; resource?: string }[] }[] };
  raw.tenants[0]!.routes.find((route) => route.path === '/b')!.resource = RESOURCE_C;
  await stack.gateway.reload(raw);

  const mark = stack.op.observed.grants.length;
  const refused = await browser.fetch(`${stack.publicUrl}/b/y`, { headers: api });
  t.equal(refused.status, 401);
  t.match(JSON.parse(refused.body), { code: 'login_required', loginUrl: /\/auth\/login/ });
  t.equal(b.requests.length, 1, 'nothing more reached the upstream');
  t.same(refreshGrants(stack, mark), [], 'no grant asked for the resource the login did not name');
  t.equal((await browser.fetch(`${stack.publicUrl}/a/x`, { headers: api })).status, 200, 'the session lives on for the other routes');
  t.equal(a.requests.at(-1)?.claims?.aud, RESOURCE_A);

  const after = new Browser();
  await loginAtLookalike(after, `${stack.publicUrl}/auth/login`, { pid: TEST_USERS[0]!.pid });
  await after.fetch(`${stack.publicUrl}/b/z`, { headers: api });
  const grants = refreshGrants(stack, mark).filter((g) => g.resource === RESOURCE_C);
  t.equal(grants.length, 1, 'after a new login, one grant for the new resource');
  t.ok(grants[0]?.ok, 'which the provider grants: the new login named it');
});

t.test('configuration: resource is an absolute URI without fragment, on token: idporten routes only', async (t) => {
  const raw = (route: Record<string, unknown>) => ({
    session: { keys: [{ id: 'k1', secret: Buffer.alloc(32, 7).toString('base64url') }] },
    tenants: [
      {
        id: 't',
        publicUrl: 'http://localhost:3000',
        idporten: { issuer: 'http://127.0.0.1:9/', clientId: 'c', clientAuth: { method: 'client_secret_post', secret: 'x'.repeat(32) } },
        altinn: { exchangeUrl: 'http://127.0.0.1:9/exchange' },
        routes: [{ path: '/api', upstream: 'http://127.0.0.1:9/', ...route }],
      },
    ],
  });
  const issue = (route: Record<string, unknown>) => {
    try {
      normaliseConfig(raw(route), {});
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.find((i) => i.path === 'tenants[0].routes[0].resource')?.message;
      throw err;
    }
    return undefined;
  };
  t.match(issue({ token: 'altinn', resource: RESOURCE_A }), /token: idporten only/, 'refused on an Altinn route');
  t.match(issue({ token: 'none', resource: RESOURCE_A }), /sends no token/, 'refused on a public route');
  t.match(issue({ token: 'idporten', resource: 'api-a' }), /absolute URI/, 'a relative reference is refused (RFC 8707 section 2)');
  t.match(issue({ token: 'idporten', resource: 'https://api.example.no/#x' }), /fragment/, 'a fragment is refused (RFC 8707 section 2)');
  t.equal(issue({ token: 'idporten', resource: RESOURCE_B }), undefined, 'a URN is an absolute URI');
  const config = normaliseConfig(raw({ token: 'idporten', resource: RESOURCE_A }), {});
  t.equal(config.tenants[0]?.routes[0]?.resource, RESOURCE_A, 'kept as written: the provider copies it into aud');
});
