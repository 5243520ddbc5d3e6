/**
 * The short form of the fault-injection suite, run by `npm test` (test/faults-*.test.ts): a few seconds of each
 * fault on one shared environment per kind of store, each run's invariants asserted. The seed is new each time
 * and printed; FAULTS_SEED=N replays one.
 */
import type { Test } from 'tap';
import { redisMissingReason } from '../helpers/redis.js';
import type { FaultKind } from './faults.js';
import type { Invariant } from './invariants.js';
import { newSeed } from './random.js';
import { describe, excusedLines, faultSummary, figuresTable } from './report.js';
import { needsSentinel, runFault, startEnvironment, type Environment, type ScenarioResult } from './scenario.js';

/** Seconds of faults per run: the first strikes within 2 s (see faults.ts), most strike two or three times. */
const SECONDS: Record<FaultKind, number> = { none: 3, drop: 5, pause: 5, kill: 5, failover: 3 };
const SESSIONS = 10;
const INSTANCES = 3;
const ACCESS_TOKEN_TTL_SECONDS = 4;
/** How many violations of one invariant an assertion lists. */
const LISTED = 10;

const INVARIANTS: [Invariant, string][] = [
  ['session lost', 'no session lost, except where its instance died between ID-porten\'s answer and the store write'],
  ['presented twice', 'no refresh token presented twice, except in that same case'],
  ['5xx', 'no 5xx but 503 with Retry-After'],
  ['bearer', 'every upstream call carried a valid bearer of its own session'],
  ['unexpected answer', 'no answers but 200, the 401 that ends a session and those 5xx'],
];

export function faultsSeed(): number {
  const given = process.env.FAULTS_SEED;
  return given === undefined || given === '' ? newSeed() : Number(given);
}

/** Runs `faults` (all on one kind of store) one after another on one environment, each a subtest of `t`. */
export async function checkFaults(t: Test, faults: FaultKind[]): Promise<void> {
  const skip = redisMissingReason() ?? false;
  const seed = faultsSeed();
  t.comment(`seed ${seed} (FAULTS_SEED=${seed} replays it)`);
  let env: Promise<Environment> | undefined;
  for (const fault of faults) {
    await t.test(`${fault}: the sessions keep their state and their own tokens (seed ${seed})`, { skip }, async (st) => {
      env ??= startEnvironment(t, { sentinel: faults.some(needsSentinel), instances: INSTANCES, accessTokenTtlSeconds: ACCESS_TOKEN_TTL_SECONDS });
      const result = await runFault(await env, { fault, seed, seconds: SECONDS[fault], sessions: SESSIONS });
      st.comment(`${faultSummary(result)}\n${figuresTable([result])}`);
      for (const line of excusedLines(result)) st.comment(line);
      exercised(st, result);
      for (const [invariant, statement] of INVARIANTS) {
        const found = result.violations.filter((v) => v.invariant === invariant);
        st.equal(found.length, 0, statement, { seed, violations: found.slice(0, LISTED).map((v) => describe(result, v)) });
      }
    });
  }
}

/** The run did what it is for: the sessions called and refreshed, and the fault struck. */
function exercised(t: Test, result: ScenarioResult): void {
  const { figures, events, options } = result;
  t.ok(figures.requests >= options.sessions * options.seconds, `the sessions called (${figures.requests} calls)`);
  t.ok(figures.refreshes >= options.sessions, `the sessions refreshed (${figures.refreshes} refreshes)`);
  if (options.fault !== 'none') t.ok(events.some((e) => e.kind === options.fault), `the fault struck (${faultSummary(result)})`);
}
