import type { Tenant, Tenants } from './tenant.js';

/** At most this many tenants ask their provider for metadata at once, so hundreds of tenants do not stampede it. */
const CONCURRENCY = 8;
/** A failed discovery is retried after a delay doubling from the first to the last, each with full jitter. */
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;

export interface DiscoveryLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * Loads every tenant's provider metadata, a bounded number at a time, and keeps retrying each tenant that
 * failed on its own backoff schedule, so one provider being down delays only the tenants that use it.
 */
export class Discovery {
  readonly #tenants: Tenants;
  readonly #log: DiscoveryLog;
  readonly #failures = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #running: Promise<void> | undefined;
  #again: Promise<void> | undefined;
  #stopped = false;

  constructor(tenants: Tenants, log: DiscoveryLog) {
    this.#tenants = tenants;
    this.#log = log;
  }

  /**
   * One pass over the tenants not ready yet; resolves when each has succeeded or failed once. Called while a pass
   * is under way (a reload added tenants), another pass follows it, for the tenants the first one did not see.
   */
  run(): Promise<void> {
    if (this.#running) {
      this.#again ??= this.#running.then(() => {
        this.#again = undefined;
        return this.run();
      });
      return this.#again;
    }
    this.#running = this.#pass(this.#tenants.all.filter((t) => !t.idporten.ready)).finally(() => (this.#running = undefined));
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  async #pass(pending: Tenant[]): Promise<void> {
    const queue = [...pending];
    const worker = async () => {
      for (let tenant = queue.shift(); tenant; tenant = queue.shift()) await this.#attempt(tenant);
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  }

  async #attempt(tenant: Tenant): Promise<void> {
    try {
      await tenant.idporten.configuration();
      this.#failures.delete(tenant.id);
      this.#log.info({ tenant: tenant.id, issuer: tenant.idporten.issuer }, 'provider metadata loaded');
    } catch (err) {
      const failures = (this.#failures.get(tenant.id) ?? 0) + 1;
      this.#failures.set(tenant.id, failures);
      const delayMs = Math.round(Math.random() * Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1)));
      this.#log.warn({ tenant: tenant.id, issuer: tenant.idporten.issuer, reason: (err as Error).message, retryInMs: delayMs }, 'provider metadata not loaded yet; retrying');
      this.#retry(tenant, delayMs);
    }
  }

  #retry(tenant: Tenant, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#stopped && !tenant.idporten.ready) void this.#attempt(tenant);
    }, delayMs);
    timer.unref();
    this.#timers.add(timer);
  }
}
