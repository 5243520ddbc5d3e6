/**
 * Coverage of src/ from the V8 coverage tap records while the suite runs (.tap/coverage), per folder of src/,
 * checked against the thresholds below. `npm test` runs it after the suite; `npm run coverage` runs it alone on
 * the last run's data (also deploy/docker/healthcheck.mjs, the one plain JavaScript file the tests run). Writes coverage/index.html (per file and line) and coverage/coverage-summary.json.
 *
 * tsx compiles each file with a source map that names the .ts file but leaves out its text (sourcesContent is
 * [null]); c8 then maps every range onto an empty file and reports 100 %. Dropping the empty sourcesContent makes
 * it read the .ts file from disk, so the figures are those of the code as written.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Report } from 'c8';

/**
 * Minimum per folder, set a little under what the whole suite measured (README, "Testing evidence"), so that a
 * change which leaves code untested fails; raised as tests are added, never met by excluding files. A file no
 * process loads counts as uncovered, including the few that hold only types (tsx erases them, so nothing runs).
 */
const THRESHOLDS: Record<string, Figures> = {
  'deploy/docker/healthcheck.mjs': { lines: 99, branches: 79, functions: 99 },
  'src (all)': { lines: 93, branches: 88, functions: 95 },
  'src (top level)': { lines: 96, branches: 86, functions: 94 },
  'src/audit': { lines: 94, branches: 91, functions: 94 },
  'src/cli': { lines: 95, branches: 82, functions: 95 },
  'src/config': { lines: 88, branches: 89, functions: 97 },
  'src/digdir': { lines: 93, branches: 78, functions: 96 },
  'src/http': { lines: 96, branches: 88, functions: 95 },
  'src/idporten': { lines: 96, branches: 86, functions: 95 },
  'src/net': { lines: 91, branches: 82, functions: 84 },
  'src/proxy': { lines: 98, branches: 91, functions: 97 },
  'src/session': { lines: 93, branches: 88, functions: 92 },
  'src/tenant': { lines: 97, branches: 88, functions: 97 },
  'src/tokens': { lines: 93, branches: 85, functions: 95 },
};

interface Figures {
  lines: number;
  branches: number;
  functions: number;
}

interface Totals {
  lines: { total: number; covered: number };
  branches: { total: number; covered: number };
  functions: { total: number; covered: number };
}

const FOLDERS = ['idporten', 'tokens', 'session', 'proxy', 'http', 'config', 'tenant', 'audit', 'cli', 'net', 'digdir'];
const source = process.argv[2] ?? '.tap/coverage';
const reportDir = 'coverage';

const fixed = mkdtempSync(join(tmpdir(), 'bff-coverage-'));
try {
  let files = 0;
  for (const name of readdirSync(source)) {
    if (!name.endsWith('.json')) continue;
    const report = JSON.parse(readFileSync(join(source, name), 'utf8')) as { 'source-map-cache'?: Record<string, { data?: { sourcesContent?: unknown[] } }> };
    for (const entry of Object.values(report['source-map-cache'] ?? {})) {
      if (entry.data?.sourcesContent?.every((text) => text === null)) delete entry.data.sourcesContent;
    }
    writeFileSync(join(fixed, name), JSON.stringify(report));
    files++;
  }
  if (files === 0) throw new Error(`no coverage in ${source}: run the tests first (npm test, or npx tap test/x.test.ts)`);

  const report = new Report({
    include: ['src/**/*.ts', 'deploy/docker/healthcheck.mjs'],
    exclude: [],
    extension: ['.ts', '.mjs'],
    reporter: ['html', 'json-summary'],
    reportsDirectory: reportDir,
    tempDirectory: fixed,
    all: true,
    src: ['src', 'deploy/docker'],
    excludeNodeModules: true,
  });
  await report.run();
} finally {
  rmSync(fixed, { recursive: true, force: true });
}

const summary = JSON.parse(readFileSync(join(reportDir, 'coverage-summary.json'), 'utf8')) as Record<string, Totals>;
const byFolder = new Map<string, Totals>();
for (const [file, totals] of Object.entries(summary)) {
  if (file === 'total') continue;
  const path = relative(process.cwd(), file).split('/');
  const folder = path[0] !== 'src' ? path.join('/') : path.length === 2 ? 'src (top level)' : FOLDERS.includes(path[1]!) ? `src/${path[1]}` : `src/${path[1]} (other)`;
  const sum = byFolder.get(folder) ?? { lines: { total: 0, covered: 0 }, branches: { total: 0, covered: 0 }, functions: { total: 0, covered: 0 } };
  for (const kind of ['lines', 'branches', 'functions'] as const) {
    sum[kind].total += totals[kind].total;
    sum[kind].covered += totals[kind].covered;
  }
  byFolder.set(folder, sum);
}
const all = { lines: { total: 0, covered: 0 }, branches: { total: 0, covered: 0 }, functions: { total: 0, covered: 0 } };
for (const [folder, totals] of byFolder) {
  if (!folder.startsWith('src')) continue;
  for (const kind of ['lines', 'branches', 'functions'] as const) {
    all[kind].total += totals[kind].total;
    all[kind].covered += totals[kind].covered;
  }
}
byFolder.set('src (all)', all);

const pct = (x: { total: number; covered: number }) => (x.total === 0 ? 100 : (100 * x.covered) / x.total);
const failures: string[] = [];
const rows = [...byFolder.entries()].sort(([a], [b]) => a.localeCompare(b));
console.log('\n# coverage of src/ (V8, whole suite)\n');
console.log('| folder | lines | branches | functions |');
console.log('| --- | ---: | ---: | ---: |');
for (const [folder, totals] of rows) {
  console.log(`| ${folder} | ${pct(totals.lines).toFixed(1)} % | ${pct(totals.branches).toFixed(1)} % | ${pct(totals.functions).toFixed(1)} % |`);
  const min = THRESHOLDS[folder];
  for (const kind of ['lines', 'branches', 'functions'] as const) {
    if (min && pct(totals[kind]) < min[kind]) failures.push(`${folder}: ${kind} ${pct(totals[kind]).toFixed(1)} % is below ${min[kind]} %`);
  }
}
console.log(`\nper file and line: ${reportDir}/index.html`);
if (failures.length > 0) {
  console.error(`\ncoverage below the thresholds in scripts/coverage.ts:\n  ${failures.join('\n  ')}`);
  process.exitCode = 1;
}
