import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { spawnCli, type CliRun } from './helpers/cli.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
const CONFIG_DIR = new URL('../config/', import.meta.url).pathname;
const FIXTURES = new URL('./fixtures/config/', import.meta.url).pathname;
const ENV = { BFF_SESSION_KEY: Buffer.alloc(32, 3).toString('base64url'), DEMO_CLIENT_SECRET: 'demo-secret' };

const start = (args: string[], env: Record<string, string> = {}) => spawnCli(args, { env });
const run = (args: string[], env: Record<string, string> = {}) => start(args, env).done;

/** Runs a batch of commands a few at a time: each process starts a TypeScript loader. */
async function runAll(commands: [string[], Record<string, string>][]): Promise<CliRun[]> {
  const results: CliRun[] = [];
  for (let i = 0; i < commands.length; i += 4) results.push(...(await Promise.all(commands.slice(i, i + 4).map(([args, env]) => run(args, env)))));
  return results;
}

async function waitHealthy(port: number, path = '/healthz'): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (await fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.ok, () => false)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Resolves with the first stdout line (parsed) that satisfies `match`, or undefined after `timeoutMs`. */
function nextLine(stream: NodeJS.ReadableStream, match: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    let pending = '';
    const onData = (d: Buffer) => {
      pending += d.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const text = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (match(line)) return finish(line);
      }
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const finish = (line: Record<string, unknown> | undefined) => {
      clearTimeout(timer);
      stream.off('data', onData);
      resolve(line);
    };
    stream.on('data', onData);
  });
}

function gatewayConfig(dir: string, port: number, extra: { issuer?: string; server?: Record<string, unknown>; clientId?: string; secret?: string } = {}): string {
  const file = join(dir, `gateway-${port}.json`);
  const config = base({ publicUrl: `http://localhost:${port}` }, { issuer: extra.issuer ?? 'http://127.0.0.1:9', clientId: extra.clientId ?? 'demo-spa', clientAuth: { method: 'client_secret_post', secret: extra.secret ?? 'x' } });
  writeFileSync(file, JSON.stringify({ ...config, server: { host: '127.0.0.1', port, ...extra.server } }));
  return file;
}

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
  const results: CliRun[] = [];
  for (let i = 0; i < files.length; i += 4) results.push(...(await Promise.all(files.slice(i, i + 4).map(([file]) => run(['--config', file], ENV)))));
  files.forEach(([file, expected], i) => {
    const result = results[i]!;
    t.not(result.code, 0, `${file}: exits non-zero`);
    t.match(result.stderr, expected, `${file}: names the problem`);
    t.notMatch(result.stderr, /\n\s+at .*\.(ts|js):\d+/, `${file}: no stack trace`);
  });
});

t.test('a session.journalDir that cannot be used stops the start with exit 1, naming it and the path it resolved to (from the file\'s folder)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'not-a-directory'), '');
  const file = join(dir, 'gateway.json');
  writeFileSync(file, JSON.stringify({ ...base({ publicUrl: `http://localhost:${await freePort()}` }, { issuer: 'http://127.0.0.1:9' }, { journalDir: 'not-a-directory/journal' }) }));
  const result = await run([], { ...ENV, BFF_CONFIG: file });
  t.equal(result.code, 1);
  t.match(result.stderr, `failed to start: session.journalDir: cannot use ${join(dir, 'not-a-directory', 'journal')} as the back-channel logout journal (ENOTDIR)`);
  t.notMatch(result.stderr, /\n\s+at .*\.(ts|js):\d+/, 'no stack trace');
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

t.test('an audit line reaches stdout within a second while the gateway keeps running', { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const publicUrl = `http://localhost:${port}`;
  const op = await startIdportenLookalike({
    clients: [{ client_id: 'pipe-test', client_secret: 'pipe-test-secret-0123456789abcdef0123456789', redirect_uris: [`${publicUrl}/auth/callback`], post_logout_redirect_uris: [`${publicUrl}/`], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' } as never],
  });
  t.teardown(() => op.close());
  const dir = mkdtempSync(join(tmpdir(), 'bff-config-'));
  const file = gatewayConfig(dir, port, { issuer: op.issuer, clientId: 'pipe-test', secret: 'pipe-test-secret-0123456789abcdef0123456789' });
  const proc = start(['--config', file], ENV);
  t.teardown(() => proc.child.kill('SIGKILL'));
  t.ok(await waitHealthy(port, '/readyz'), 'ready: the provider metadata is loaded');
  await new Promise((r) => setTimeout(r, 300)); // whatever start-up logged has gone out by now

  const sent = Date.now();
  const line = nextLine(proc.child.stdout, (l) => l.event === 'login.start', 1000);
  const login = await fetch(`${publicUrl}/auth/login?returnTo=/`, { redirect: 'manual' });
  t.equal(login.status, 302, 'the login starts');
  const audit = await line;
  t.ok(audit, 'the login.start line arrived');
  t.ok(Date.now() - sent < 1000, `within 1 s (${Date.now() - sent} ms)`);
  t.equal(audit?.tenant, 'demo');
  t.match(audit?.state, /^[A-Za-z0-9_-]{12}$/, 'the state as a fingerprint');
  t.equal(proc.child.exitCode, null, 'the gateway is still running: nothing had to stop for the line to be written');

  const csrf = nextLine(proc.child.stdout, (l) => l.event === 'csrf.reject', 1000);
  await fetch(`http://localhost:${port}/auth/logout`, { method: 'POST' });
  t.ok(await csrf, 'a second line, moments later, is just as prompt');

  proc.child.kill('SIGTERM');
  t.equal((await proc.done).code, 0, 'exit 0 on SIGTERM');
});

t.test('SIGTERM exits within the shutdown timeout when stdout\'s reader is gone (EPIPE)', { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bff-config-'));
  const file = gatewayConfig(dir, port, { server: { shutdownTimeout: '3s' } });
  const proc = start([], { ...ENV, BFF_CONFIG: file });
  t.teardown(() => proc.child.kill('SIGKILL'));
  t.ok(await waitHealthy(port), 'started');
  proc.child.stdout.destroy(); // the reader closes its end of the pipe
  // Audit lines with nowhere to go: the write fails with EPIPE.
  for (let i = 0; i < 5; i++) await fetch(`http://localhost:${port}/auth/logout`, { method: 'POST' });
  await new Promise((r) => setTimeout(r, 300));
  t.ok(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok), 'still serving after stdout broke');
  const signalled = Date.now();
  proc.child.kill('SIGTERM');
  const result = await proc.done;
  const took = Date.now() - signalled;
  t.equal(result.code, 0, 'exit 0');
  t.ok(took < 3000, `exited within the 3 s shutdown timeout (${took} ms)`);
  t.notMatch(result.stderr, /EPIPE|Unhandled/, 'no crash report about the closed pipe');
});

t.test('SIGTERM exits within the shutdown timeout when stdout\'s reader stopped reading (a full pipe)', { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bff-config-'));
  const file = gatewayConfig(dir, port, { server: { shutdownTimeout: '2s', logLevel: 'debug' } });
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--config', file], { env: { PATH: process.env.PATH ?? '', ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Nobody reads stdout: the pipe (64 KiB) fills up and stays full.
  child.stdout.pause();
  t.ok(await waitHealthy(port), 'started');
  // Each request writes a debug line: a few thousand of them are far more than the pipe holds.
  const requests = 3000;
  for (let i = 0; i < requests; i += 100) {
    const answers = await Promise.all(Array.from({ length: 100 }, () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status)));
    if (answers.some((s) => s !== 200)) t.fail('the gateway stopped answering while stdout was full');
  }
  t.pass('the gateway kept answering while nobody read its log');
  const signalled = Date.now();
  child.kill('SIGTERM');
  const code = await done;
  const took = Date.now() - signalled;
  t.equal(code, 0, 'exit 0');
  t.ok(took < 2000, `exited by the 2 s shutdown deadline (${took} ms)`);
  // What the pipe held when the process ended: fewer request lines than requests, so it really was full.
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stdout.resume();
  await new Promise((r) => child.stdout.once('end', r));
  const logged = text.split('\n').filter((l) => l.includes('"msg":"request"')).length;
  t.ok(logged < requests, `the pipe was full: ${logged} of ${requests} request lines got through`);
});

t.test('--help and --version answer and exit 0; unknown flags print the usage to stderr and exit 2', async (t) => {
  const [help, short, version, unknown, stray, auditHelp, auditBad] = await runAll([
    [['--help'], {}],
    [['-h'], {}],
    [['--version'], {}],
    [['--verbose'], {}],
    [['serve'], {}],
    [['audit', '--help'], {}],
    [['audit', 'grep', 'x'], {}],
  ]);
  t.equal(help!.code, 0);
  t.match(help!.stdout, /^Usage: idporten-bff/);
  for (const text of ['--config FILE', '--check', '--help', '--version', 'BFF_CONFIG', 'audit trace']) t.ok(help!.stdout.includes(text), `--help mentions ${text}`);
  t.equal(help!.stderr, '', 'nothing on stderr');
  t.equal(short!.code, 0);
  t.equal(short!.stdout, help!.stdout, '-h is --help');
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.equal(version!.code, 0);
  t.equal(version!.stdout, `${pkg.version}\n`, '--version prints the package version');
  t.equal(unknown!.code, 2);
  t.match(unknown!.stderr, /unknown option "--verbose"[\s\S]*Usage: idporten-bff/);
  t.equal(unknown!.stdout, '');
  t.equal(stray!.code, 2);
  t.match(stray!.stderr, /unexpected argument "serve"/);
  t.equal(auditHelp!.code, 0);
  t.match(auditHelp!.stdout, /^Usage: idporten-bff audit trace/);
  t.equal(auditBad!.code, 2);
  t.match(auditBad!.stderr, /unknown audit command "grep"/);
});

t.test('--check validates every example configuration and prints it with the secrets masked', async (t) => {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const rsaJwk = { ...(await exportJWK(rsa.privateKey)), kid: 'rsa-1', alg: 'RS256' };
  const ecJwk = { ...(await exportJWK(ec.privateKey)), kid: 'ec-1', alg: 'ES256' };
  const secrets = {
    BFF_SESSION_KEY: Buffer.alloc(32, 11).toString('base64url'),
    BFF_SESSION_KEY_PREVIOUS: Buffer.alloc(32, 12).toString('base64url'),
    DEMO_CLIENT_SECRET: 'demo-client-secret-value',
    BETA_CLIENT_SECRET: 'beta-client-secret-value',
    REDIS_PASSWORD: 'redis-password-value',
    IDPORTEN_CLIENT_SECRET: 'idporten-client-secret-value',
  };
  const env: Record<string, string> = {
    ...secrets,
    DEMO_PUBLIC_URL: 'http://localhost:3000',
    DEMO_OP_URL: 'http://127.0.0.1:4100',
    DEMO_SKATTEETATEN_URL: 'http://127.0.0.1:4101',
    DEMO_ALTINN_URL: 'http://127.0.0.1:4102',
    IDPORTEN_CLIENT_ID: 'test-client',
    IDPORTEN_JWK: JSON.stringify(rsaJwk),
    ACME_CLIENT_ID: 'acme-client',
    ACME_JWK: JSON.stringify(ecJwk),
    BETA_CLIENT_ID: 'beta-client',
    REDIS_URL: `redis://bff:${secrets.REDIS_PASSWORD}@127.0.0.1:6379/0`,
    PUBLIC_URL: 'https://mva.example.no',
    APP_DIST: new URL('./fixtures/spa/', import.meta.url).pathname,
    FRONTEND_URL: 'http://127.0.0.1:8080',
  };
  const examples = readdirSync(CONFIG_DIR).filter((f) => /\.ya?ml$|\.json$/.test(f) && f !== 'schema.json');
  t.ok(examples.length >= 3, 'the example configurations');
  const results = await runAll(examples.map((f) => [['--check', '--config', join(CONFIG_DIR, f)], env]));
  const privateParts = [rsaJwk.d, rsaJwk.p, rsaJwk.q, rsaJwk.dp, rsaJwk.dq, rsaJwk.qi, ecJwk.d].filter((v): v is string => typeof v === 'string');
  examples.forEach((name, i) => {
    const result = results[i]!;
    t.equal(result.code, 0, `${name}: valid`);
    t.match(result.stderr, new RegExp(`configuration .*${name} is valid`), `${name}: says so`);
    const printed = JSON.parse(result.stdout) as { server: unknown; session: { keys: { id: string; secret: unknown }[] }; tenants: unknown[] };
    t.ok(printed.server && printed.tenants.length > 0, `${name}: prints the effective configuration as JSON`);
    t.ok(printed.session.keys.every((k) => k.secret === '[masked]'), `${name}: session key secrets masked`);
    const output = result.stdout + result.stderr;
    for (const [envName, value] of Object.entries(secrets)) t.notOk(output.includes(value), `${name}: ${envName} does not appear`);
    for (const part of privateParts) t.notOk(output.includes(part), `${name}: no private JWK member`);
  });
  const byName = Object.fromEntries(examples.map((f, i) => [f, results[i]!.stdout]));
  const test = JSON.parse(byName['idporten-test.yaml']!) as { tenants: { idporten: { clientAuth: { privateKeyJwk: Record<string, string> } } }[] };
  const jwk = test.tenants[0]!.idporten.clientAuth.privateKeyJwk;
  t.equal(jwk.n, rsaJwk.n, 'the public part of the JWK stays, so the key can be identified');
  t.equal(jwk.kid, 'rsa-1');
  t.equal(jwk.d, '[masked]');
  const multi = JSON.parse(byName['multi-tenant.yaml']!) as { session: { store: { url: string } }; tenants: { idporten: { clientAuth: { secret?: string } } }[] };
  t.equal(multi.session.store.url, 'redis://bff:[masked]@127.0.0.1:6379/0', 'the Redis password is masked, the rest of the URL stays');
  t.equal(multi.tenants[1]!.idporten.clientAuth.secret, '[masked]');
});

t.test('--check reports shape errors and the rules across fields in one run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-check-all-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    [
      'server:',
      '  prot: 3000                    # a typo: shape',
      '  trustProxy: true              # refused: a rule',
      'session:',
      '  absoluteLifetime: 9h          # over 8h: a rule',
      '  keys: [{ id: k1, secret: "${BFF_SESSION_KEY}" }]',
      'tenants:',
      '  - id: demo',
      '    publicUrl: http://mva.example.no   # plain http off this machine: a rule',
      '    idporten: { issuer: "http://127.0.0.1:4100", clientId: demo-spa, clientAuth: { method: client_secret_post, secret: x } }',
      '    routes: [{ path: /mva, upstream: "http://127.0.0.1:4101/x", tokn: idporten }]   # a typo: shape',
      '',
    ].join('\n'),
  );
  const result = await run(['--check', '--config', file], ENV);
  t.equal(result.code, 2);
  for (const path of ['server.prot', 'tenants[0].routes[0].tokn', 'server.trustProxy', 'session.absoluteLifetime', 'tenants[0].publicUrl']) {
    t.match(result.stderr, new RegExp(`^${path.replace(/[.[\]]/g, '\\$&')}: `, 'm'), `${path} is reported in the same run`);
  }
  t.equal(result.stdout, '');
});

t.test('--check exits 2 and names the problem on every broken configuration, and on none', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-check-'));
  const inline: Record<string, [unknown, RegExp]> = {
    'missing-client-id': [(() => { const c = base(); delete (c.tenants[0]!.idporten as Record<string, unknown>).clientId; return c; })(), /tenants\[0\]\.idporten/],
    'unknown-auth-method': [base({}, { clientAuth: { method: 'client_secret_jwt', secret: 'x' } }), /tenants\[0\]\.idporten\.clientAuth\.method/],
    'bad-duration': [base({}, {}, { idleTimeout: 'ten minutes' }), /session\.idleTimeout/],
    'route-without-upstream': [base({ routes: [{ path: '/mva/validering', token: 'idporten' }] }), /tenants\[0\]\.routes\[0\]/],
    'short-session-key': [{ ...base(), session: { keys: [{ id: 'k1', secret: 'c2hvcnQ' }] } }, /session\.keys\[0\]\.secret/],
    'no-tenants': [{ session: base().session, tenants: [] }, /tenants/],
  };
  const files: [string, RegExp][] = [
    [join(FIXTURES, 'lifetime-9h.yaml'), /session\.absoluteLifetime/],
    [join(FIXTURES, 'missing-env.yaml'), /IDPORTEN_JWK_NOT_SET is not set/],
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
  const results = await runAll([...files.map(([file]): [string[], Record<string, string>] => [['--check', '--config', file], ENV]), [['--check'], {}]]);
  files.forEach(([file, expected], i) => {
    const result = results[i]!;
    t.equal(result.code, 2, `${file}: exit 2`);
    t.match(result.stderr, /invalid configuration/, `${file}: says it is invalid`);
    t.match(result.stderr, expected, `${file}: names the problem`);
    t.equal(result.stdout, '', `${file}: prints no configuration`);
    t.notOk((result.stdout + result.stderr).includes(ENV.DEMO_CLIENT_SECRET), `${file}: no secret in the output`);
    t.notMatch(result.stderr, /\n\s+at .*\.(ts|js):\d+/, `${file}: no stack trace`);
  });
  const none = results[files.length]!;
  t.equal(none.code, 2, 'no configuration at all: exit 2');
  t.match(none.stderr, /--config FILE or set BFF_CONFIG/);
});
