import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { CLIENT_SECRET } from './helpers/stack.js';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const KEY = Buffer.alloc(32, 5).toString('base64url');

// The real process: SIGHUP reads the file again. A good file applies (a tenant added, a route changed) and the
// logged-in session survives; a broken file is refused, logged, and the running configuration keeps serving.
t.test('SIGHUP reloads the configuration file without dropping sessions, and refuses a broken one', { timeout: 60_000 }, async (t) => {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const op = await startIdportenLookalike({
    clients: [{ client_id: 'hup', client_secret: CLIENT_SECRET, redirect_uris: [`${origin}/auth/callback`], post_logout_redirect_uris: [`${origin}/`], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' }] as never,
  });
  t.teardown(() => op.close());
  const plain = createServer((req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url })));
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  t.teardown(() => void plain.close());
  const plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;

  const tenant = (id: string, publicUrl: string, upstreamPath: string) => ({
    id, publicUrl,
    idporten: { issuer: op.issuer, clientId: 'hup', clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, acrValues: 'idporten-loa-substantial' },
    routes: [{ path: '/open', upstream: `${plainUrl}${upstreamPath}`, token: 'none', methods: ['GET'] }],
  });
  const file = join(mkdtempSync(join(tmpdir(), 'bff-reload-')), 'gateway.json');
  const write = (tenants: unknown[]) => writeFileSync(file, JSON.stringify({ server: { host: '127.0.0.1', port }, session: { keys: [{ id: 'k1', secret: KEY }] }, tenants }));
  write([tenant('main', origin, '/v1')]);

  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--config', file], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const lines: Record<string, unknown>[] = [];
  let pending = '';
  child.stdout.on('data', (d: Buffer) => {
    pending += d.toString();
    for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
      try {
        lines.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>);
      } catch { /* not a log line */ }
      pending = pending.slice(nl + 1);
    }
  });
  const waitFor = async (msg: string, count = 1) => {
    const deadline = Date.now() + 15_000;
    while (lines.filter((l) => l.msg === msg).length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return lines.filter((l) => l.msg === msg);
  };
  t.ok((await waitFor('provider metadata loaded')).length > 0, 'started');

  const browser = new Browser();
  await loginAtLookalike(browser, `${origin}/auth/login`, { pid: TEST_USERS[0]!.pid });
  t.equal((await browser.fetch(`${origin}/auth/session`)).status, 200, 'logged in');
  const open = async (base: string) => (await (await fetch(`${base}/open/x`, { headers: { 'x-csrf': '1' } })).json()) as { path?: string };
  t.equal((await open(origin)).path, '/v1/x');

  write([tenant('main', origin, '/v2'), tenant('added', `http://127.0.0.1:${port}`, '/added')]);
  child.kill('SIGHUP');
  const reloaded = await waitFor('configuration reloaded');
  t.same(reloaded[0]?.added, ['added']);
  t.same(reloaded[0]?.changed, ['main']);
  t.equal((await open(origin)).path, '/v2/x', 'the changed route applies');
  t.equal((await open(`http://127.0.0.1:${port}`)).path, '/added/x', 'the added tenant serves');
  t.equal((await browser.fetch(`${origin}/auth/session`)).status, 200, 'the session survives the reload');

  writeFileSync(file, '{ "tenants": [ this is not json');
  child.kill('SIGHUP');
  const refused = await waitFor('configuration reload refused; the running configuration keeps serving');
  t.equal(refused.length, 1, 'the broken file is refused and logged');
  t.type(refused[0]?.reason, 'string');
  t.equal((await open(origin)).path, '/v2/x', 'the running configuration keeps serving');
  t.equal((await browser.fetch(`${origin}/auth/session`)).status, 200, 'and the session with it');
  t.equal(child.exitCode, null, 'the process is still running');

  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0);
});
