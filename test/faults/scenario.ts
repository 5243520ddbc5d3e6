/**
 * Fault-injection runs. An environment: the store (one Redis, or Sentinel for failovers), the ID-porten
 * look-alike with short access tokens and the Skatteetaten look-alike behind the gateway's /mva/echo route
 * (test/helpers/stack.ts, whose own instance takes the logins), and a fleet of gateway instances in processes of
 * their own. A run on it: fresh sessions call through the fleet while one kind of fault strikes; then the faults
 * stop, the sessions go on for a token's lifetime (each refreshes again, so a session whose stored state went
 * wrong shows it), each session is asked once more, and the invariants are checked on what the run saw.
 */
import { sleep } from '../../bench/report.js';
import { TEST_USERS } from '../../demo/test-users.js';
import { startStack, type Stack } from '../helpers/stack.js';
import type { Teardown } from '../helpers/teardown.js';
import { traceCallers, type Callers } from './callers.js';
import { injectFaults, type FaultKind } from './faults.js';
import { Fleet } from './fleet.js';
import { checkRun, type RunData, type Verdict } from './invariants.js';
import { seededRandom } from './random.js';
import type { FaultEvent } from './records.js';
import { sentinelRedis, singleRedis, type FaultyStore } from './store.js';
import { Traffic } from './traffic.js';

export interface EnvironmentOptions {
  /** Sentinel (needed for failovers) rather than one Redis server. */
  sentinel: boolean;
  instances: number;
  accessTokenTtlSeconds: number;
}

export interface Environment {
  options: EnvironmentOptions;
  store: FaultyStore;
  stack: Stack;
  fleet: Fleet;
  callers: Callers;
}

export interface RunOptions {
  fault: FaultKind;
  seed: number;
  /** How long the faults strike while the sessions run. */
  seconds: number;
  sessions: number;
  /** Told what the run is doing, a line at a time. */
  progress?: (line: string) => void;
}

export interface ScenarioResult extends Verdict {
  options: RunOptions & EnvironmentOptions;
  data: RunData;
  events: FaultEvent[];
  /** Wall time of the run (and of the environment's start, when it had one of its own). */
  wallMs: number;
}

/** Generous: after the faults, a session still on gets this long to be answered 200 or be ended. */
const SWEEP_BOUND_MS = 30_000;

/** The kind of store a fault needs. */
export const needsSentinel = (fault: FaultKind): boolean => fault === 'failover';

export async function startEnvironment(t: Teardown, options: EnvironmentOptions): Promise<Environment> {
  const store = options.sentinel ? await sentinelRedis(t) : await singleRedis(t);
  const stack = await startStack(t, {
    upstreams: true,
    op: { accessTokenTtlSeconds: options.accessTokenTtlSeconds },
    session: { store: store.config },
    // Every session logs in from this one process: the per-client login limit would refuse most of them.
    server: { rateLimit: { login: { max: 1_000_000 } } },
  });
  const fleet = new Fleet(t, stack.rawConfig, options.instances);
  const callers = traceCallers(stack.op, () => [...fleet.pids(), process.pid]);
  await fleet.fill();
  return { options, store, stack, fleet, callers };
}

export async function runFault(env: Environment, opts: RunOptions): Promise<ScenarioResult> {
  const began = Date.now();
  const { store, stack, fleet, callers, options } = env;
  if (needsSentinel(opts.fault) && !options.sentinel) throw new Error(`${opts.fault} needs the Sentinel environment`);
  const progress = opts.progress ?? (() => undefined);
  const random = seededRandom(opts.seed).stream(opts.fault);
  const grantsBefore = stack.op.observed.grants.length;

  const traffic = new Traffic({ publicUrl: stack.publicUrl, op: stack.op, fleet, random: random.stream('traffic'), user: TEST_USERS[0]! });
  await traffic.logIn(opts.sessions);
  progress(`${opts.fault}: ${opts.sessions} sessions on ${options.instances} instances, faults for ${opts.seconds} s (seed ${opts.seed})`);

  const startedAt = Date.now();
  const events: FaultEvent[] = [];
  traffic.start();
  const injection = injectFaults(opts.fault, { random: random.stream('faults'), fleet, store, op: stack.op, callers, events });
  await sleep(opts.seconds * 1000);
  await injection.stop();
  progress(`${opts.fault}: faults stopped (${events.length} struck); the sessions go on for one more token lifetime`);
  await sleep(options.accessTokenTtlSeconds * 1000);
  await traffic.stop();
  await traffic.sweep(SWEEP_BOUND_MS);

  const data: RunData = {
    startedAt,
    calls: traffic.calls,
    sessions: traffic.sessions,
    grants: stack.op.observed.grants.slice(grantsBefore),
    accessTokenGrants: stack.op.observed.accessTokenGrants,
    pidOf: (connection) => callers.pidOf(connection),
    killedAt: (pid) => fleet.byPid(pid)?.killedAt,
  };
  return { ...checkRun(data), options: { ...options, ...opts }, data, events, wallMs: Date.now() - began };
}

/** A run on an environment of its own. */
export async function runScenario(t: Teardown, opts: RunOptions & Omit<EnvironmentOptions, 'sentinel'>): Promise<ScenarioResult> {
  const began = Date.now();
  const env = await startEnvironment(t, { sentinel: needsSentinel(opts.fault), instances: opts.instances, accessTokenTtlSeconds: opts.accessTokenTtlSeconds });
  const result = await runFault(env, opts);
  return { ...result, wallMs: Date.now() - began };
}
