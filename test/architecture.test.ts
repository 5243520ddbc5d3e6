/**
 * The layering docs/architecture.md describes, checked on the source: which folder may import which,
 * no import cycles, and one owner for ending sessions and revoking tokens.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const files = sourceFiles(SRC);
const rel = (path: string) => relative(SRC, path).replaceAll('\\', '/');
const code = new Map(files.map((f) => [rel(f), readFileSync(f, 'utf8')]));

/** Every module specifier a file imports or re-exports (type-only imports included: they couple too). */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'";]*?from\s+'([^']+)'/gm)) found.push(m[1]!);
  for (const m of text.matchAll(/^\s*import\s+'([^']+)'/gm)) found.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) found.push(m[1]!);
  return found;
}

/** Local imports resolved to src-relative paths; packages as they are. */
function importsOf(file: string): { local: string[]; packages: string[] } {
  const local: string[] = [];
  const packages: string[] = [];
  for (const spec of specifiers(code.get(file)!)) {
    if (spec.startsWith('.')) local.push(rel(resolve(SRC, dirname(file), spec.replace(/\.js$/, '.ts'))));
    else packages.push(spec);
  }
  return { local, packages };
}

const graph = new Map([...code.keys()].map((f) => [f, importsOf(f)]));
const layer = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : file.replace(/\.ts$/, ''));

t.test('every local import resolves to a source file', async (t) => {
  for (const [file, { local }] of graph) for (const target of local) t.ok(code.has(target), `${file} → ${target}`);
});

t.test('no import cycles in src/', async (t) => {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
      return;
    }
    state.set(file, 'visiting');
    for (const next of graph.get(file)?.local ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  t.same(cycles, [], 'cycles found');
});

/** What each layer may import: data flows one way, http → tokens → idporten/session → config. */
const ALLOWED: Record<string, string[]> = {
  config: ['config'],
  audit: ['audit', 'config'],
  net: ['net'],
  errors: [],
  idporten: ['idporten', 'config', 'net'],
  session: ['session', 'config', 'audit', 'errors'],
  tenant: ['tenant', 'config', 'idporten', 'session'],
  tokens: ['tokens', 'config', 'audit', 'errors', 'idporten', 'session', 'tenant', 'net'],
  proxy: ['proxy', 'config', 'audit', 'errors', 'http', 'net'],
  digdir: ['digdir', 'config', 'session'],
};

t.test('layers import only the layers below them', async (t) => {
  for (const [file, { local }] of graph) {
    const allowed = ALLOWED[layer(file)];
    if (!allowed) continue; // http/, plugin.ts, app.ts, main.ts: the edge and the composition root
    for (const target of local) t.ok(allowed.includes(layer(target)), `${file} → ${target} goes down the layers`);
  }
});

t.test('the ID-porten, session and token layers know nothing of Fastify or HTTP routing', async (t) => {
  for (const [file, { packages }] of graph) {
    if (!['idporten', 'session', 'tokens', 'tenant', 'audit', 'config', 'errors'].includes(layer(file))) continue;
    const http = packages.filter((p) => p === 'fastify' || p.startsWith('@fastify/'));
    t.same(http, [], `${file} imports no Fastify`);
  }
});

t.test('only the token lifecycle ends sessions and revokes tokens', async (t) => {
  for (const [file, text] of code) {
    if (file.startsWith('tokens/') || file.startsWith('session/') || file.startsWith('idporten/')) continue;
    t.notMatch(text, /sessions\.destroy\(|store\.delete\(/, `${file} destroys no session`);
    t.notMatch(text, /\.revoke\(/, `${file} revokes no token`);
  }
  const destroyers = [...code].filter(([file, text]) => file.startsWith('tokens/') && /sessions\.destroy\(/.test(text)).map(([file]) => file);
  t.same(destroyers, ['tokens/lifecycle.ts'], 'within tokens/, only the lifecycle destroys sessions');
});

t.test('the token kinds a route may name in the config are exactly the registered kinds', async (t) => {
  const { TOKEN_KINDS: schemaKinds } = await import('../src/config/schema.js');
  const { TOKEN_KINDS: registered } = await import('../src/tokens/kinds/index.js');
  t.same([...schemaKinds].sort(), [...registered.keys()].sort());
});
