/**
 * The package as a library user gets it (gateway-contract "Adoption": `npm pack` holds what a library user needs —
 * dist/, client/, the schema, README, licence — and builds it; `idporten-bff/client` is importable from a bundler).
 *
 * A fresh copy of the working tree (no dist/, a stale file planted where dist/ goes) is packed with `npm pack`,
 * which builds it (prepack). The tarball's file list is checked, and the tarball is installed offline into a new
 * project by unpacking it into that project's node_modules beside links to this checkout's dependencies (no
 * registry is asked). There, plain Node imports both entry points from the built JavaScript and serves a request
 * with the plugin, the package's bin answers, TypeScript type-checks a consumer of both entry points through the
 * package's `exports` (NodeNext and bundler resolution), and esbuild — the bundler Vite uses for dependencies;
 * here the copy tsx brings along — bundles `idporten-bff/client` for the browser.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODULES = join(ROOT, 'node_modules');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; private?: boolean };

const work = mkdtempSync(join(tmpdir(), 'bff-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/** The working tree as a fresh clone has it: the files git knows (committed or not, minus the ignored ones). */
async function freshCopy(): Promise<string> {
  const dir = join(work, 'clone');
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  for (const file of stdout.split('\0').filter(Boolean)) {
    if (!existsSync(join(ROOT, file))) continue; // deleted in the working tree
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(ROOT, file), join(dir, file));
  }
  symlinkSync(MODULES, join(dir, 'node_modules'));
  return dir;
}

let tarball = '';
let files: string[] = [];

t.test('npm pack builds the package and holds exactly what a library user needs', async (t) => {
  t.notOk(pkg.private, 'the package is not private');
  const clone = await freshCopy();
  t.notOk(existsSync(join(clone, 'dist', 'plugin.js')), 'the copy starts without a build');
  // A file an earlier build left behind (a module since removed) does not ship.
  mkdirSync(join(clone, 'dist'), { recursive: true });
  writeFileSync(join(clone, 'dist', 'stale-module.js'), 'export {};\n');
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: clone, maxBuffer: 16 * 1024 * 1024 });
  const [result] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  tarball = join(work, result!.filename);
  files = result!.files.map((f) => f.path).sort();

  const outside = files.filter((f) => !/^dist\/.+\.(js|d\.ts)$/.test(f) && !['client/bff.js', 'client/bff.d.ts', 'config/schema.json', 'README.md', 'LICENSE', 'package.json'].includes(f));
  t.same(outside, [], 'nothing but dist/ (JavaScript and types), the browser helper, the schema, README, licence and package.json');
  for (const needed of ['dist/plugin.js', 'dist/plugin.d.ts', 'dist/main.js', 'client/bff.js', 'client/bff.d.ts', 'config/schema.json', 'README.md', 'LICENSE', 'package.json']) {
    t.ok(files.includes(needed), `${needed} is in the package`);
  }
  t.notOk(files.includes('dist/stale-module.js'), 'the build starts from an empty dist/');
  t.notOk(files.some((f) => /^(src|test|bench|demo|deploy|examples|docs|scripts)\//.test(f)), 'no sources, tests, benchmarks, demo, deployment or docs');
  t.notOk(files.some((f) => f.endsWith('.map')), 'no source maps pointing at sources that are not shipped');
  const built = readdirSync(join(clone, 'dist'), { recursive: true }).filter((f) => String(f).endsWith('.js')).length;
  t.equal(files.filter((f) => f.startsWith('dist/') && f.endsWith('.js')).length, built, 'every module the build made, and no other');
  t.ok(result!.size < 1024 * 1024, `the tarball is small (${result!.size} bytes)`);
  t.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License/, 'the licence is MIT, as package.json says');
});

t.test('installed from the tarball into a new project: both entry points, the types, the bin and a bundler', async (t) => {
  if (!tarball) return t.fail('no tarball');
  const project = join(work, 'project');
  const installed = join(project, 'node_modules', pkg.name);
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  // Offline: the package's dependencies (and typescript, esbuild) are this checkout's, linked beside it.
  for (const entry of readdirSync(MODULES)) {
    if (entry !== pkg.name && !entry.startsWith('.')) symlinkSync(join(MODULES, entry), join(project, 'node_modules', entry));
  }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));

  await t.test('plain Node imports the plugin and the client from the built JavaScript and serves a request', async (t) => {
    writeFileSync(
      join(project, 'server.mjs'),
      `import Fastify from 'fastify';
import idportenBff, { validated } from 'idporten-bff';
import bff, { bff as named } from 'idporten-bff/client';
const app = Fastify();
await app.register(idportenBff, { config: {
  session: { keys: [{ id: 'k1', secret: '${Buffer.alloc(32, 5).toString('base64url')}' }] },
  tenants: [{ id: 't', publicUrl: 'http://localhost', idporten: { issuer: 'http://127.0.0.1:9', clientId: 'c', clientAuth: { method: 'client_secret_post', secret: 's' } }, routes: [] }],
} });
const health = await app.inject({ url: '/healthz', headers: { host: 'localhost' } });
const client = await app.inject({ url: '/auth/client.js', headers: { host: 'localhost' } });
await app.close();
console.log(JSON.stringify({ health: health.statusCode, client: client.statusCode, clientType: client.headers['content-type'], validated: typeof validated, functions: Object.keys(bff).sort(), same: bff === named }));
`,
    );
    const { stdout } = await run(process.execPath, ['server.mjs'], { cwd: project });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    t.equal(out.health, 200, 'the plugin from dist/ answers /healthz');
    t.equal(out.client, 200, 'and serves /auth/client.js from the package\'s client/');
    t.match(out.clientType, /^text\/javascript/);
    t.equal(out.validated, 'function', 'named exports are there');
    t.same(out.functions, ['configure', 'fetch', 'login', 'logout', 'onExpiring', 'refresh', 'session'], 'the browser helper\'s functions');
    t.equal(out.same, true, 'default and named export are one object');
  });

  await t.test('the bin answers --version', async (t) => {
    const { stdout } = await run(process.execPath, [join(installed, 'dist', 'main.js'), '--version'], { cwd: project });
    t.equal(stdout.trim(), pkg.version);
    t.match(readFileSync(join(installed, 'dist', 'main.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'with a shebang for npm\'s bin link');
  });

  await t.test('TypeScript finds the types of both entry points through exports (NodeNext and bundler resolution)', async (t) => {
    writeFileSync(
      join(project, 'server.ts'),
      `import Fastify from 'fastify';
import idportenBff, { type IdportenBffOptions } from 'idporten-bff';
const options: IdportenBffOptions = { config: './gateway.yaml' };
const app = Fastify();
await app.register(idportenBff, options);
app.get('/me', async (request) => (await request.bff.user())?.sub ?? null);
`,
    );
    writeFileSync(
      join(project, 'page.ts'),
      `import bff, { type SessionView, type Problem } from 'idporten-bff/client';
const view: SessionView | null = await bff.session();
const seconds: number | undefined = view?.accessToken.expiresIn;
const stop: () => void = bff.onExpiring(60, ({ secondsLeft, reason }) => console.log(secondsLeft, reason, seconds));
bff.configure({ onLoginRequired: (problem: Problem) => console.log(problem.loginUrl) });
const res: Response = await bff.fetch('/mva/validering', { method: 'POST', body: '<xml/>' });
stop();
console.log(res.status);
`,
    );
    const base = { strict: true, target: 'ES2022', skipLibCheck: true, noEmit: true, types: ['node'], lib: ['ES2023', 'DOM'] };
    writeFileSync(join(project, 'tsconfig.node.json'), JSON.stringify({ compilerOptions: { ...base, module: 'NodeNext', moduleResolution: 'NodeNext' }, files: ['server.ts', 'page.ts'] }));
    writeFileSync(join(project, 'tsconfig.bundler.json'), JSON.stringify({ compilerOptions: { ...base, module: 'ESNext', moduleResolution: 'bundler' }, files: ['page.ts'] }));
    const tsc = join(MODULES, 'typescript', 'bin', 'tsc');
    for (const config of ['tsconfig.node.json', 'tsconfig.bundler.json']) {
      const result = await run(process.execPath, [tsc, '-p', config], { cwd: project }).then(
        () => ({ ok: true, output: '' }),
        (err: { stdout: string }) => ({ ok: false, output: err.stdout }),
      );
      t.ok(result.ok, `${config}: the consumer type-checks`, { output: result.output });
    }
  });

  await t.test('a bundler bundles idporten-bff/client for the browser', async (t) => {
    writeFileSync(join(project, 'main.js'), `import { bff } from 'idporten-bff/client';\nbff.configure({});\ndocument.body.dataset.session = String(await bff.session());\n`);
    const esbuild = (await import(join(MODULES, 'esbuild', 'lib', 'main.js'))) as typeof import('esbuild');
    const result = await esbuild.build({
      absWorkingDir: project,
      entryPoints: ['main.js'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      // Vite's conditions when it bundles for the browser.
      conditions: ['import', 'module', 'browser', 'default', 'production'],
      write: false,
      logLevel: 'silent',
      metafile: true,
    });
    t.same(result.errors, [], 'no errors');
    const inputs = Object.keys(result.metafile.inputs);
    t.same(inputs.filter((i) => i.includes(pkg.name)), [`node_modules/${pkg.name}/client/bff.js`], 'the bundle holds the browser helper and nothing else of the package');
    t.match(result.outputFiles[0]!.text, /X-CSRF/, 'its code is in the bundle');
  });
});
