import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, captureLogger, SESSION_KEY, startGateway } from './helpers/stack.js';
import { freePort } from '../demo/free-port.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { startSkatteetatenLookalike } from '../demo/skatteetaten.js';
import { TEST_USERS } from '../demo/test-users.js';

// One gateway, two customers: each tenant has its own ID-porten client, host and upstream. The browser reaches
// tenant "acme" as localhost:<port> and tenant "beta" as 127.0.0.1:<port> (cookies are scoped by host).
t.test('two tenants on one gateway keep their logins, sessions and upstreams apart', async (t) => {
  const port = await freePort();
  const origins = { acme: `http://localhost:${port}`, beta: `http://127.0.0.1:${port}` };
  const op = await startIdportenLookalike({ clients: [lookalikeClient('acme-client', origins.acme), lookalikeClient('beta-client', origins.beta)] });
  t.teardown(() => op.close());
  const upstreamA = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri });
  const upstreamB = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri });
  t.teardown(() => upstreamA.close());
  t.teardown(() => upstreamB.close());
  const tenant = (id: 'acme' | 'beta', upstreamUrl: string) => ({
    id,
    publicUrl: origins[id],
    idporten: { issuer: op.issuer, clientId: `${id}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, acrValues: 'idporten-loa-substantial' },
    // pid is shown only to tenants that opt in; both do here, so the test can compare who logged in.
    exposePid: true,
    routes: [{ path: '/mva/echo', upstream: `${upstreamUrl}/echo/${id}`, token: 'idporten' }],
  });
  const config = normaliseConfig(
    {
      server: { port },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [tenant('acme', upstreamA.url), tenant('beta', upstreamB.url)],
    },
    {},
  );
  const captured = captureLogger();
  const gateway = await startGateway(t, config, { logger: captured.logger });

  const browser = new Browser();
  await loginAtLookalike(browser, `${origins.acme}/auth/login`, { pid: TEST_USERS[0]!.pid });
  await loginAtLookalike(browser, `${origins.beta}/auth/login`, { pid: TEST_USERS[0]!.pid });
  const acme = JSON.parse((await browser.fetch(`${origins.acme}/auth/session`)).body);
  const beta = JSON.parse((await browser.fetch(`${origins.beta}/auth/session`)).body);
  t.equal(acme.user.pid, TEST_USERS[0]!.pid);
  t.equal(beta.user.pid, TEST_USERS[0]!.pid);
  t.not(acme.user.sub, beta.user.sub, 'pairwise sub: each integration sees its own subject');

  const echoA = await browser.fetch(`${origins.acme}/mva/echo/x`, { headers: { 'x-csrf': '1' } });
  const echoB = await browser.fetch(`${origins.beta}/mva/echo/x`, { headers: { 'x-csrf': '1' } });
  t.equal(JSON.parse(echoA.body).path, '/echo/acme/x', 'acme reaches its own upstream path');
  t.equal(JSON.parse(echoB.body).path, '/echo/beta/x', 'beta reaches its own upstream path');
  t.equal(upstreamA.requests.length, 1);
  t.equal(upstreamB.requests.length, 1);

  // A session cookie of one tenant is no session at the other, even if a client sends it there.
  const acmeCookie = browser.cookie('localhost', 'bff')!.value;
  const crossed = await gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host: new URL(origins.beta).host, cookie: `bff=${acmeCookie}` } });
  t.equal(crossed.statusCode, 401, "acme's cookie is refused on beta's host");
  const crossedProxy = await gateway.app.inject({ method: 'GET', url: '/mva/echo/x', headers: { host: new URL(origins.beta).host, cookie: `bff=${acmeCookie}`, 'x-csrf': '1' } });
  t.equal(crossedProxy.statusCode, 401, 'and gets no bearer for beta');

  const unknown = await gateway.app.inject({ method: 'GET', url: '/auth/session', headers: { host: 'evil.example' } });
  t.equal(unknown.statusCode, 421, 'an unknown Host is refused');

  await browser.fetch(`${origins.acme}/auth/logout`, { method: 'POST', headers: { 'x-csrf': '1', accept: 'application/json' } });
  t.equal((await browser.fetch(`${origins.acme}/auth/session`)).status, 401, 'acme logged out');
  t.equal((await browser.fetch(`${origins.beta}/auth/session`)).status, 200, 'beta still logged in');
  const tenantsInAudit = new Set(captured.lines.filter((l) => l.event === 'login.success').map((l) => l.tenant));
  t.same([...tenantsInAudit].sort(), ['acme', 'beta'], 'audit lines name their tenant');
});
