// Mutation testing of the security core (docs/mutation.md). One target per Stryker run, chosen by
// MUTATION_TARGET (scripts/mutate.mjs runs them in turn): each target's mutants run only against the
// test files listed for it, and of those only the files that reach the mutant (perTest coverage).
import { targets } from './scripts/mutation-targets.mjs';

const name = process.env.MUTATION_TARGET;
const target = targets.find((t) => t.name === name);
if (!target) throw new Error(`MUTATION_TARGET must be one of: ${targets.map((t) => t.name).join(', ')}`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  tap: { testFiles: target.tests, nodeArgs: ['--import', 'tsx'] },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.mutation.json',
  mutate: target.mutate,
  coverageAnalysis: 'perTest',
  // The machine is shared and the tests start servers of their own: one mutant at a time.
  concurrency: 1,
  // A change re-runs only the mutants it touches; the results of the last run are kept per target.
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  thresholds: { high: 90, low: 80, break: null },
  timeoutMS: 30_000,
  timeoutFactor: 2,
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  ignorePatterns: ['.tap', 'dist', 'coverage', 'reports', 'test-output', 'demo/spa/samples', '.stryker-tmp'],
};
