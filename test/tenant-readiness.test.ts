/**
 * One tenant's provider being down makes only that tenant not ready: the gateway keeps serving the others,
 * the public /readyz stays up while at least half of the tenants are served, and the internal listener names
 * the tenant that is not.
 */
import t from 'tap';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { buildApp } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, captureLogger, SESSION_KEY } from './helpers/stack.js';

t.test('a tenant whose provider is down is not ready; the others log in and the public /readyz stays up', async (t) => {
  const port = await freePort();
  const deadIssuerPort = await freePort();
  const origins = { live: `http://localhost:${port}`, down: `http://127.0.0.1:${port}` };
  const op = await startIdportenLookalike({
    clients: [lookalikeClient('live-client', origins.live)],
  });
  t.teardown(() => op.close());
  const tenant = (id: 'live' | 'down', issuer: string) => ({
    id,
    publicUrl: origins[id],
    idporten: { issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, httpTimeout: '1s' },
    routes: [],
  });
  const config = normaliseConfig(
    {
      server: { port },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [tenant('live', op.issuer), tenant('down', `http://127.0.0.1:${deadIssuerPort}`)],
    },
    {},
  );
  const gateway = await buildApp(config, { logger: captureLogger().logger });
  await gateway.app.listen({ host: '127.0.0.1', port });
  t.teardown(() => gateway.close());
  const internalPort = await freePort();
  const internal = await startMetricsServer(gateway.core, '127.0.0.1', internalPort);
  t.teardown(() => internal.close());
  await gateway.warmUp();

  const publicReady = await fetch(`${origins.live}/readyz`);
  t.equal(publicReady.status, 200, 'half of the tenants served: the public /readyz says ready');
  t.same(await publicReady.json(), { status: 'ready' });
  const detail = (await (await fetch(`http://127.0.0.1:${internalPort}/readyz`)).json()) as { tenants: Record<string, { idporten: string }> };
  t.same(detail.tenants, { live: { idporten: 'ready' }, down: { idporten: 'not_ready' } }, 'the internal listener names the tenant that is not ready');

  const browser = new Browser();
  await loginAtLookalike(browser, `${origins.live}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal((await browser.fetch(`${origins.live}/auth/session`)).status, 200, 'the live tenant logs in');
  const refused = await new Browser().fetch(`${origins.down}/auth/login`, { headers: { accept: 'application/json' } });
  t.equal(refused.status, 503, 'the tenant whose provider is down answers 503');
  t.equal(JSON.parse(refused.body).code, 'idp_unavailable');
});
