import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import t from 'tap';
import type { TenantConfig } from '../src/config/types.js';
import { GatewayError } from '../src/errors.js';
import { registerAppRoutes } from '../src/http/app/index.js';
import { asGatewayError, sendError } from '../src/http/problem.js';

// Static apps of many tenants behind one catch-all: one host-constrained catch-all per tenant stopped at 31
// (find-my-way's limit of constrained handlers per path). Each host still gets its own folder and headers.
t.test('sixty tenants with static apps start, and each host gets its own folder; a host without an app keeps the 404', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'bff-apps-'));
  const tenants = Array.from({ length: 60 }, (_, i) => {
    const dir = join(root, `t${i}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.html'), `<p>tenant ${i}</p>`);
    return {
      id: `t${i}`, publicUrl: `https://t${i}.example.test`, routes: [],
      app: { kind: 'static', dir, headers: i === 7 ? { 'x-frame-options': 'DENY' } : {}, requireLogin: false, publicPaths: [] },
    } as unknown as TenantConfig;
  });
  const app = Fastify();
  app.setNotFoundHandler((_request, reply) => sendError(reply, new GatewayError('route_not_found', 'No route is configured for this path.')));
  app.setErrorHandler((err, request, reply) => sendError(reply, asGatewayError(err, request.log)));
  app.decorateRequest('bff', null as never);
  app.addHook('onRequest', async (request) => {
    const id = /^t(\d+)\./.exec(request.headers.host ?? '')?.[0]?.slice(0, -1);
    request.bff = { tenant: id ? { id } : undefined, session: async () => undefined } as never;
  });
  await registerAppRoutes(app, tenants);
  t.teardown(() => app.close());

  for (const i of [0, 31, 59]) {
    const answer = await app.inject({ url: '/', headers: { host: `t${i}.example.test` } });
    t.equal(answer.statusCode, 200);
    t.equal(answer.body, `<p>tenant ${i}</p>`, `t${i} gets its own index.html`);
  }
  const own = await app.inject({ url: '/', headers: { host: 't7.example.test' } });
  t.equal(own.headers['x-frame-options'], 'DENY', "a tenant's own app headers");
  t.notOk(own.headers['content-security-policy'], 'instead of the defaults');
  t.match((await app.inject({ url: '/', headers: { host: 't8.example.test' } })).headers['content-security-policy'], /default-src 'self'/);
  const none = await app.inject({ url: '/', headers: { host: 'nobody.example.test' } });
  t.equal(none.statusCode, 404);
  t.equal(none.json().code, 'route_not_found');
  t.equal((await app.inject({ method: 'POST', url: '/x', headers: { host: 't3.example.test' } })).statusCode, 405, 'static apps answer GET and HEAD only');
});
