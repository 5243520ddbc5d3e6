/**
 * The faults, struck at seeded random moments while the sessions run (the first of them 0.5–2 s into the run):
 * - kill: an instance SIGKILLed every 2–4.5 s and started again 0.3–1.2 s later; mostly the instance whose
 *   refresh the provider has just decided, 0–20 ms after it did (so before, while and after it hears the answer),
 *   otherwise one at random;
 * - pause: the Redis server frozen (SIGSTOP) for 1–3 s, every 2–6 s;
 * - drop: every client connection of Redis closed (CLIENT KILL TYPE normal), every 1.5–4 s;
 * - failover: behind Sentinel, the primary frozen until the replica is promoted, resumed 0–1 s later (it takes
 *   writes until it is demoted), every 3–8 s after the set-up settled.
 */
import type { IdportenLookalike, TokenGrantRecord } from '../../demo/idporten-op.js';
import { sleep } from '../../bench/report.js';
import type { Callers } from './callers.js';
import type { Fleet, Instance } from './fleet.js';
import type { Random } from './random.js';
import type { FaultEvent } from './records.js';
import type { FaultyStore } from './store.js';

export const FAULT_KINDS = ['none', 'kill', 'pause', 'drop', 'failover'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultContext {
  random: Random;
  fleet: Fleet;
  store: FaultyStore;
  op: IdportenLookalike;
  callers: Callers;
  events: FaultEvent[];
}

export interface Injection {
  /** Stops striking, undoes what the faults left (resumes, settles, starts killed instances again). */
  stop(): Promise<void>;
}

/**
 * How long, after the moment chosen, a kill waits for a refresh to strike at before it takes anyone: longer than
 * the gap between two refreshes of a session (the sessions' refreshes come in clusters, as they logged in together).
 */
const REFRESH_WAIT_MS = 5_000;

export function injectFaults(kind: FaultKind, ctx: FaultContext): Injection {
  let running = true;
  const pending: Promise<unknown>[] = [];
  let first = true;
  /** Waits low–high ms (the first time 0.5–2 s, so that a short run sees a fault soon); false once stopped. */
  const wait = async (low: number, high: number): Promise<boolean> => {
    const until = Date.now() + (first ? ctx.random.between(500, 2_000) : ctx.random.between(low, high));
    first = false;
    while (running && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
    return running;
  };
  const killer = kind === 'kill' ? refreshKiller(ctx) : undefined;

  async function loop(): Promise<void> {
    const { random, store, events } = ctx;
    for (;;) {
      switch (kind) {
        case 'none':
          if (!(await wait(1_000, 1_000))) return;
          break;
        case 'kill': {
          if (!(await wait(2_000, 4_500))) return;
          const victim = await killer!.strike(random.chance(0.75), random.pick([0, 0, 1, 3, 8, 20]));
          if (!victim) break;
          const restartIn = random.between(300, 1_200);
          pending.push(sleep(restartIn).then(async () => {
            const started = await ctx.fleet.startSlot(victim.slot);
            events.push({ kind: 'restart', at: Date.now(), pid: started.pid });
          }));
          break;
        }
        case 'pause': {
          if (!(await wait(2_000, 6_000))) return;
          const ms = random.between(1_000, 3_000);
          events.push({ kind: 'pause', at: Date.now(), ms });
          await store.pause(ms);
          break;
        }
        case 'drop': {
          if (!(await wait(1_500, 4_000))) return;
          const at = Date.now();
          const dropped = await store.dropConnections();
          events.push({ kind: 'drop', at, detail: `${dropped} connections` });
          break;
        }
        case 'failover': {
          if (!store.failover) throw new Error('failover needs the Sentinel store');
          if (!(await wait(3_000, 8_000))) return;
          const at = Date.now();
          const { promotedAt, resumedAt } = await store.failover(random.between(0, 1_000));
          events.push({ kind: 'failover', at, ms: resumedAt - at, detail: `replica promoted after ${promotedAt - at} ms` });
          break;
        }
      }
    }
  }

  const looping = loop();
  return {
    async stop() {
      running = false;
      killer?.disarm();
      await looping;
      await Promise.all(pending);
      await ctx.store.heal();
      await ctx.fleet.fill();
    },
  };
}

/**
 * Kills instances, preferably the one whose refresh grant the provider has just decided: the grant listener runs
 * before the provider sends its answer, so a delay of 0 kills the instance before it hears it.
 */
function refreshKiller(ctx: FaultContext): { strike(atRefresh: boolean, delayMs: number): Promise<Instance | undefined>; disarm(): void } {
  let armed: { delayMs: number; hit: (victim: Instance | undefined) => void } | undefined;
  let disarmed = false;
  const kill = (victim: Instance, detail: string): void => {
    ctx.events.push({ kind: 'kill', at: Date.now(), pid: victim.pid, detail });
    void ctx.fleet.kill(victim);
  };
  const stopListening = ctx.op.observed.onGrant((record: TokenGrantRecord) => {
    if (!armed || record.grantType !== 'refresh_token' || !record.ok) return;
    const pid = ctx.callers.pidOf(record.connection);
    const victim = ctx.fleet.live().find((i) => i.pid === pid);
    if (!victim) return;
    const { delayMs, hit } = armed;
    armed = undefined;
    const strike = () => {
      kill(victim, `${delayMs} ms after the provider decided its refresh`);
      hit(victim);
    };
    if (delayMs === 0) strike();
    else setTimeout(strike, delayMs);
  });
  return {
    async strike(atRefresh, delayMs) {
      if (atRefresh) {
        const victim = await new Promise<Instance | undefined>((resolve) => {
          armed = { delayMs, hit: resolve };
          setTimeout(() => {
            // Unless a refresh came first (that strike resolves it, after its kill) or disarm() did.
            if (armed?.hit !== resolve) return;
            armed = undefined;
            resolve(undefined);
          }, REFRESH_WAIT_MS);
        });
        if (victim) return victim;
      }
      const live = ctx.fleet.live();
      if (disarmed || live.length <= 1) return undefined;
      const victim = ctx.random.pick(live);
      kill(victim, 'at a random moment');
      return victim;
    },
    disarm() {
      disarmed = true;
      stopListening();
      armed?.hit(undefined);
      armed = undefined;
    },
  };
}
