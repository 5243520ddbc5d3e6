/**
 * Which session and which bearer a request gets (src/http/bff-request.ts), checked directly against a recording
 * token lifecycle: the cookie of the request's own tenant only, the session looked up once per request, 401 with
 * the right code when a route needs a session and has none, a step-up (OIDC Core 3.1.2.1 `acr_values`,
 * `prompt=login`) when the session's level is below the route's `acr`, and no bearer of one tenant for another's
 * route. The same rules through real logins are in auth-session.test.ts, login-controls.test.ts and bearer-now.test.ts.
 */
import type { FastifyRequest } from 'fastify';
import t from 'tap';
import type { RouteConfig } from '../src/config/types.js';
import { auditIdentity, BffRequest } from '../src/http/bff-request.js';
import type { Tenant } from '../src/tenant/tenant.js';
import type { CurrentSession, TokenLifecycle } from '../src/tokens/lifecycle.js';
import type { Session } from '../src/tokens/session-data.js';

const PUBLIC_URL = 'https://mva.example.no';

function tenantOf(id: string, opts: { exposePid?: boolean } = {}): Tenant {
  return {
    id,
    config: { id, publicUrl: PUBLIC_URL, exposePid: opts.exposePid ?? false, routes: [route('/api/a'), route('/api/public', { token: 'none' })] },
    cookies: { sessionName: `__Host-${id}` },
  } as unknown as Tenant;
}

function route(path: string, over: Partial<RouteConfig> = {}): RouteConfig {
  return { path, upstream: 'https://upstream.internal/', token: 'idporten', methods: ['GET'], timeoutMs: 1000, bodyLimitBytes: 1024, ...over };
}

function sessionAt(acr: string, user: Record<string, unknown> = {}): Session {
  return { id: 'id', hash: 'h4sh', lastSeenAt: 0, data: { user: { sub: 'sub-1', pid: '01017012345', acr, amr: ['BankID'], ...user } } } as unknown as Session;
}

/** A token lifecycle that answers what it is told and records what it was asked. */
function lifecycle(current: CurrentSession, opts: { liveNow?: Session } = {}) {
  const calls: string[] = [];
  const fake = {
    async current(tenant: Tenant, cookie: unknown) {
      calls.push(`current ${tenant.id} ${String(cookie)}`);
      return current;
    },
    liveNow(tenant: Tenant, cookie: unknown) {
      calls.push(`liveNow ${tenant.id} ${String(cookie)}`);
      return opts.liveNow;
    },
    needsSession: (kind: string) => kind !== 'none',
    async bearer(kind: string, tenant: Tenant, session: Session | undefined, resource?: string) {
      calls.push(`bearer ${kind} ${tenant.id} ${session?.hash} ${resource}`);
      return `${kind} token`;
    },
    bearerNow(kind: string, tenant: Tenant, session: Session | undefined, resource?: string) {
      calls.push(`bearerNow ${kind} ${tenant.id} ${session?.hash} ${resource}`);
      return { value: `${kind} token now` };
    },
  };
  return { lifecycle: fake as unknown as TokenLifecycle, calls };
}

const live = (session: Session): CurrentSession => ({ state: 'live', session });
const COOKIES = { '__Host-mva': 'mva-cookie', '__Host-other': 'other-cookie' };

t.test('a request reads the session cookie of its own tenant only, and looks the session up once', async (t) => {
  const s = sessionAt('idporten-loa-high');
  const { lifecycle: lc, calls } = lifecycle(live(s));
  const req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  t.equal(req.loaded, undefined, 'nothing looked up before it is asked for');
  t.equal(await req.session(), s);
  t.equal(await req.requireSession(), s);
  t.equal(await req.current(), await req.current());
  t.same(calls, ['current mva mva-cookie'], 'one lookup, with this tenant\'s cookie');
  t.equal(req.loaded, s, 'the session found is kept for the audit line');
  t.same(auditIdentity({ bff: req } as unknown as FastifyRequest), { session: 'h4sh', sub: 'sub-1' });
});

t.test('a host no tenant serves is unknown_tenant (421), with no session looked up', async (t) => {
  const { lifecycle: lc, calls } = lifecycle(live(sessionAt('idporten-loa-high')));
  const req = new BffRequest(lc, undefined, COOKIES);
  t.throws(() => req.requireTenant(), { name: 'GatewayError', code: 'unknown_tenant' });
  await t.rejects(req.session(), { code: 'unknown_tenant' });
  await t.rejects(req.bearerForRoute('/api/a'), { code: 'unknown_tenant' });
  await t.rejects(req.bearerFor('mva', route('/api/a')), { code: 'unknown_tenant' });
  t.equal(req.bearerNow('mva', route('/api/a')), undefined);
  t.same(calls, []);
  t.same(auditIdentity({ bff: req } as unknown as FastifyRequest), {});
  t.same(auditIdentity({} as FastifyRequest), {}, 'a request the gateway did not see');
});

t.test('no live session: 401 session_expired when this request found it ended, login_required otherwise', async (t) => {
  for (const [current, code] of [
    [{ state: 'ended', reason: 'idle' }, 'session_expired'],
    [{ state: 'ended', reason: 'expired' }, 'session_expired'],
    [{ state: 'none' }, 'login_required'],
  ] as const) {
    const { lifecycle: lc, calls } = lifecycle(current);
    const req = new BffRequest(lc, tenantOf('mva'), COOKIES);
    t.equal(await req.session(), undefined, `${current.state}: no session`);
    t.equal(await req.user(), undefined);
    await t.rejects(req.requireSession(), { name: 'GatewayError', code }, `${current.state}: ${code}`);
    await t.rejects(req.bearerFor('mva', route('/api/a')), { code }, 'a route with a token needs the session');
    t.equal(req.loaded, undefined);
    t.notOk(calls.some((c) => c.startsWith('bearer')), 'no bearer asked for');
  }
});

t.test('the user a host application sees: claims only, pid only when the tenant sets exposePid', async (t) => {
  const s = sessionAt('idporten-loa-substantial', { locale: 'nb' });
  t.same(await new BffRequest(lifecycle(live(s)).lifecycle, tenantOf('mva'), COOKIES).user(), { sub: 'sub-1', acr: 'idporten-loa-substantial', amr: ['BankID'], locale: 'nb' });
  t.same(await new BffRequest(lifecycle(live(s)).lifecycle, tenantOf('mva', { exposePid: true }), COOKIES).user(), {
    sub: 'sub-1',
    acr: 'idporten-loa-substantial',
    amr: ['BankID'],
    locale: 'nb',
    pid: '01017012345',
  });
  const bare = sessionAt('idporten-loa-high', { pid: undefined });
  t.same(await new BffRequest(lifecycle(live(bare)).lifecycle, tenantOf('mva', { exposePid: true }), COOKIES).user(), { sub: 'sub-1', acr: 'idporten-loa-high', amr: ['BankID'] }, 'no locale, no pid: no keys for them');
});

t.test('a route\'s bearer comes from its own kind, tenant, session and resource; a public route needs no session', async (t) => {
  const s = sessionAt('idporten-loa-high');
  let { lifecycle: lc, calls } = lifecycle(live(s));
  let req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  t.equal(await req.bearerFor('mva', route('/api/a', { resource: 'https://api.example.no/' })), 'idporten token');
  t.same(calls, ['current mva mva-cookie', 'bearer idporten mva h4sh https://api.example.no/']);

  ({ lifecycle: lc, calls } = lifecycle({ state: 'none' }));
  req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  t.equal(await req.bearerFor('mva', route('/api/public', { token: 'none' })), 'none token', 'token: none with no session at all');
  t.same(calls, ['bearer none mva undefined undefined'], 'and no session looked up for it');

  ({ lifecycle: lc, calls } = lifecycle(live(s)));
  req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  await t.rejects(req.bearerFor('other', route('/api/a')), { name: 'GatewayError', code: 'unknown_tenant' }, 'a route of another tenant gets no bearer of this one');
  t.same(calls, []);
  t.equal(req.bearerNow('other', route('/api/a')), undefined);
  t.same(calls, []);
});

t.test('bearerForRoute finds the tenant\'s route by its path; another path is route_not_found', async (t) => {
  const { lifecycle: lc, calls } = lifecycle(live(sessionAt('idporten-loa-high')));
  const req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  t.equal(await req.bearerForRoute('/api/public'), 'none token');
  t.equal(await req.bearerForRoute('/api/a'), 'idporten token');
  t.same(calls.filter((c) => c.startsWith('bearer')), ['bearer none mva undefined undefined', 'bearer idporten mva h4sh undefined']);
  await t.rejects(req.bearerForRoute('/api'), { name: 'GatewayError', code: 'route_not_found' });
});

t.test('the problem detail (RFC 9457 section 3.1.4) says what is wrong: the host, or which route path is not configured', async (t) => {
  const host = 'This host is not served by the gateway.';
  const unknown = new BffRequest(lifecycle({ state: 'none' }).lifecycle, undefined, COOKIES);
  t.throws(() => unknown.requireTenant(), { code: 'unknown_tenant', message: host });
  const req = new BffRequest(lifecycle(live(sessionAt('idporten-loa-high'))).lifecycle, tenantOf('mva'), COOKIES);
  await t.rejects(req.bearerFor('other', route('/api/a')), { code: 'unknown_tenant', message: host }, 'a route of another tenant: as if the host were unknown');
  await t.rejects(req.bearerForRoute('/api/x'), { code: 'route_not_found', message: 'No API route /api/x is configured for this tenant.' });
});

t.test('a session below the route\'s acr is sent to a fresh login at that level (acr_values, prompt=login), back to the page the call came from', async (t) => {
  const s = sessionAt('idporten-loa-substantial');
  const high = route('/api/a', { acr: 'idporten-loa-high' });
  const { lifecycle: lc, calls } = lifecycle(live(s));
  const req = new BffRequest(lc, tenantOf('mva'), COOKIES, `${PUBLIC_URL}/app/side?x=1`);
  const err = await req.bearerFor('mva', high).then(
    () => undefined,
    (e: unknown) => e as { code: string; loginUrl: string },
  );
  t.equal(err?.code, 'step_up_required');
  const login = new URL(err!.loginUrl);
  t.equal(login.origin + login.pathname, `${PUBLIC_URL}/auth/login`);
  t.same(Object.fromEntries(login.searchParams), { returnTo: '/app/side?x=1', acr: 'idporten-loa-high', prompt: 'login' });
  t.notOk(calls.some((c) => c.startsWith('bearer')), 'no bearer for a session below the level');
  t.equal(req.bearerNow('mva', high), undefined, 'bearerNow leaves it to bearerFor');
  t.notOk(calls.some((c) => c.startsWith('bearer')));

  const elsewhere = new BffRequest(lifecycle(live(s)).lifecycle, tenantOf('mva'), COOKIES, 'https://evil.example/app');
  const url = await elsewhere.bearerFor('mva', high).catch((e: { loginUrl: string }) => e.loginUrl);
  t.equal(new URL(url!).searchParams.get('returnTo'), '/', 'a Referer on another origin returns to the root');

  t.equal(await new BffRequest(lifecycle(live(sessionAt('idporten-loa-high'))).lifecycle, tenantOf('mva'), COOKIES).bearerFor('mva', high), 'idporten token', 'high satisfies high');
  t.equal(await new BffRequest(lifecycle(live(s)).lifecycle, tenantOf('mva'), COOKIES).bearerFor('mva', route('/api/a', { acr: 'idporten-loa-substantial' })), 'idporten token');
});

t.test('a route with an acr needs a session even when its token is none', async (t) => {
  const publicHigh = route('/api/public', { token: 'none', acr: 'idporten-loa-high' });
  let { lifecycle: lc, calls } = lifecycle({ state: 'none' });
  await t.rejects(new BffRequest(lc, tenantOf('mva'), COOKIES).bearerFor('mva', publicHigh), { code: 'login_required' });
  t.same(calls, ['current mva mva-cookie']);
  ({ lifecycle: lc, calls } = lifecycle({ state: 'none' }));
  t.equal(new BffRequest(lc, tenantOf('mva'), COOKIES).bearerNow('mva', publicHigh), undefined, 'no live session at hand');
  t.same(calls, ['liveNow mva mva-cookie']);
  await t.rejects(new BffRequest(lifecycle(live(sessionAt('idporten-loa-substantial'))).lifecycle, tenantOf('mva'), COOKIES).bearerFor('mva', publicHigh), { code: 'step_up_required' });
});

t.test('bearerNow: the session at hand becomes this request\'s session; one looked up already is used as it is', async (t) => {
  const s = sessionAt('idporten-loa-high');
  let { lifecycle: lc, calls } = lifecycle({ state: 'none' }, { liveNow: s });
  let req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  t.same(req.bearerNow('mva', route('/api/a')), { value: 'idporten token now' });
  t.same(calls, ['liveNow mva mva-cookie', 'bearerNow idporten mva h4sh undefined']);
  t.equal(req.loaded, s, 'kept for the audit line');
  t.same(await req.current(), { state: 'live', session: s }, 'the request\'s session from now on: no second lookup');
  t.equal(await req.requireSession(), s);
  t.equal(calls.filter((c) => c.startsWith('current')).length, 0);
  req.bearerNow('mva', route('/api/a'));
  t.equal(calls.filter((c) => c.startsWith('liveNow')).length, 1, 'not looked up again either');

  ({ lifecycle: lc, calls } = lifecycle(live(s), { liveNow: sessionAt('idporten-loa-high', { sub: 'someone-else' }) }));
  req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  await req.session();
  t.same(req.bearerNow('mva', route('/api/a')), { value: 'idporten token now' });
  t.same(calls, ['current mva mva-cookie', 'bearerNow idporten mva h4sh undefined'], 'the session found by the lookup, not a second one');

  ({ lifecycle: lc, calls } = lifecycle({ state: 'none' }));
  req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  await req.session();
  t.equal(req.bearerNow('mva', route('/api/a')), undefined, 'the lookup found none: bearerFor answers');
  t.same(calls, ['current mva mva-cookie']);

  ({ lifecycle: lc, calls } = lifecycle({ state: 'none' }));
  req = new BffRequest(lc, tenantOf('mva'), COOKIES);
  t.same(req.bearerNow('mva', route('/api/public', { token: 'none', resource: 'r' })), { value: 'none token now' }, 'a public route: no session needed');
  t.same(calls, ['bearerNow none mva undefined r']);
});

t.test('a request to a tenant whose cookie it does not carry has no session cookie to look up', async (t) => {
  const { lifecycle: lc, calls } = lifecycle({ state: 'none' });
  await new BffRequest(lc, tenantOf('third'), COOKIES).session();
  await new BffRequest(lc, tenantOf('mva'), undefined).session();
  t.same(calls, ['current third undefined', 'current mva undefined']);
});
