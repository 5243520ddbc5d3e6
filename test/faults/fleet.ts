/**
 * The gateway instances under test: each a process of its own (test/helpers/gateway-process.ts) on one shared
 * configuration, killed for real (SIGKILL) and started again. Keeps every instance it ever ran, with its pid and
 * the moment it was killed, so that what the provider saw can be traced to the process that did it.
 */
import { forkChild, type Child } from '../../bench/ipc.js';
import type { Teardown } from '../helpers/teardown.js';

export interface Instance {
  /** Which of the fleet's slots it runs in (0 … size-1); a restart takes the slot of the one killed. */
  readonly slot: number;
  readonly pid: number;
  readonly port: number;
  /** Epoch ms at which SIGKILL was sent, when it was. */
  killedAt?: number;
}

const GATEWAY_PROCESS = new URL('../helpers/gateway-process.ts', import.meta.url);

export class Fleet {
  readonly #raw: unknown;
  readonly #slots: ({ instance: Instance; child: Child } | undefined)[];
  /** Every instance ever started, by pid. */
  readonly #everyone = new Map<number, Instance>();
  /** Pids of processes forked and still starting (they already talk to the provider). */
  readonly #starting = new Set<number>();
  readonly #startingSlots = new Map<number, Promise<Instance>>();

  /** `size` slots for instances of the gateway configured by `raw` (started by fill()), all stopped at teardown. */
  constructor(t: Teardown, raw: unknown, size: number) {
    this.#raw = raw;
    this.#slots = Array.from({ length: size }, () => undefined);
    t.teardown(() => this.stopAll());
  }

  /** Instances running now. */
  live(): Instance[] {
    return this.#slots.flatMap((s) => (s ? [s.instance] : []));
  }

  /** Slots without a running instance (killed and not being started again yet). */
  empty(): number[] {
    return this.#slots.flatMap((s, slot) => (s || this.#startingSlots.has(slot) ? [] : [slot]));
  }

  byPid(pid: number): Instance | undefined {
    return this.#everyone.get(pid);
  }

  /** Pids of the instances running now, and of those starting. */
  pids(): number[] {
    return [...this.live().map((i) => i.pid), ...this.#starting];
  }

  /**
   * SIGKILLs the instance: the signal goes out before this returns (synchronously), so a caller reacting to an
   * event kills at that moment. Resolves once the process is gone.
   */
  kill(instance: Instance): Promise<void> {
    const held = this.#slots[instance.slot];
    if (!held || held.instance !== instance) return Promise.resolve();
    this.#slots[instance.slot] = undefined;
    instance.killedAt = Date.now();
    return held.child.kill();
  }

  /** Starts an instance in an empty slot (or waits for the one being started there). */
  startSlot(slot: number): Promise<Instance> {
    const running = this.#slots[slot]?.instance;
    if (running) return Promise.resolve(running);
    let starting = this.#startingSlots.get(slot);
    if (!starting) {
      starting = this.#launch(slot).finally(() => this.#startingSlots.delete(slot));
      this.#startingSlots.set(slot, starting);
    }
    return starting;
  }

  async #launch(slot: number): Promise<Instance> {
    const child = await forkChild(GATEWAY_PROCESS);
    this.#starting.add(child.pid);
    try {
      const { port, pid } = await child.call<{ port: number; pid: number }>('start', this.#raw);
      const instance: Instance = { slot, pid, port };
      this.#everyone.set(pid, instance);
      this.#slots[slot] = { instance, child };
      return instance;
    } catch (err) {
      await child.kill();
      throw err;
    } finally {
      this.#starting.delete(child.pid);
    }
  }

  /** Starts an instance in every slot that has none, and waits for those being started. */
  async fill(): Promise<void> {
    await Promise.all(this.#slots.map((_, slot) => this.startSlot(slot)));
  }

  async stopAll(): Promise<void> {
    const running = this.#slots.flatMap((s) => (s ? [s.child] : []));
    this.#slots.fill(undefined);
    await Promise.all(running.map((child) => child.kill()));
  }
}
