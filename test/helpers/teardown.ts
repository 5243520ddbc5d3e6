/**
 * What the fixtures need of a tap test: somewhere to register their clean-up. A script that runs them outside
 * tap (the fault-injection runner) hands them a TeardownList instead.
 */
import type { Test } from 'tap';

export type Teardown = Pick<Test, 'teardown'>;

export interface TeardownList extends Teardown {
  /** Runs every registered clean-up, the last registered first, each once; a failing one does not stop the rest. */
  run(): Promise<void>;
}

export function teardownList(): TeardownList {
  const steps: (() => unknown)[] = [];
  return {
    teardown(fn: () => unknown) {
      steps.push(fn);
    },
    async run() {
      for (let step = steps.pop(); step; step = steps.pop()) {
        try {
          await step();
        } catch (err) {
          process.stderr.write(`clean-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
    },
  };
}
