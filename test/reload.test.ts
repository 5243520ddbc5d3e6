import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, captureLogger, SESSION_KEY, startGateway } from './helpers/stack.js';
import { freePort } from '../demo/free-port.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { startSkatteetatenLookalike } from '../demo/skatteetaten.js';
import { TEST_USERS } from '../demo/test-users.js';
import { ReloadRefused } from '../src/plugin.js';

// Reload in process: one tenant kept, one removed, one whose route changes, one added, and refused configurations.
// "keep" (localhost) and "gone" (127.0.0.1) have real logins; "moved" and "fresh" have public routes only.
t.test('a reload adds, removes and changes tenants while the kept tenants\' sessions live on', async (t) => {
  const port = await freePort();
  const origins = { keep: `http://localhost:${port}`, gone: `http://127.0.0.1:${port}` };
  const client = (id: string, origin: string) => ({
    client_id: id, client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_post',
    redirect_uris: [`${origin}/auth/callback`], post_logout_redirect_uris: [`${origin}/`],
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
  });
  const op = await startIdportenLookalike({ clients: [client('keep-client', origins.keep), client('gone-client', origins.gone)] as never });
  t.teardown(() => op.close());
  const api = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri });
  t.teardown(() => api.close());
  const plain = createServer((req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url })));
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  t.teardown(() => void plain.close());
  const plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;

  const tenant = (id: string, publicUrl: string, routes: unknown[]) => ({
    id, publicUrl, routes,
    idporten: { issuer: op.issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, acrValues: 'idporten-loa-substantial' },
  });
  const echo = (id: string) => ({ path: '/mva/echo', upstream: `${api.url}/echo/${id}`, token: 'idporten' });
  const open = (upstreamPath: string) => ({ path: '/open', upstream: `${plainUrl}${upstreamPath}`, token: 'none', methods: ['GET'] });
  const raw = (tenants: unknown[], session: Record<string, unknown> = {}) => ({
    server: { port },
    session: { keys: [{ id: 'k1', secret: SESSION_KEY }], ...session },
    tenants,
  });
  const before = raw([
    tenant('keep', origins.keep, [echo('keep')]),
    tenant('gone', origins.gone, [echo('gone')]),
    tenant('moved', `http://moved.localhost:${port}`, [open('/v1')]),
  ]);
  const captured = captureLogger();
  const gateway = await startGateway(t, normaliseConfig(before, {}), { logger: captured.logger });

  const browser = new Browser();
  await loginAtLookalike(browser, `${origins.keep}/auth/login`, { pid: TEST_USERS[0]!.pid });
  await loginAtLookalike(browser, `${origins.gone}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal((await browser.fetch(`${origins.gone}/auth/session`)).status, 200, 'gone has a live session before the reload');
  const openAt = async (host: string) => gateway.app.inject({ method: 'GET', url: '/open/x', headers: { host, 'x-csrf': '1' } });
  t.equal((await openAt(`moved.localhost:${port}`)).json().path, '/v1/x');
  t.equal((await openAt(`fresh.localhost:${port}`)).statusCode, 404, 'fresh is not served yet');

  // Refused: a broken configuration, and a change only a restart can make. Nothing changes.
  await t.rejects(gateway.reload({ tenants: 'not a list' }), ReloadRefused);
  await t.rejects(gateway.reload(raw([tenant('keep', origins.keep, [echo('keep')])], { idleTimeout: '5m' })), /session\.\* changed; a restart is needed/);
  await t.rejects(gateway.reload({ ...raw([tenant('keep', origins.keep, [echo('keep')])]), server: { port, requestTimeout: '5s' } }), /server\.\* changed; a restart is needed/);
  await t.rejects(gateway.reload(raw([tenant('keep', origins.keep, [echo('keep'), { ...open('/n'), path: '/brand-new' }])])), /new route paths need a restart/);
  const refusals = captured.lines.filter((l) => l.msg === 'configuration reload refused; the running configuration keeps serving');
  t.equal(refusals.length, 4, 'each refusal is logged');
  t.match(refusals[0]!.reason, /^invalid configuration: /);
  t.equal((await browser.fetch(`${origins.gone}/auth/session`)).status, 200, 'a refused reload keeps the running tenants');

  const keptBefore = gateway.core.tenants.byId('keep');
  const result = await gateway.reload(raw([
    tenant('keep', origins.keep, [echo('keep')]),
    tenant('moved', `http://moved.localhost:${port}`, [open('/v2')]),
    tenant('fresh', `http://fresh.localhost:${port}`, [open('/fresh')]),
  ]));
  t.same(result, { added: ['fresh'], removed: ['gone'], changed: ['moved'] });
  t.equal(gateway.core.tenants.byId('keep'), keptBefore, 'an untouched tenant is the same object');
  t.ok(gateway.core.tenants.byId('moved')?.idporten.ready, 'a tenant whose routes changed keeps its loaded provider metadata');
  t.ok(gateway.core.tenants.byId('fresh')?.idporten.ready, 'an added tenant of an issuer already loaded is ready at once: it shares that provider');
  t.ok(captured.lines.some((l) => l.msg === 'configuration reloaded'), 'the reload is logged');

  // The kept tenant: same session, still proxied with its bearer.
  t.equal((await browser.fetch(`${origins.keep}/auth/session`)).status, 200, "keep's session survives");
  const proxied = await browser.fetch(`${origins.keep}/mva/echo/x`, { headers: { 'x-csrf': '1' } });
  t.equal(proxied.status, 200);
  t.equal(JSON.parse(proxied.body).path, '/echo/keep/x');
  // Changed and added tenants serve at once.
  t.equal((await openAt(`moved.localhost:${port}`)).json().path, '/v2/x', 'the changed route applies to new requests');
  t.equal((await openAt(`fresh.localhost:${port}`)).json().path, '/fresh/x', 'the added tenant serves at once');
  // The removed tenant: its cookie finds no tenant, and the session it names is ended when met.
  t.equal((await browser.fetch(`${origins.gone}/auth/session`)).status, 421, "gone's cookie finds no tenant");
  t.equal((await browser.fetch(`${origins.gone}/mva/echo/x`, { headers: { 'x-csrf': '1' } })).status, 404, 'nor a route');
  const ended = captured.lines.filter((l) => l.event === 'logout' && l.tenant === 'gone');
  t.equal(ended.length, 1, "gone's session was ended once");
  t.equal(ended[0]?.channel, 'admin');
  t.equal(gateway.core.config.tenants.length, 3, 'the core sees the new configuration');
});
