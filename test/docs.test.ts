/**
 * The documentation says what the code does, where a reader cannot check it by running something: when the gateway
 * is ready, which tests prove the threat model's controls (and which are still to do), and what `npm run demo` does.
 *
 * Finding "docs disagree": the README's API table said /readyz is ready with at least half of the tenants, its
 * start-up section "when all are loaded", openapi.yaml and deployment.yaml "every tenant's provider metadata"; the
 * threat model recorded a passing test as a `todo`, and called shipped features (the login rate limit, session
 * control) unimplemented; the README said `npm run demo` builds the project, which runs from source through tsx.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const TESTS = join(ROOT, 'test');

function filesUnder(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && pattern.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Every text a reader (or an operator reading a manifest) takes as documentation. */
const DOCS = [
  join(ROOT, 'README.md'),
  join(ROOT, 'SECURITY.md'),
  join(ROOT, 'openapi.yaml'),
  ...filesUnder(join(ROOT, 'docs'), /\.md$/),
  ...filesUnder(join(ROOT, 'deploy'), /\.ya?ml$/),
  ...filesUnder(join(ROOT, 'config'), /\.yaml$/),
  join(ROOT, 'src/http/routes/health.ts'),
].map((path) => ({ file: relative(ROOT, path), text: readFileSync(path, 'utf8').replace(/\s+/g, ' ') }));

t.test('every description of /readyz says what readiness() does: the store answers and at least half of the tenants are loaded', async (t) => {
  // src/http/routes/health.ts: store === 'ready' && readyTenants > 0 && readyTenants * 2 >= tenants.
  const health = readFileSync(join(ROOT, 'src/http/routes/health.ts'), 'utf8');
  t.match(health, /readyTenants > 0 && readyTenants \* 2 >= core\.tenants\.all\.length/, 'the rule the docs describe');
  let described = 0;
  for (const { file, text } of DOCS) {
    // A sentence saying when readiness turns 200, about tenants or what is loaded, states the rule.
    for (const [sentence] of text.matchAll(/[^.|#]*\b(ready when|ready once|turns 200|200 when|200 once|readiness: 200)\b[^.|]*/gi)) {
      if (!/tenant|metadata|loaded/i.test(sentence)) continue;
      described++;
      t.match(sentence, /at least half of the tenants/, `${file}: "${sentence.trim()}"`);
      t.notMatch(sentence, /\b(every|all)\b (tenant|are loaded)/, `${file}: not every tenant`);
    }
  }
  t.ok(described >= 5, `${described} statements found (README twice, openapi.yaml, deployment.yaml, health.ts)`);
});

/** The `t.test` titles of a test file, as written in its source (template literals with their `${…}`), and its cases' names. */
function testTitles(source: string): { title: string; todo: boolean }[] {
  const found: { title: string; todo: boolean }[] = [];
  // Table-driven tests (`for (const c of cases) t.test(c.name, …)`) are titled by their cases' names.
  for (const match of source.matchAll(/\bname: '((?:[^'\\]|\\.)*)'/g)) found.push({ title: match[1]!.replace(/\\(.)/g, '$1'), todo: false });
  for (const match of source.matchAll(/\bt\.test\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|`((?:[^`\\]|\\.)*)`)\s*(,\s*\{[^}]*\})?/g)) {
    const title = (match[1] ?? match[2] ?? match[3] ?? '').replace(/\\(.)/g, '$1');
    found.push({ title, todo: /\btodo\b/.test(match[4] ?? '') });
  }
  return found;
}

/**
 * The tests a passage of docs/threat-model.md cites: "`file.test.ts` → `title`; `title`; `other.test.ts` → …", titles
 * with a backtick or `${…}` in double backticks; backticked words inside parentheses are remarks, not titles.
 */
function citations(passage: string): { file: string; title: string }[] {
  const cited: { file: string; title: string }[] = [];
  let file: string | undefined;
  let depth = 0;
  for (const match of passage.matchAll(/``\s(.+?)\s``|`([^`]+)`|(\()|(\))/g)) {
    if (match[3]) depth++;
    else if (match[4]) depth = Math.max(0, depth - 1);
    else if (depth === 0) {
      const span = (match[1] ?? match[2])!;
      if (/^[\w-]+\.test\.ts$/.test(span)) file = span;
      else if (file && passage.slice(0, match.index).trimEnd().match(/(→|;)\s*$/)) cited.push({ file, title: span });
    }
  }
  return cited;
}

t.test('every test docs/threat-model.md cites exists under that name, and one it calls a todo is one', async (t) => {
  const model = readFileSync(join(ROOT, 'docs/threat-model.md'), 'utf8');
  const rows = model.split('\n').filter((line) => line.startsWith('| ') && line.includes('.test.ts'));
  let cited = 0;
  for (const row of rows) {
    const id = /^\| (\w+) \|/.exec(row)?.[1] ?? row.slice(0, 20);
    for (const { file, title } of citations(row)) {
      cited++;
      let source: string;
      try {
        source = readFileSync(join(TESTS, file), 'utf8');
      } catch {
        t.fail(`${id}: ${file} does not exist`);
        continue;
      }
      const test = testTitles(source).find((candidate) => candidate.title === title);
      if (!t.ok(test, `${id}: ${file} → "${title}"`) || !test) continue;
      if (/\btodo\b/.test(row)) t.ok(test.todo, `${id} calls "${title}" a todo: it must be declared as one`);
      else t.notOk(test.todo, `${id} cites "${title}" as proof: it must not be a todo`);
    }
  }
  t.ok(cited > 40, `${cited} citations checked`);
});

t.test('the threat model lists no shipped control as a gap: the login rate limit and session control have their tests', async (t) => {
  const model = readFileSync(join(ROOT, 'docs/threat-model.md'), 'utf8');
  const gaps = model.slice(model.indexOf('## Gaps'));
  for (const [feature, test] of [
    ['rate limit', 'rate-limit.test.ts'],
    ['/auth/sessions', 'session-control.test.ts'],
  ] as const) {
    const row = gaps.split('\n').find((line) => line.includes(feature));
    if (row) t.notMatch(row, /not implemented|no route enforces|planned/, `the gap row naming ${feature} says it is not built, yet ${test} tests it`);
    t.match(model, new RegExp(`\`${test.replace('.', '\\.')}\` →`), `a control cites ${test}`);
  }
});

t.test('`npm run demo` runs from the TypeScript sources: no doc says it builds anything', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts.demo, /--import tsx/, 'the script runs through tsx');
  t.notMatch(pkg.scripts.demo, /build|tsc/);
  for (const { file, text } of DOCS) {
    // "`npm run demo` builds the project …", up to the end of that clause.
    for (const match of text.matchAll(/`npm run demo[^`]*`[^.;|]*/g)) t.notMatch(match[0], /\b(builds|compiles)\b/i, `${file}: "${match[0].slice(0, 120)}"`);
  }
});
