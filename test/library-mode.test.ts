/**
 * Library mode: examples/library-mode/server.ts — a host Fastify server with its own route, plus the gateway
 * registered with `app.register(idportenBff, { config })` — run as its own process, through the same login →
 * API → logout flow a browser would take.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { startSkatteetatenLookalike } from '../demo/skatteetaten.js';
import { TEST_USERS } from '../demo/test-users.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET, lookalikeClient, SESSION_KEY } from './helpers/stack.js';

const user = TEST_USERS[0]!;

t.test('a host Fastify app with its own routes and the plugin: login, proxied API, the host reads the user, logout', async (t) => {
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const op = await startIdportenLookalike({
    clients: [lookalikeClient('library-host', publicUrl)],
  });
  t.teardown(() => op.close());
  const skatteetaten = await startSkatteetatenLookalike({ issuer: op.issuer, jwksUri: op.jwksUri });
  t.teardown(() => skatteetaten.close());

  const dir = await mkdtemp(join(tmpdir(), 'bff-library-'));
  const configFile = join(dir, 'gateway.json');
  await writeFile(
    configFile,
    JSON.stringify({
      session: { keys: [{ id: 'k1', secret: '${BFF_SESSION_KEY}' }] },
      tenants: [
        {
          id: 'host',
          publicUrl,
          idporten: {
            issuer: op.issuer,
            clientId: 'library-host',
            clientAuth: { method: 'client_secret_post', secret: '${IDPORTEN_CLIENT_SECRET}' },
            scopes: ['openid', 'skatteetaten:mvameldingvalidering'],
          },
          routes: [{ path: '/mva/echo', upstream: `${skatteetaten.url}/echo`, token: 'idporten' }],
        },
      ],
    }),
  );
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', 'examples/library-mode/server.ts'], {
    env: { ...process.env, BFF_CONFIG: configFile, PORT: String(port), BFF_SESSION_KEY: SESSION_KEY, IDPORTEN_CLIENT_SECRET: CLIENT_SECRET, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  await waitForReady(`${publicUrl}/readyz`, () => output);

  const browser = new Browser();
  const anonymous = await browser.fetch(`${publicUrl}/api/hello`);
  t.equal(anonymous.status, 401, 'the host route sees no user before login');

  await loginAtLookalike(browser, `${publicUrl}/auth/login?returnTo=/api/hello`, { pid: user.pid });
  const hello = await browser.fetch(`${publicUrl}/api/hello`);
  t.equal(hello.status, 200, 'the host route sees the user after login');
  const body = JSON.parse(hello.body) as { hello: string; acr: string };
  const session = JSON.parse((await browser.fetch(`${publicUrl}/auth/session`)).body) as { user: { sub: string } };
  t.equal(body.hello, session.user.sub, 'request.bff.user() is the session user');
  t.equal(body.acr, 'idporten-loa-substantial');
  t.notMatch(hello.body, /eyJ/, 'the host route got claims, no token');

  const echoed = await browser.fetch(`${publicUrl}/mva/echo/ping?x=1`, { headers: { 'x-csrf': '1' } });
  t.equal(echoed.status, 200, 'the plugin proxies the API route with a bearer the upstream verifies');
  t.equal(skatteetaten.requests.at(-1)?.path, '/echo/ping?x=1', 'the upstream got the path and query under the route');

  const logout = await browser.fetch(`${publicUrl}/auth/logout`, { method: 'POST', headers: { 'x-csrf': '1', accept: 'application/json' } });
  t.equal(logout.status, 200);
  t.equal((await browser.fetch(`${publicUrl}/api/hello`)).status, 401, 'after logout the host route sees no user');
  t.equal((await browser.fetch(`${publicUrl}/mva/echo/ping`, { headers: { 'x-csrf': '1' } })).status, 401, 'and the API route needs a login again');
});

async function waitForReady(url: string, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the example did not become ready:\n${output()}`);
}
