/**
 * Which route a proxied request gets (src/proxy/routing-table.ts): the tenant is the one whose publicUrl host the
 * request's Host names (host and port, case-insensitive: RFC 9110 section 4.2.3 makes the host part so), and within
 * it the route whose path is the one asked for. No request reaches another tenant's route, or a route of no tenant.
 */
import type { Dispatcher } from 'undici';
import t from 'tap';
import type { RouteConfig, TenantConfig } from '../src/config/types.js';
import { hostOf, RoutingTable } from '../src/proxy/routing-table.js';

function route(path: string, upstream: string): RouteConfig {
  return { path, upstream, token: 'idporten', methods: ['GET'], timeoutMs: 1000, bodyLimitBytes: 1024 };
}

function tenant(id: string, publicUrl: string, routes: RouteConfig[]): TenantConfig {
  return { id, publicUrl, routes } as unknown as TenantConfig;
}

const mva = tenant('mva', 'https://MVA.example.no', [route('/api/a', 'https://a.internal/v1'), route('/api/b', 'https://b.internal/')]);
const altinn = tenant('altinn', 'http://localhost:3000', [route('/api/a', 'https://other-a.internal/')]);

/** A dispatcher per route, told apart by name, and a record of what it was asked for. */
function table() {
  const asked: string[] = [];
  const routing = new RoutingTable([mva, altinn], (tenant, route) => {
    asked.push(`${tenant.id} ${route.path}`);
    return { name: `${tenant.id} ${route.path}` } as unknown as Dispatcher;
  });
  return { routing, asked };
}

t.test('a request gets the route of the tenant its Host names, and no other tenant\'s route of the same path', async (t) => {
  const { routing } = table();
  const a = routing.lookup('mva.example.no', '/api/a');
  t.equal(a?.tenant, mva);
  t.equal(a?.route, mva.routes[0]);
  t.equal(a?.upstream.href, 'https://a.internal/v1', 'the upstream URL, parsed once');
  t.equal((a?.dispatcher as unknown as { name: string }).name, 'mva /api/a', 'the dispatcher made for this tenant and route');
  t.equal(routing.lookup('mva.example.no', '/api/b')?.route, mva.routes[1]);
  const other = routing.lookup('localhost:3000', '/api/a');
  t.equal(other?.tenant, altinn, 'the same path on another host is that host\'s tenant');
  t.equal(other?.upstream.href, 'https://other-a.internal/');
});

t.test('the host is matched with its port and without regard to case (RFC 9110 section 4.2.3)', async (t) => {
  const { routing } = table();
  t.equal(routing.lookup('MVA.Example.NO', '/api/a')?.tenant, mva, 'upper case in the request');
  t.equal(routing.lookup('LOCALHOST:3000', '/api/a')?.tenant, altinn);
  t.equal(routing.lookup('localhost', '/api/a'), undefined, 'the port is part of the host');
  t.equal(routing.lookup('localhost:3001', '/api/a'), undefined);
  t.equal(routing.lookup('mva.example.no:443', '/api/a'), undefined, 'a Host with the default port spelled out is not the publicUrl\'s host');
  t.equal(hostOf('https://MVA.example.no:443/x'), 'mva.example.no', 'hostOf: lower case, the default port dropped as URL does');
  t.equal(hostOf('http://Localhost:3000'), 'localhost:3000');
});

t.test('no route for an unknown host, a missing Host, or a path that is not a route path exactly', async (t) => {
  const { routing } = table();
  t.equal(routing.lookup(undefined, '/api/a'), undefined, 'no Host header');
  t.equal(routing.lookup('evil.example', '/api/a'), undefined);
  t.equal(routing.lookup('', '/api/a'), undefined);
  for (const path of ['/api/A', '/api/a/', '/api', '/api/c', '']) t.equal(routing.lookup('mva.example.no', path), undefined, JSON.stringify(path));
});

t.test('paths lists every route path of any tenant; each route gets its dispatcher once, when the table is built', async (t) => {
  const { routing, asked } = table();
  t.same([...routing.paths].sort(), ['/api/a', '/api/b']);
  t.same(asked, ['mva /api/a', 'mva /api/b', 'altinn /api/a']);
  routing.lookup('mva.example.no', '/api/a');
  t.equal(asked.length, 3, 'a lookup makes no dispatcher');
  t.same([...new RoutingTable([], () => ({}) as Dispatcher).paths], [], 'no tenants, no paths');
});
