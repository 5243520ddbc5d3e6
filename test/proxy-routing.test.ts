import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { createAuditLog } from '../src/audit/audit-log.js';
import type { RouteConfig, TenantConfig } from '../src/config/types.js';
import { GatewayError } from '../src/errors.js';
import { sendError } from '../src/http/problem.js';
import { registerProxyRoutes, type ProxyRouting } from '../src/proxy/register.js';

// The routing table as data: many tenants on one route path, dispatch by host at request time, shared upstream
// pools, and swapping the table while requests are under way. Routes here send no bearer (token: none).

/** An upstream that answers with the path it was asked for; a path containing "hold" waits for release(). */
const held: Array<() => void> = [];
const seen: string[] = [];
const headerNames = new Set<string>();
const upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
  seen.push(req.url ?? '');
  for (const name of Object.keys(req.headers)) headerNames.add(name);
  req.resume();
  const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
  if ((req.url ?? '').includes('hold')) held.push(answer);
  else answer();
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
t.teardown(() => void upstream.close());
const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

function route(path: string, upstreamPath: string, extra: Partial<RouteConfig> = {}): RouteConfig {
  return { path, upstream: `${origin}${upstreamPath}`, token: 'none', methods: ['GET'], timeoutMs: 5000, bodyLimitBytes: 1024, forwardHeaders: [], ...extra };
}

function tenant(id: string, routes: RouteConfig[], upstreamCaPem?: string): TenantConfig {
  const publicUrl = `https://${id}.example.test`;
  return {
    id,
    publicUrl,
    idporten: {
      issuer: 'https://op.invalid', clientId: id, clientAuth: { method: 'client_secret_post', secret: 'unused' },
      scopes: ['openid'], acrValues: 'idporten-loa-substantial', allowedAcrValues: ['idporten-loa-substantial'],
      uiLocales: 'nb', allowedLocales: ['nb'], postLogoutRedirectUri: `${publicUrl}/`, logoutHint: 'id_token', usePar: false, httpTimeoutMs: 5000,
    },
    routes,
    ...(upstreamCaPem === undefined ? {} : { upstreamCaPem }),
  };
}

async function gateway(t: Test, tenants: TenantConfig[]): Promise<{ routing: ProxyRouting; get: (host: string, url: string, method?: string) => Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> }> {
  const app = Fastify({ logger: false });
  app.setNotFoundHandler((_request, reply) => sendError(reply, new GatewayError('route_not_found', 'No route for this path.')));
  const routing = await registerProxyRoutes(app, {
    tenants,
    trustProxy: false,
    audit: createAuditLog(pino({ level: 'silent' })),
    auditContext: () => ({}),
    loginUrl: () => '/auth/login',
    bearerFor: async () => undefined,
    hasSession: async () => false,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const port = (app.server.address() as AddressInfo).port;
  const get = async (host: string, url: string, method = 'GET') => {
    // Through a real socket, so that a held request stays in flight while others are sent.
    const { request } = await import('node:http');
    return new Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: url, method, headers: { host, 'x-csrf': '1' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers });
        });
      });
      req.on('error', reject).end();
    });
  };
  return { routing, get };
}

t.test('sixty tenants share one route path: one router entry per path, each host reaches its own upstream', async (t) => {
  // find-my-way allows at most 31 host-constrained handlers on one path; one entry per (tenant, route) stopped there.
  const tenants = Array.from({ length: 60 }, (_, i) => tenant(`t${i}`, [route('/api', `/up/t${i}`), route('/other', `/other/t${i}`)]));
  const { routing, get } = await gateway(t, tenants);
  t.equal(routing.paths, 2, 'each distinct path once');
  t.equal(routing.dispatchers, 1, 'one upstream dispatcher for tenants with the same trust and timeout');
  for (const i of [0, 31, 59]) {
    const answer = await get(`t${i}.example.test`, '/api/x?q=1');
    t.equal(answer.status, 200);
    t.equal(answer.body.path, `/up/t${i}/x?q=1`, `t${i} reaches its own upstream path`);
  }
  t.equal((await get('T7.EXAMPLE.TEST', '/other')).body.path, '/other/t7', 'the host is matched case-insensitively');
  t.notOk(headerNames.has('x-idporten-bff-dispatcher'), 'the internal dispatcher header never reaches an upstream');
  const unknownHost = await get('nobody.example.test', '/api/x');
  t.equal(unknownHost.status, 404);
  t.equal(unknownHost.body.code, 'route_not_found');
});

t.test('a host without a route at a path another tenant has falls through to the 404 problem; methods stay 405 with Allow', async (t) => {
  const { get } = await gateway(t, [tenant('a', [route('/only-a', '/a')]), tenant('b', [route('/shared', '/b', { methods: ['GET', 'POST'] })])]);
  t.equal((await get('a.example.test', '/only-a/x')).status, 200);
  const before = seen.length;
  const fallthrough = await get('b.example.test', '/only-a/x');
  t.equal(fallthrough.status, 404, "b has no /only-a: not a's route, not b's proxy");
  t.equal(fallthrough.body.code, 'route_not_found');
  t.equal(seen.length, before, 'nothing reached the upstream');
  for (const method of ['DELETE', 'TRACE', 'PATCH']) {
    const answer = await get('b.example.test', '/shared/x', method);
    t.equal(answer.status, 405, `${method} is 405`);
    t.equal(answer.headers.allow, 'GET, POST');
  }
});

t.test('a tenant with its own upstream CA gets a dispatcher of its own, shared with tenants that trust the same CA', async (t) => {
  const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const { routing } = await gateway(t, [
    tenant('pub1', [route('/api', '/p1')]),
    tenant('pub2', [route('/api', '/p2')]),
    tenant('ca1', [route('/api', '/c1')], ca),
    tenant('ca2', [route('/api', '/c2')], ca),
    tenant('slow', [route('/api', '/s', { timeoutMs: 60_000 })]),
  ]);
  t.equal(routing.dispatchers, 3, 'public roots, public roots plus the CA, and another connect timeout');
});

t.test('update swaps the table for new requests; a request under way finishes on the route it started with', async (t) => {
  const { routing, get } = await gateway(t, [tenant('keep', [route('/api', '/v1')]), tenant('gone', [route('/api', '/gone')])]);
  const inFlight = get('keep.example.test', '/api/hold');
  while (held.length === 0) await new Promise((r) => setTimeout(r, 5));

  routing.update([tenant('keep', [route('/api', '/v2')]), tenant('new', [route('/api', '/new')])]);
  t.equal((await get('keep.example.test', '/api/x')).body.path, '/v2/x', 'the changed route applies to the next request');
  t.equal((await get('new.example.test', '/api/x')).body.path, '/new/x', 'an added tenant is served at once');
  t.equal((await get('gone.example.test', '/api/x')).status, 404, 'a removed tenant is not');
  held.shift()!();
  t.equal((await inFlight).body.path, '/v1/hold', 'the request under way went to the upstream of its start');

  t.throws(() => routing.update([tenant('keep', [route('/api', '/v3'), route('/brand-new', '/n')])]), /new route paths need a restart: \/brand-new/);
  t.equal((await get('keep.example.test', '/api/x')).body.path, '/v2/x', 'a refused update changes nothing');
});
