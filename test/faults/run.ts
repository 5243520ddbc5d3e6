/**
 * The long form of the fault-injection suite, on demand:
 *
 *   npm run faults -- [--fault none|kill|pause|drop|failover|all] [--seed N] [--seconds S]
 *                     [--sessions N] [--instances N] [--ttl SECONDS] [--broken lock|cas|lock+cas] [--verbose]
 *
 * Runs each fault in turn on a fresh set-up (all: every one), prints the seed, each run's violations and
 * excused losses (the first 8 of each kind; --verbose: all), and a table of the figures. --broken runs the
 * gateway instances as a deliberately broken variant (test/helpers/broken-variant.ts) the invariants must catch.
 * Exits 1 when an invariant failed.
 */
import { parseArgs } from 'node:util';
import { BROKEN_ENV, BROKEN_VARIANTS } from '../helpers/broken-variant.js';
import { teardownList } from '../helpers/teardown.js';
import { FAULT_KINDS, type FaultKind } from './faults.js';
import { newSeed } from './random.js';
import { excusedLines, faultSummary, figuresTable, violationLines } from './report.js';
import { runScenario, type ScenarioResult } from './scenario.js';

const { values } = parseArgs({
  options: {
    fault: { type: 'string', default: 'all' },
    seed: { type: 'string' },
    seconds: { type: 'string', default: '60' },
    sessions: { type: 'string', default: '30' },
    instances: { type: 'string', default: '3' },
    ttl: { type: 'string', default: '4' },
    broken: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});

const faults: FaultKind[] = values.fault === 'all' ? [...FAULT_KINDS] : [values.fault as FaultKind];
if (!faults.every((f) => (FAULT_KINDS as readonly string[]).includes(f))) {
  process.stderr.write(`--fault: one of ${FAULT_KINDS.join(', ')} or all\n`);
  process.exit(2);
}
const seed = values.seed === undefined ? newSeed() : Number(values.seed);
const numbers = { seconds: Number(values.seconds), sessions: Number(values.sessions), instances: Number(values.instances), ttl: Number(values.ttl) };
if (!Number.isInteger(seed) || !Object.values(numbers).every((n) => Number.isFinite(n) && n > 0)) {
  process.stderr.write('--seed, --seconds, --sessions, --instances and --ttl take positive numbers\n');
  process.exit(2);
}
if (values.broken !== undefined && !(BROKEN_VARIANTS as readonly string[]).includes(values.broken)) {
  process.stderr.write(`--broken: one of ${BROKEN_VARIANTS.join(', ')}\n`);
  process.exit(2);
}
if (values.broken !== undefined) process.env[BROKEN_ENV] = values.broken;
const variant = values.broken === undefined ? '' : ` (broken variant: ${values.broken})`;

const say = (line: string) => process.stderr.write(`${line}\n`);
say(`seed ${seed}${variant}`);

const results: ScenarioResult[] = [];
for (const fault of faults) {
  const cleanUp = teardownList();
  try {
    const result = await runScenario(cleanUp, {
      fault,
      seed,
      seconds: numbers.seconds,
      sessions: numbers.sessions,
      instances: numbers.instances,
      accessTokenTtlSeconds: numbers.ttl,
      progress: say,
    });
    results.push(result);
    const untraced = result.figures.untraced ? `; ${result.figures.untraced} refresh grants not traced to a process` : '';
    say(`${fault}: ${faultSummary(result)}; ${result.violations.length} violations${untraced}; ${(result.wallMs / 1000).toFixed(1)} s`);
    const listed = values.verbose ? Infinity : 8;
    for (const line of [...violationLines(result, listed), ...excusedLines(result, listed)]) process.stdout.write(`${line}\n`);
  } finally {
    await cleanUp.run();
  }
}
process.stdout.write(`\nseed ${seed}${variant}\n\n${figuresTable(results)}\n`);
process.exit(results.some((r) => r.violations.length > 0) ? 1 : 0);
