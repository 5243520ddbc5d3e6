/**
 * A customer onboarded through the admin API alone: `PUT /admin/tenants/{id}?apply=true` on one instance makes the
 * tenant's ID-porten integration through the look-alike of Digdir's self-service API (the vendor's admin client
 * taking its token from the Maskinporten look-alike), keeps the client id and the sealed key in the shared Redis,
 * and the tenant serves logins on another instance, at the ID-porten look-alike, which reads the clients the
 * self-service look-alike registered. `integrations rotate-keys` then rotates that tenant's key like any other's.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { loginClientFrom, startSelfServiceLookalike } from '../demo/digdir-self-service.js';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { startMaskinportenLookalike } from '../demo/maskinporten.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { describeRun, spawnCli } from './helpers/cli.js';
import { redisMissingReason, startRedis } from './helpers/redis.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY, startGateway } from './helpers/stack.js';

const CREDENTIAL = 'an-admin-credential-that-is-long-enough-0123456789';
const API_SCOPE = 'skatteetaten:mvameldingvalidering';

async function vendorWorld(t: Test) {
  const admin = await generateKeyPair('RS256', { extractable: true });
  const adminJwk = { ...(await exportJWK(admin.privateKey)), kid: 'vendor-admin-key', alg: 'RS256' };
  const maskinporten = await startMaskinportenLookalike({
    clients: [{ clientId: 'vendor-admin', orgno: '999888777', scopes: ['idporten:dcr.supplier'], keys: [{ ...(await exportJWK(admin.publicKey)), kid: 'vendor-admin-key', alg: 'RS256', use: 'sig' }] }],
  });
  t.teardown(() => maskinporten.close());
  const selfService = await startSelfServiceLookalike({ verifyAccessToken: (tok) => maskinporten.verifyAccessToken(tok), grantedScopes: [API_SCOPE] });
  t.teardown(() => selfService.close());
  const portB = await freePort();
  const op = await startIdportenLookalike({ clients: [lookalikeClient('base', `http://base.localhost:${portB}`)], findClient: (id) => loginClientFrom(selfService.registry, id) as never });
  t.teardown(() => op.close());
  const digdir = { environment: 'test', clientId: 'vendor-admin', key: { jwk: JSON.stringify(adminJwk) }, adminApiUrl: selfService.url, maskinportenIssuer: maskinporten.issuer };
  return { selfService, op, portB, digdir };
}

async function instance(t: Test, raw: Record<string, unknown>, port: number): Promise<string> {
  const metricsPort = await freePort();
  const gateway = await startGateway(t, normaliseConfig({ ...raw, server: { port, metricsPort, admin: { credential: CREDENTIAL } } }, {}));
  const internal = await startMetricsServer(gateway.core, '127.0.0.1', metricsPort);
  t.teardown(() => internal.close());
  return `http://127.0.0.1:${metricsPort}`;
}

async function put(base: string, path: string, body: unknown) {
  const res = await request(`${base}${path}`, { method: 'PUT', headers: { authorization: `Bearer ${CREDENTIAL}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, type: res.headers['content-type'], body: (await res.body.json()) as Record<string, any> };
}

async function within(ms: number, ok: () => Promise<boolean>): Promise<number | undefined> {
  const started = Date.now();
  while (Date.now() - started <= ms) {
    if (await ok()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

async function logsIn(origin: string): Promise<boolean> {
  const browser = new Browser({ localhostNames: true });
  try {
    const landed = await loginAtLookalike(browser, `${origin}/auth/login`, { pid: TEST_USERS[0]!.pid }).catch(() => undefined);
    return landed !== undefined && new URL(landed.url).origin === origin && (await browser.fetch(`${origin}/auth/session`)).status === 200;
  } finally {
    await browser.close();
  }
}

t.test('PUT ?apply=true makes the integration, and the tenant serves logins on another instance; rotate-keys rotates its key', { skip: redisMissingReason() }, async (t) => {
  const redis = await startRedis(t);
  const w = await vendorWorld(t);
  const raw = {
    session: { keys: [{ id: 'k1', secret: SESSION_KEY }], store: { type: 'redis', url: redis.url, keyPrefix: 'vendor:' } },
    digdir: w.digdir,
    tenants: [{ id: 'base', publicUrl: `http://base.localhost:${w.portB}`, idporten: { issuer: w.op.issuer, clientId: 'base', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } }, routes: [] }],
  };
  const a = await instance(t, raw, await freePort());
  await instance(t, raw, w.portB);
  // The self-service API takes http redirect URIs for localhost only.
  const kunde = `http://localhost:${w.portB}`;
  const entry = { id: 'kunde', publicUrl: kunde, orgno: '123456789', idporten: { issuer: w.op.issuer, scopes: ['openid', 'profile', API_SCOPE] }, routes: [] };

  // Refusals first: nothing is registered or kept by any of them.
  const withClient = await put(a, '/admin/tenants/kunde?apply=true', { ...entry, idporten: { ...entry.idporten, clientId: 'x', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } } });
  t.equal(withClient.status, 400);
  t.match(withClient.type, /^application\/problem\+json/, 'RFC 9457 problem');
  t.same(withClient.body.errors, [{ path: 'idporten.clientId', message: 'must be left out with apply=true: integrations apply makes the client' }]);
  const badFlag = await put(a, '/admin/tenants/kunde?apply=yes', entry);
  t.equal(badFlag.status, 400, 'apply is true or false');
  const notGranted = await put(a, '/admin/tenants/kunde?apply=true', { ...entry, idporten: { ...entry.idporten, scopes: ['openid', 'altinn:not-granted'] } });
  t.equal(notGranted.status, 400);
  t.match(notGranted.body.detail, /Digdir refused the integration: .*scope altinn:not-granted is not available to this organisation/, "the API's refusal, in its words");
  const withoutApply = await put(a, '/admin/tenants/kunde', entry);
  t.equal(withoutApply.status, 400, 'without apply, a tenant needs its client');
  t.same(withoutApply.body.errors.map((e: { path: string }) => e.path), ['idporten.clientId']);
  t.equal(w.selfService.registry.size, 0, 'nothing was registered');

  const added = await put(a, '/admin/tenants/kunde?apply=true', entry);
  t.equal(added.status, 201, JSON.stringify(added.body));
  const client = [...w.selfService.registry.values()][0];
  t.equal(w.selfService.registry.size, 1, 'one integration registered');
  t.match(client, { client_orgno: '123456789', integration_type: 'api_klient', redirect_uris: [`${kunde}/auth/callback`], token_endpoint_auth_method: 'private_key_jwt' });
  t.same(added.body.integration, { clientId: client!.client_id, changes: ['create an integration (api_klient, client_orgno 123456789)', 'register a new RS256 key and keep its private half sealed in Redis'] });
  t.match(added.body, { id: 'kunde', source: 'admin', ready: true }, 'served on this instance before the answer');
  const tookMs = await within(5_000, () => logsIn(kunde));
  t.ok(tookMs !== undefined, `a user of the new customer logs in on the other instance (after ${tookMs} ms)`);

  const again = await put(a, '/admin/tenants/kunde?apply=true', entry);
  t.equal(again.status, 200, 'PUT again replaces');
  t.same(again.body.integration.changes, ['nothing to change'], 'and apply finds nothing to change');

  // The command line sees the tenant added at run time: its key rotates like any applied tenant's.
  const dir = mkdtempSync(join(tmpdir(), 'bff-admin-apply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'gateway.json');
  writeFileSync(configFile, JSON.stringify({ ...raw, server: { port: await freePort() } }));
  const keyBefore = client!.jwks!.keys.map((k) => k.kid);
  const rotated = await spawnCli(['integrations', 'rotate-keys', '--tenant', 'kunde', '--overlap', '1s', '--config', configFile]).done;
  t.equal(rotated.code, 0, describeRun(rotated));
  const keysAfter = w.selfService.registry.get(client!.client_id)!.jwks!.keys.map((k) => k.kid);
  t.equal(keysAfter.length, 1, 'after the overlap one key is registered');
  t.not(keysAfter[0], keyBefore[0], 'a new one');
  t.ok(await within(8_000, () => logsIn(kunde)), 'the tenant logs in with the rotated key');
});

t.test('apply=true needs a digdir block and the Redis store: 400 naming why, nothing kept', async (t) => {
  const w = await vendorWorld(t);
  const dir = mkdtempSync(join(tmpdir(), 'bff-admin-apply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = await instance(t, {
    session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
    digdir: w.digdir,
    tenantsDir: dir,
    tenants: [{ id: 'base', publicUrl: `http://base.localhost:${w.portB}`, idporten: { issuer: w.op.issuer, clientId: 'base', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } }, routes: [] }],
  }, w.portB);
  const refused = await put(a, '/admin/tenants/kunde?apply=true', { id: 'kunde', publicUrl: `http://localhost:${w.portB}`, orgno: '123456789', idporten: { issuer: w.op.issuer }, routes: [] });
  t.equal(refused.status, 400);
  t.match(refused.body.detail, /apply=true needs a digdir block in the configuration and the Redis session store/);
  t.equal(w.selfService.registry.size, 0, 'nothing registered');
});
