/**
 * `npm run demo -- --app-static DIR` and `-- --app-upstream URL` (gateway-contract "Adoption": the demo stack
 * serving your own app), and the look-alikes' settings printed as a gateway configuration you can copy. The demo
 * runs as the process `npm run demo` starts (demo/main.ts through tsx), on free ports.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { CONFIG_BEGIN, CONFIG_END, parseDemoArgs } from '../demo/args.js';
import { freePort } from '../demo/free-port.js';
import { TEST_USERS } from '../demo/test-users.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { Browser, loginAtLookalike } from './helpers/browser.js';
import { describeRun, spawnCli } from './helpers/cli.js';
import { SESSION_KEY, startGateway } from './helpers/stack.js';

const DEMO_MAIN = new URL('../demo/main.ts', import.meta.url).pathname;
const user = TEST_USERS[0]!;

const work = mkdtempSync(join(tmpdir(), 'bff-demo-app-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
// The user's own built app, in a folder of their project.
const project = join(work, 'my-project');
mkdirSync(join(project, 'dist', 'assets'), { recursive: true });
writeFileSync(join(project, 'dist', 'index.html'), '<!doctype html><title>My app</title><script type="module" src="/assets/app.js"></script><h1>my own app</h1>');
writeFileSync(join(project, 'dist', 'assets', 'app.js'), 'console.log("my own app");\n');

interface DemoRun {
  stdout: string;
  stderr: string;
  code: number | null;
}

async function demoPorts() {
  const names = ['DEMO_PORT', 'DEMO_OP_PORT', 'DEMO_SKATTEETATEN_PORT', 'DEMO_ALTINN_PORT', 'DEMO_CUSTOMER_PORT', 'DEMO_SELF_SERVICE_PORT', 'DEMO_MASKINPORTEN_PORT'] as const;
  const ports: Record<string, string> = {};
  for (const name of names) ports[name] = String(await freePort());
  return ports as Record<(typeof names)[number], string>;
}

/** Starts the demo with `args` from the user's project folder (npm's INIT_CWD); resolves once it is up, or has exited. */
async function startDemo(t: Test, args: string[], env: Record<string, string> = {}): Promise<DemoRun & { ports: Awaited<ReturnType<typeof demoPorts>> }> {
  const ports = await demoPorts();
  const child = spawn(process.execPath, ['--import', 'tsx', DEMO_MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', INIT_CWD: project, ...ports, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: DemoRun = { stdout: '', stderr: '', code: null };
  child.stdout.on('data', (d: Buffer) => (run.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (run.stderr += d.toString()));
  const exited = once(child, 'exit').then(([code]) => (run.code = code as number | null));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const deadline = Date.now() + 60_000;
  while (!run.stdout.includes('Press Ctrl+C to stop.') && run.code === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (run.code !== null) await new Promise((r) => setTimeout(r, 50)); // the last output
  return Object.assign(run, { ports });
}

/** The configuration the demo printed, parsed. */
function printedConfig(stdout: string): Record<string, any> {
  const start = stdout.indexOf(CONFIG_BEGIN);
  const end = stdout.indexOf(CONFIG_END);
  if (start === -1 || end === -1) throw new Error(`no configuration printed:\n${stdout}`);
  return parse(stdout.slice(start + CONFIG_BEGIN.length, end)) as Record<string, any>;
}

t.test('--app-static DIR: the demo gateway serves your build, logins go through the look-alike, and the configuration is printed', async (t) => {
  const demo = await startDemo(t, ['--app-static', 'dist'], { DEMO_CLIENT_SECRET: 'a-secret-kept-across-runs-0123456789abcdef' });
  t.equal(demo.code, null, `the demo runs\n${demo.stderr}`);
  const publicUrl = `http://localhost:${demo.ports.DEMO_PORT}`;
  t.match(demo.stdout, `open:              ${publicUrl}/`, 'it prints the URL to open');
  t.match(demo.stdout, `your app from ${join(project, 'dist')}`, 'DIR is taken from the folder the command was run in');

  const browser = new Browser();
  const page = await browser.navigate(`${publicUrl}/`);
  t.equal(page.status, 200);
  t.match(page.body, /<h1>my own app<\/h1>/, 'your index.html at /');
  t.match((await browser.navigate(`${publicUrl}/customers/42`)).body, /my own app/, 'and for a client-side route');
  t.equal((await browser.fetch(`${publicUrl}/assets/app.js`)).body, 'console.log("my own app");\n', 'your assets');
  t.match((await browser.fetch(`${publicUrl}/auth/client.js`)).body, /X-CSRF/, 'the browser helper beside it');

  await loginAtLookalike(browser, `${publicUrl}/auth/login?returnTo=/start`, { pid: user.pid });
  const session = await browser.fetch(`${publicUrl}/auth/session`);
  t.equal(session.status, 200, 'a login through the ID-porten look-alike makes a session');
  t.equal((JSON.parse(session.body) as { user: { pid: string } }).user.pid, user.pid);
  const validated = await browser.fetch(`${publicUrl}/mva/validering`, { method: 'POST', headers: { 'x-csrf': '1', 'content-type': 'application/xml' }, body: '<mvaMeldingDto/>' });
  t.equal(validated.status, 200, 'your app can call the Skatteetaten look-alike through the gateway');

  const config = printedConfig(demo.stdout);
  const tenant = config.tenants[0];
  t.equal(tenant.idporten.issuer, `http://127.0.0.1:${demo.ports.DEMO_OP_PORT}`, 'the printed issuer is the look-alike');
  t.equal(tenant.idporten.clientId, 'demo-spa', 'its client id');
  t.same(tenant.idporten.clientAuth, { method: 'client_secret_post', secret: 'a-secret-kept-across-runs-0123456789abcdef' }, 'and its secret, written out');
  t.same(tenant.app, { static: join(project, 'dist') }, 'your app, by its absolute path');
  t.same(tenant.routes.map((r: { path: string }) => r.path), ['/mva/validering', '/mva/innsending'], 'the API routes to the look-alikes');
  t.equal(tenant.routes[0].upstream, `http://127.0.0.1:${demo.ports.DEMO_SKATTEETATEN_PORT}/api/mva/grensesnittstoette/mva-melding/valider`);
  t.same(config.session.keys, [{ id: 'demo-1', secret: '${BFF_SESSION_KEY}' }], 'the session key from the environment');
  t.match(demo.stdout, /export BFF_SESSION_KEY=[A-Za-z0-9_-]{43}\n/, 'with one to use');
});

t.test('--no-gateway: the printed configuration runs a gateway of your own against the look-alikes', async (t) => {
  const demo = await startDemo(t, ['--no-gateway', '--app-static=dist']);
  t.equal(demo.code, null, `the look-alikes run\n${demo.stderr}`);
  t.notMatch(demo.stdout, /open: /, 'no gateway to open');
  const config = normaliseConfig(printedConfig(demo.stdout), { BFF_SESSION_KEY: SESSION_KEY });
  const publicUrl = `http://localhost:${demo.ports.DEMO_PORT}`;
  t.equal(config.tenants[0]!.publicUrl, publicUrl);
  // Your own gateway, on the port the look-alike's client registration names.
  await startGateway(t, config);
  const browser = new Browser();
  await loginAtLookalike(browser, `${publicUrl}/auth/login`, { pid: user.pid });
  t.equal((await browser.fetch(`${publicUrl}/auth/session`)).status, 200, 'a login works with the copied client id and secret');
  const submitted = await browser.fetch(`${publicUrl}/mva/validering`, { method: 'POST', headers: { 'x-csrf': '1', 'content-type': 'application/xml' }, body: '<mvaMeldingDto/>' });
  t.equal(submitted.status, 200, 'and the copied routes reach the look-alike, which accepts the bearer');
  t.match((await browser.navigate(`${publicUrl}/`)).body, /my own app/, 'the copied app section serves your app');
});

t.test('--app-upstream URL: pages come from your dev server', async (t) => {
  const dev = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<h1>dev server ${req.url}</h1>`));
  dev.listen(0, '127.0.0.1');
  await once(dev, 'listening');
  t.teardown(() => new Promise((r) => dev.close(r)));
  const url = `http://127.0.0.1:${(dev.address() as AddressInfo).port}`;
  const demo = await startDemo(t, ['--app-upstream', url]);
  t.equal(demo.code, null, `the demo runs\n${demo.stderr}`);
  const publicUrl = `http://localhost:${demo.ports.DEMO_PORT}`;
  t.match(demo.stdout, `your app at ${url}`);
  const page = await new Browser().navigate(`${publicUrl}/some/page`);
  t.match(page.body, '<h1>dev server /some/page</h1>', 'the gateway passes the page on from the dev server');
  t.equal(printedConfig(demo.stdout).tenants[0].app.upstream, url, 'the printed configuration names it');
});

t.test('every bad input is a clear error with exit status 2, and nothing starts', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--app-static', join(work, 'no-such-dir')], {}, /^demo: --app-static: cannot read .*no-such-dir \(ENOENT\)$/m],
    [['--app-static', join(project, 'dist', 'index.html')], {}, /^demo: --app-static: .*index\.html is not a directory$/m],
    [['--app-upstream', 'ftp://example.no'], {}, /^demo: --app-upstream: must be an http or https URL$/m],
    [['--app-upstream', 'localhost:5173'], {}, /^demo: --app-upstream: /m],
    [['--app-static'], {}, /^demo: --app-static needs a value: --app-static DIR$/m],
    [['--app-static', 'dist', '--app-upstream', 'http://localhost:5173'], {}, /^demo: --app-upstream cannot be combined with --app-static/m],
    [['--app-stati', 'dist'], {}, /^demo: unknown option "--app-stati"$/m],
    [['dist'], {}, /^demo: unexpected argument "dist"$/m],
    [[], { DEMO_PORT: 'abc' }, /^demo: DEMO_PORT must be a port number \(1-65535\), not "abc"$/m],
  ];
  const runs = await Promise.all(cases.map(([args, env]) => startDemo(t, args, env)));
  cases.forEach(([args, , expected], i) => {
    const run = runs[i]!;
    t.equal(run.code, 2, `${args.join(' ')}: exit 2`);
    t.match(run.stderr, expected, `${args.join(' ')}: says what is wrong`);
    t.notMatch(run.stderr, /\n\s+at .*\.(ts|js):\d+/, `${args.join(' ')}: no stack trace`);
    t.notMatch(run.stdout, /is running/, `${args.join(' ')}: nothing started`);
  });
  const help = await startDemo(t, ['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--app-static DIR/);
  t.match(help.stdout, /--app-upstream URL/);
});

t.test('the options as parsed: relative folders from the directory the command was run in', async (t) => {
  t.same(parseDemoArgs(['--app-static', 'web/dist'], '/home/me/project'), { kind: 'run', app: { static: '/home/me/project/web/dist' }, gateway: true });
  t.same(parseDemoArgs(['--app-upstream=http://localhost:5173', '--no-gateway'], '/x'), { kind: 'run', app: { upstream: 'http://localhost:5173' }, gateway: false });
  t.same(parseDemoArgs([], '/x'), { kind: 'run', app: undefined, gateway: true });
  t.equal(parseDemoArgs(['--app-upstream', '--no-gateway'], '/x').kind, 'usage-error', 'an option is no value');
});

t.test('the demo prints the one command that onboards a customer through the self-service look-alike, and it works', async (t) => {
  const demo = await startDemo(t, []);
  t.equal(demo.code, null, `the demo runs\n${demo.stderr}`);
  const apply = /1\. node --import tsx src\/main\.ts (integrations apply --config \S+)/.exec(demo.stdout);
  t.ok(apply, `the onboarding command is printed\n${demo.stdout}`);
  const args = apply![1]!.split(' ');
  const onboarded = await spawnCli(args).done;
  t.equal(onboarded.code, 0, describeRun(onboarded));
  t.match(onboarded.stdout, /create an integration \(api_klient, client_orgno 123456789\)/);
  const check = await spawnCli(['integrations', 'check', ...args.slice(2)]).done;
  t.equal(check.code, 0, `check after apply: nothing differs (${describeRun(check)})`);
  t.match(demo.stdout, new RegExp(`open http://localhost:${demo.ports.DEMO_CUSTOMER_PORT}/auth/login`), 'and where the customer logs in');
});
