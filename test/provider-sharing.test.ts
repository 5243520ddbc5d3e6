/**
 * One provider client per issuer: hundreds of tenants on one ID-porten look-alike cost one discovery and one JWKS
 * request at start, one JWKS request after a key rotation (the new `kid` fetched at once, not once per tenant),
 * none for tenants a reload adds; a tenant whose provider is down holds up no other; and a loaded provider is
 * refreshed in the background. The requests are counted by the provider itself, as they arrive.
 */
import t, { type Test } from 'tap';
import { getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike, type IdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';
import type { GatewayConfig } from '../src/config/types.js';
import { validated } from '../src/plugin.js';
import { KeyRing } from '../src/session/key-ring.js';
import { Discovery } from '../src/tenant/discovery.js';
import { Tenants } from '../src/tenant/tenant.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, captureLogger, lookalikeClient, SESSION_KEY, startGateway } from './helpers/stack.js';

const TENANTS = 300;

/**
 * Counts the discovery and JWKS requests for the look-alike that leave this process, on undici's global dispatcher
 * (the one the gateway's provider fetch uses when no extra CA is configured), as they are sent.
 */
function countRequests(t: Test, op: IdportenLookalike): { discovery: number; jwks: number } {
  const counts = { discovery: 0, jwks: 0 };
  const jwksPath = new URL(op.jwksUri).pathname;
  const previous = getGlobalDispatcher();
  setGlobalDispatcher(
    previous.compose((dispatch) => (opts, handler) => {
      if (String(opts.origin) === op.issuer && opts.path === '/.well-known/openid-configuration') counts.discovery += 1;
      if (String(opts.origin) === op.issuer && opts.path === jwksPath) counts.jwks += 1;
      return dispatch(opts, handler);
    }),
  );
  t.teardown(() => setGlobalDispatcher(previous));
  return counts;
}

async function rawConfig(port: number, op: IdportenLookalike, ids: number[], extra: Record<string, unknown>[] = []) {
  return {
    server: { port, rateLimit: { login: { max: 1000, window: '1m' } } },
    session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
    tenants: [
      ...ids.map((i) => ({
        id: `t${i}`,
        publicUrl: `http://t${i}.localhost:${port}`,
        idporten: { issuer: op.issuer, clientId: `client-${i}`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, httpTimeout: '2s' },
        routes: [{ path: '/api', upstream: 'http://127.0.0.1:9/api', token: 'idporten' }],
      })),
      ...extra,
    ],
  };
}

t.test(`${TENANTS} tenants on one issuer share one provider client`, async (t) => {
  const port = await freePort();
  const origin = (i: number) => `http://t${i}.localhost:${port}`;
  const op = await startIdportenLookalike({ clients: Array.from({ length: TENANTS + 100 }, (_, i) => lookalikeClient(`client-${i}`, origin(i))) });
  t.teardown(() => op.close());
  const counts = countRequests(t, op);
  const deadIssuer = `http://127.0.0.1:${await freePort()}`;
  const dead = {
    id: 'down',
    publicUrl: `http://down.localhost:${port}`,
    idporten: { issuer: deadIssuer, clientId: 'down', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, httpTimeout: '1s' },
    routes: [{ path: '/api', upstream: 'http://127.0.0.1:9/api', token: 'idporten' }],
  };
  const first = Array.from({ length: TENANTS }, (_, i) => i);
  const gateway = await startGateway(t, normaliseConfig(await rawConfig(port, op, first, [dead]), {}));

  t.equal(counts.discovery, 1, `${TENANTS} tenants: one discovery request at start`);
  t.equal(counts.jwks, 1, `${TENANTS} tenants: one JWKS request at start`);
  const tenants = gateway.core.tenants;
  t.equal(tenants.all.filter((tenant) => tenant.idporten.ready).length, TENANTS, 'every tenant of the issuer is ready');
  t.notOk(tenants.byId('down')!.idporten.ready, 'the tenant whose provider is down is not, and held up no other');
  t.equal(tenants.providers.length, 2, 'two provider clients: one per issuer');

  const login = async (i: number) => {
    const browser = new Browser({ localhostNames: true });
    t.teardown(() => browser.close());
    await loginAtLookalike(browser, `${origin(i)}/auth/login`, { pid: TEST_USERS[i % TEST_USERS.length]!.pid });
    const session = await browser.fetch(`${origin(i)}/auth/session`);
    t.equal(session.status, 200, `tenant t${i} logs in (its ID token checked with the shared keys)`);
  };
  for (const i of [0, 150, TENANTS - 1]) await login(i);
  t.equal(counts.discovery + counts.jwks, 2, 'logins ask for neither metadata nor keys again');

  // ID-porten rotates its signing key: the first ID token with the new kid fetches the keys once, for every tenant.
  await op.rotateSigningKey({ dropOld: true });
  for (const i of [1, 151, TENANTS - 2]) await login(i);
  t.equal(counts.jwks, 2, 'after a key rotation: one JWKS request for all tenants');
  t.equal(counts.discovery, 1, 'and no discovery');

  // A reload adds 100 tenants of the same issuer: ready at once, on the provider already loaded.
  const next = [...first, ...Array.from({ length: 100 }, (_, i) => TENANTS + i)];
  const result = await gateway.reload(validated(normaliseConfig(await rawConfig(port, op, next, [dead]), {})));
  t.equal(result.added.length, 100, 'the reload added 100 tenants');
  t.ok(tenants.byId(`t${TENANTS + 99}`)!.idporten.ready, 'an added tenant is ready at once');
  await gateway.warmUp();
  await login(TENANTS + 50);
  t.equal(counts.discovery, 1, 'the added tenants cost no discovery');
  t.equal(counts.jwks, 2, '…and no JWKS request');
});

t.test('a loaded provider is refreshed in the background; its tenants stay ready throughout', async (t) => {
  const port = await freePort();
  const op = await startIdportenLookalike({ clients: Array.from({ length: 50 }, (_, i) => lookalikeClient(`client-${i}`, `http://t${i}.localhost:${port}`)) });
  t.teardown(() => op.close());
  const counts = countRequests(t, op);
  const config: GatewayConfig = normaliseConfig(await rawConfig(port, op, Array.from({ length: 50 }, (_, i) => i)), {});
  const tenants = new Tenants(config, { keys: new KeyRing(config.session.keys) });
  const log = captureLogger();
  const discovery = new Discovery(tenants, { info: (f, m) => log.logger.info(f, m), warn: (f, m) => log.logger.warn(f, m) }, { refreshMs: 200 });
  t.teardown(() => discovery.stop());
  await discovery.run();
  const [provider] = tenants.providers;
  const firstState = provider!.state;
  t.equal(counts.discovery, 1, 'one discovery for 50 tenants');
  while (counts.jwks < 3) await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(counts.discovery >= 3, 'each refresh fetches the metadata and the keys');
  t.not(provider!.state, firstState, 'the refresh replaced the metadata and keys');
  t.ok(tenants.all.every((tenant) => tenant.idporten.ready), 'every tenant stayed ready');
  const loaded = log.lines.filter((line) => line.msg === 'provider metadata loaded');
  t.equal(loaded.length, 1, 'one "loaded" line for the provider');
  t.equal(loaded[0]!.tenants, 50, 'naming how many tenants use it');
});
