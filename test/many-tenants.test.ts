/**
 * A vendor's gateway: 500 tenants in one process, each its own ID-porten client on one local provider and its own
 * host (`tN.localhost`, RFC 6761 loopback names), plus one tenant whose provider is down. Logins on a sample of
 * them, isolation by Host and by X-Forwarded-Host from a trusted proxy, and readiness that survives one tenant down.
 */
import { request } from 'undici';
import t from 'tap';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { startSkatteetatenLookalike } from '../demo/skatteetaten.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY, startGateway } from './helpers/stack.js';

const TENANTS = 500;
const SAMPLE = [0, 137, 250, 499];

t.test(`${TENANTS} tenants in one process: sampled logins stay apart by Host and by a trusted X-Forwarded-Host`, async (t) => {
  const port = await freePort();
  const origin = (i: number) => `http://t${i}.localhost:${port}`;
  const op = await startIdportenLookalike({ clients: Array.from({ length: TENANTS }, (_, i) => lookalikeClient(`client-${i}`, origin(i))) });
  t.teardown(() => op.close());
  const upstream = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri });
  t.teardown(() => upstream.close());
  const deadIssuer = `http://127.0.0.1:${await freePort()}`;

  const tenant = (i: number, issuer = op.issuer) => ({
    id: `t${i}`,
    publicUrl: origin(i),
    idporten: { issuer, clientId: `client-${i}`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, httpTimeout: '2s' },
    routes: [{ path: '/mva/echo', upstream: `${upstream.url}/echo/t${i}`, token: 'idporten' }],
  });
  const config = normaliseConfig(
    {
      server: { port, trustProxy: ['127.0.0.1'], rateLimit: { login: { max: 1000, window: '1m' } } },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [...Array.from({ length: TENANTS }, (_, i) => tenant(i)), tenant(TENANTS, deadIssuer)],
    },
    {},
  );
  const started = Date.now();
  const gateway = await startGateway(t, config);
  t.comment(`${TENANTS + 1} tenants built, listening and discovered in ${Date.now() - started} ms`);
  const internalPort = await freePort();
  const internal = await startMetricsServer(gateway.core, '127.0.0.1', internalPort);
  t.teardown(() => internal.close());

  const browsers = new Map<number, Browser>();
  for (const i of SAMPLE) {
    const browser = new Browser({ localhostNames: true });
    t.teardown(() => browser.close());
    await loginAtLookalike(browser, `${origin(i)}/auth/login`, { pid: TEST_USERS[i % TEST_USERS.length]!.pid });
    const echo = await browser.fetch(`${origin(i)}/mva/echo/hello`, { headers: { 'x-csrf': '1' } });
    t.equal(echo.status, 200, `tenant t${i}: logged in and proxied`);
    t.equal(upstream.requests.at(-1)?.path, `/echo/t${i}/hello`, `tenant t${i}: its own upstream path`);
    browsers.set(i, browser);
  }

  const [a, b] = [SAMPLE[0]!, SAMPLE[1]!];
  const cookieOfA = browsers.get(a)!.cookie(`t${a}.localhost`, 'bff')!.value;
  const askB = (headers: Record<string, string>) => request(`http://127.0.0.1:${port}/auth/session`, { headers: { cookie: `bff=${cookieOfA}`, ...headers } });
  const byHost = await askB({ host: `t${b}.localhost:${port}` });
  t.equal(byHost.statusCode, 401, "tenant A's cookie opens no session on tenant B (by Host)");
  await byHost.body.dump();
  const byForwardedHost = await askB({ host: `t${a}.localhost:${port}`, 'x-forwarded-host': `t${b}.localhost:${port}` });
  t.equal(byForwardedHost.statusCode, 401, "…nor on tenant B named by a trusted proxy's X-Forwarded-Host");
  await byForwardedHost.body.dump();
  const own = await askB({ host: `t${a}.localhost:${port}` });
  t.equal(own.statusCode, 200, 'while it still opens its own');
  await own.body.dump();

  const publicReady = await request(`http://127.0.0.1:${port}/readyz`, { headers: { host: `t${a}.localhost:${port}` } });
  t.equal(publicReady.statusCode, 200, 'one tenant of 501 down: the public /readyz stays up');
  await publicReady.body.dump();
  const detail = (await (await request(`http://127.0.0.1:${internalPort}/readyz`)).body.json()) as { tenants: Record<string, { idporten: string }> };
  t.equal(detail.tenants[`t${TENANTS}`]?.idporten, 'not_ready', 'the internal listener names the tenant whose provider is down');
  t.equal(Object.values(detail.tenants).filter((s) => s.idporten === 'ready').length, TENANTS, 'every other tenant is ready');
});
