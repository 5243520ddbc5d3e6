/**
 * Tenants at run time through the admin API on the internal listener: two gateway instances sharing one Redis
 * (each its own connections, as two processes would have), a real ID-porten look-alike. A tenant added on one
 * instance serves logins on the other within 2 s; DELETE makes its host unknown everywhere; the other tenants'
 * sessions live on; a bad body gets 400 naming the path; no credential, 401. Without Redis, tenantsDir keeps them.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike, type IdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { loadConfigFile } from '../src/config/load.js';
import { normaliseConfig } from '../src/config/normalise.js';
import type { Gateway } from '../src/app.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY, startGateway } from './helpers/stack.js';

const CREDENTIAL = 'an-admin-credential-that-is-long-enough-0123456789';
const APPLIED_WITHIN_MS = 2_000;

const tenantEntry = (id: string, publicUrl: string, issuer: string) => ({
  id,
  publicUrl,
  idporten: { issuer, clientId: id, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } },
  routes: [{ path: '/open', upstream: 'http://127.0.0.1:9/open', token: 'none', methods: ['GET'] }],
});

/** One instance: its public listener on `port`, the internal one (admin) on a port of its own. */
async function instance(t: Test, raw: Record<string, unknown>, port: number): Promise<{ gateway: Gateway; admin: string }> {
  const metricsPort = await freePort();
  const config = normaliseConfig({ ...raw, server: { port, metricsPort, admin: { credential: CREDENTIAL } } }, {});
  const gateway = await startGateway(t, config);
  const internal = await startMetricsServer(gateway.core, '127.0.0.1', metricsPort);
  t.teardown(() => internal.close());
  return { gateway, admin: `http://127.0.0.1:${metricsPort}` };
}

async function admin(base: string, method: string, path: string, body?: unknown, credential: string | null = CREDENTIAL) {
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: { ...(credential ? { authorization: `Bearer ${credential}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

/** Polls until `check` holds or `withinMs` has passed; how long it took, or undefined. */
async function within(withinMs: number, check: () => Promise<boolean>): Promise<number | undefined> {
  const started = Date.now();
  while (Date.now() - started <= withinMs) {
    if (await check()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return undefined;
}

async function login(browser: Browser, origin: string, pid = TEST_USERS[0]!.pid): Promise<number> {
  await loginAtLookalike(browser, `${origin}/auth/login`, { pid });
  return (await browser.fetch(`${origin}/auth/session`)).status;
}

const hostStatus = async (port: number, host: string) => {
  const res = await request(`http://127.0.0.1:${port}/auth/session`, { headers: { host } });
  await res.body.dump();
  return res.statusCode;
};

async function lookalike(t: Test, port: number, ids: string[]): Promise<IdportenLookalike> {
  const op = await startIdportenLookalike({ clients: ids.map((id) => lookalikeClient(id, `http://${id}.localhost:${port}`)) });
  t.teardown(() => op.close());
  return op;
}

t.test('a tenant added on one instance serves logins on another within 2 s; DELETE removes it everywhere', { skip: redisMissingReason() }, async (t) => {
  const redis = await startRedis(t);
  const [portA, portB] = [await freePort(), await freePort()];
  // The tenants' public origin is instance B's: the browser reaches B, the operator talks to A.
  const op = await lookalike(t, portB, ['base', 'added']);
  const raw = {
    session: { keys: [{ id: 'k1', secret: SESSION_KEY }], store: { type: 'redis', url: redis.url, keyPrefix: 'rt:' } },
    tenants: [tenantEntry('base', `http://base.localhost:${portB}`, op.issuer)],
  };
  const a = await instance(t, raw, portA);
  const b = await instance(t, raw, portB);

  const baseBrowser = new Browser({ localhostNames: true });
  t.teardown(() => baseBrowser.close());
  t.equal(await login(baseBrowser, `http://base.localhost:${portB}`), 200, 'a user of the configured tenant is logged in on B');

  t.equal((await admin(a.admin, 'GET', '/admin/tenants', undefined, null)).status, 401, 'no credential: 401');
  t.equal((await admin(a.admin, 'PUT', '/admin/tenants/added', {}, 'wrong-credential-wrong-credential-00')).status, 401, 'a wrong credential: 401');

  const added = tenantEntry('added', `http://added.localhost:${portB}`, op.issuer);
  t.equal(await hostStatus(portB, `added.localhost:${portB}`), 421, 'before: B knows no tenant on that host (421 unknown_tenant)');
  const put = await admin(a.admin, 'PUT', '/admin/tenants/added', added);
  t.equal(put.status, 201, 'PUT adds the tenant: 201');
  t.same(put.body, { id: 'added', publicUrl: `http://added.localhost:${portB}`, source: 'admin', ready: true }, 'served on A at once, ready (its issuer is loaded)');
  const tookMs = await within(APPLIED_WITHIN_MS, async () => (await hostStatus(portB, `added.localhost:${portB}`)) === 401);
  t.ok(tookMs !== undefined, `B serves the added tenant within ${APPLIED_WITHIN_MS} ms (took ${tookMs} ms)`);

  const addedBrowser = new Browser({ localhostNames: true });
  t.teardown(() => addedBrowser.close());
  t.equal(await login(addedBrowser, `http://added.localhost:${portB}`, TEST_USERS[1]!.pid), 200, 'a user logs in to the added tenant on B');

  const listed = await admin(b.admin, 'GET', '/admin/tenants');
  t.same(listed.body, { tenants: [
    { id: 'base', publicUrl: `http://base.localhost:${portB}`, source: 'configuration', ready: true },
    { id: 'added', publicUrl: `http://added.localhost:${portB}`, source: 'admin', ready: true },
  ] }, 'B lists both, saying where each comes from');
  const one = await admin(b.admin, 'GET', '/admin/tenants/added');
  t.equal((one.body?.tenant as { idporten: { clientAuth: { secret: string } } }).idporten.clientAuth.secret, '[masked]', 'GET shows the entry with its secret masked');

  // Kept in Redis sealed: the client secret is not readable there.
  const { Redis } = await import('ioredis');
  const peek = new Redis(redis.url);
  t.teardown(() => peek.disconnect());
  const stored = await peek.hget('rt:{tenants}', 'added');
  t.ok(stored && !stored.includes(CLIENT_SECRET) && !stored.includes('added.localhost'), 'the stored tenant is sealed');

  // Kept across a restart: a third instance, started now, serves it from the store.
  const c = await instance(t, raw, await freePort());
  t.ok(c.gateway.core.tenants.byId('added'), 'an instance started later serves the added tenant');

  const del = await admin(b.admin, 'DELETE', '/admin/tenants/added');
  t.equal(del.status, 204, 'DELETE on B: 204');
  t.equal(await hostStatus(portB, `added.localhost:${portB}`), 421, 'B answers its host as unknown at once');
  const goneMs = await within(APPLIED_WITHIN_MS, async () => !a.gateway.core.tenants.byId('added') && !c.gateway.core.tenants.byId('added'));
  t.ok(goneMs !== undefined, `A and the later instance drop it within ${APPLIED_WITHIN_MS} ms (took ${goneMs} ms)`);
  t.equal((await addedBrowser.fetch(`http://added.localhost:${portB}/auth/session`)).status, 421, "the removed tenant's user finds no tenant");
  t.equal((await baseBrowser.fetch(`http://base.localhost:${portB}/auth/session`)).status, 200, "the configured tenant's session lives on throughout");
  t.equal((await admin(b.admin, 'DELETE', '/admin/tenants/added')).status, 404, 'DELETE again: 404');
  t.equal((await admin(b.admin, 'DELETE', '/admin/tenants/base')).status, 400, 'a tenant of the configuration file cannot be deleted here: 400');
});

t.test('a bad tenant gets 400 naming the path, as the configuration file would', { skip: redisMissingReason() }, async (t) => {
  const redis = await startRedis(t);
  const port = await freePort();
  const op = await lookalike(t, port, ['base']);
  const raw = {
    session: { keys: [{ id: 'k1', secret: SESSION_KEY }], store: { type: 'redis', url: redis.url } },
    tenants: [tenantEntry('base', `http://base.localhost:${port}`, op.issuer)],
  };
  const { admin: base } = await instance(t, raw, port);
  const good = tenantEntry('x', `http://x.localhost:${port}`, op.issuer);
  const cases: [string, unknown, string][] = [
    ['a typo in a key (schema)', { ...good, idporten: { ...good.idporten, clientid: 'x' } }, 'idporten.clientid'],
    ['a missing required key', { ...good, publicUrl: undefined }, 'publicUrl'],
    ['a wrong route token kind', { ...good, routes: [{ ...good.routes[0], token: 'bogus' }] }, 'routes[0].token'],
    ['an http publicUrl off loopback (a rule after the schema)', { ...good, publicUrl: 'http://x.example.com' }, 'publicUrl'],
    ['the host of another tenant', { ...good, publicUrl: `http://base.localhost:${port}` }, 'publicUrl'],
    ['an id other than the URL', { ...good, id: 'y' }, 'id'],
    ['the id of a configured tenant', { ...good, id: 'base' }, 'id'],
    ['a route path this gateway has not registered', { ...good, routes: [{ ...good.routes[0], path: '/new' }] }, 'routes'],
    ['an app (registered at start only)', { ...good, app: { static: '/tmp' } }, 'app'],
  ];
  for (const [name, body, path] of cases) {
    const id = (body as { id: string }).id === 'y' ? 'x' : (body as { id: string }).id;
    const res = await admin(base, 'PUT', `/admin/tenants/${id}`, body);
    t.equal(res.status, 400, `${name}: 400`);
    t.equal(res.body?.code, 'invalid_request', `${name}: invalid_request`);
    const errors = (res.body?.errors ?? []) as { path: string }[];
    t.ok(errors.some((e) => e.path === path), `${name}: names ${path} (got ${errors.map((e) => e.path).join(', ')})`);
  }
  const notJson = await admin(base, 'PUT', '/admin/tenants/x', '{not json');
  t.equal(notJson.status, 400, 'a body that is not JSON: 400');
  t.equal((await admin(base, 'GET', '/admin/tenants/x')).status, 404, 'nothing refused was added');
  t.equal((await admin(base, 'POST', '/admin/tenants/x', good)).status, 405, 'POST: 405');
});

t.test('without Redis, a tenant added at run time is a file in tenantsDir and survives a restart', async (t) => {
  const port = await freePort();
  const op = await lookalike(t, port, ['base', 'added']);
  const folder = mkdtempSync(join(tmpdir(), 'bff-tenants-'));
  const dir = join(folder, 'tenants.d');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  writeFileSync(join(dir, 'base.json'), JSON.stringify(tenantEntry('base', `http://base.localhost:${port}`, op.issuer)));
  const metricsPort = await freePort();
  const file = join(folder, 'gateway.json');
  writeFileSync(file, JSON.stringify({ server: { port, metricsPort, admin: { credential: CREDENTIAL } }, session: { keys: [{ id: 'k1', secret: SESSION_KEY }] }, tenantsDir: 'tenants.d' }));

  const first = await startGateway(t, loadConfigFile(file, {}));
  const internal = await startMetricsServer(first.core, '127.0.0.1', metricsPort);
  const put = await admin(`http://127.0.0.1:${metricsPort}`, 'PUT', '/admin/tenants/added', tenantEntry('added', `http://added.localhost:${port}`, op.issuer));
  t.equal(put.status, 201, 'PUT: 201');
  t.ok(readdirSync(dir).includes('added.json'), 'kept as tenants.d/added.json');
  t.equal(JSON.parse(readFileSync(join(dir, 'added.json'), 'utf8')).id, 'added', 'in the shape of a tenant file');
  const browser = new Browser({ localhostNames: true });
  t.teardown(() => browser.close());
  t.equal(await login(browser, `http://added.localhost:${port}`, TEST_USERS[1]!.pid), 200, 'the added tenant serves logins');
  await internal.close();
  await first.close();

  const second = await startGateway(t, loadConfigFile(file, {}));
  t.ok(second.core.tenants.byId('added'), 'after a restart the added tenant is served from its file');
  const internal2 = await startMetricsServer(second.core, '127.0.0.1', metricsPort);
  t.teardown(() => internal2.close());
  t.equal((await admin(`http://127.0.0.1:${metricsPort}`, 'DELETE', '/admin/tenants/added')).status, 204, 'DELETE: 204');
  t.notOk(readdirSync(dir).includes('added.json'), 'its file is gone');
  t.notOk(second.core.tenants.byId('added'), 'and it is no longer served');
});
