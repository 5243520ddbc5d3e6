import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from '../demo/free-port.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const FIXTURES = new URL('./fixtures/config/', import.meta.url).pathname;
const ENV = { BFF_SESSION_KEY: Buffer.alloc(32, 3).toString('base64url'), DEMO_CLIENT_SECRET: 'demo-secret' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { child, done, output: () => stdout + stderr };
}

const run = (args: string[], env: Record<string, string> = {}) => start(args, env).done;

const base = (tenant: Record<string, unknown> = {}, idporten: Record<string, unknown> = {}, session: Record<string, unknown> = {}) => ({
  session: { keys: [{ id: 'k1', secret: '${BFF_SESSION_KEY}' }], ...session },
  tenants: [
    {
      id: 'demo',
      publicUrl: 'http://localhost:3000',
      idporten: { issuer: 'http://127.0.0.1:4100', clientId: 'demo-spa', clientAuth: { method: 'client_secret_post', secret: 'x' }, ...idporten },
      routes: [],
      ...tenant,
    },
  ],
});

t.test('without a config it exits non-zero and says how to give one; it never falls back to the demo', async (t) => {
  const result = await run([]);
  t.not(result.code, 0);
  t.match(result.stderr, /--config FILE or set BFF_CONFIG/);
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
});

t.test('every broken config exits non-zero naming the offending path, without a stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-config-'));
  const inline: Record<string, [unknown, RegExp]> = {
    'missing-client-id': [(() => { const c = base(); delete (c.tenants[0]!.idporten as Record<string, unknown>).clientId; return c; })(), /tenants\[0\]\.idporten/],
    'unknown-auth-method': [base({}, { clientAuth: { method: 'client_secret_jwt', secret: 'x' } }), /tenants\[0\]\.idporten\.clientAuth\.method/],
    'bad-duration': [base({}, {}, { idleTimeout: 'ten minutes' }), /session\.idleTimeout/],
    'route-without-upstream': [base({ routes: [{ path: '/mva/validering', token: 'idporten' }] }), /tenants\[0\]\.routes\[0\]/],
    'short-session-key': [{ ...base(), session: { keys: [{ id: 'k1', secret: 'c2hvcnQ' }] } }, /session\.keys\[0\]\.secret/],
  };
  const files: [string, RegExp][] = [
    [join(FIXTURES, 'lifetime-9h.yaml'), /session\.absoluteLifetime/],
    [join(FIXTURES, 'missing-env.yaml'), /privateKeyJwk: environment variable IDPORTEN_JWK_NOT_SET is not set/],
    [join(FIXTURES, 'yaml-syntax-error.yaml'), /yaml-syntax-error\.yaml:\d+/],
    [join(FIXTURES, 'json-syntax-error.json'), /json-syntax-error\.json/],
    [join(FIXTURES, 'unknown-key.yaml'), /unknown key/],
    [join(FIXTURES, 'http-public-url.yaml'), /publicUrl/],
    [join(FIXTURES, 'altinn-route-without-exchange-url.yaml'), /altinn/],
    [join(FIXTURES, 'duplicate-tenant-ids.yaml'), /tenants\[1\]\.id/],
    [join(dir, 'does-not-exist.yaml'), /does-not-exist\.yaml/],
  ];
  for (const [name, [config, expected]] of Object.entries(inline)) {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(config));
    files.push([file, expected]);
  }
  // A few processes at a time: each one starts a TypeScript loader.
  const results: Run[] = [];
  for (let i = 0; i < files.length; i += 4) results.push(...(await Promise.all(files.slice(i, i + 4).map(([file]) => run(['--config', file], ENV)))));
  files.forEach(([file, expected], i) => {
    const result = results[i]!;
    t.not(result.code, 0, `${file}: exits non-zero`);
    t.match(result.stderr, expected, `${file}: names the problem`);
    t.notMatch(result.stderr, /\n\s+at .*\.(ts|js):\d+/, `${file}: no stack trace`);
  });
});

t.test('SIGTERM stops accepting, lets an in-flight request finish, and exits 0', async (t) => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bff-config-'));
  const file = join(dir, 'gateway.json');
  // The provider is unreachable: the gateway starts anyway, answers /healthz, and keeps retrying discovery.
  writeFileSync(file, JSON.stringify({ ...base({ publicUrl: `http://localhost:${port}` }, { issuer: 'http://127.0.0.1:9' }), server: { port, shutdownTimeout: '10s' } }));
  const proc = start([], { ...ENV, BFF_CONFIG: file });
  t.teardown(() => proc.child.kill('SIGKILL'));
  const deadline = Date.now() + 20_000;
  let healthy = false;
  while (!healthy && Date.now() < deadline) {
    healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (!healthy) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(healthy, '/healthz answers');
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  t.equal(ready.status, 503, 'not ready while the provider metadata is missing');

  // An in-flight request: headers sent, body still coming when SIGTERM arrives.
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  let response = '';
  socket.on('data', (d: Buffer) => (response += d.toString()));
  const body = 'logout_token=abc';
  socket.write(`POST /auth/logout/backchannel HTTP/1.1\r\nHost: localhost:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\nlogout_`);
  await new Promise((r) => setTimeout(r, 200));
  proc.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 'refused');
  t.not(refused, 200, 'no new requests are accepted while stopping');
  socket.write('token=abc');
  const result = await proc.done;
  // 503: the provider is unreachable, so the logout token cannot be checked — but the request was answered in full.
  t.match(response, /^HTTP\/1\.1 503 [\s\S]*\r\n\r\n\{"error":"temporarily_unavailable"\}$/, 'the in-flight request got its answer');
  t.equal(result.code, 0, 'exit 0');
});
