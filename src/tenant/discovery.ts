import type { Provider } from '../idporten/provider.js';
import type { Tenants } from './tenant.js';

/** At most this many providers are asked for metadata at once. */
const CONCURRENCY = 8;
/** A failed load is retried after a delay doubling from the first to the last, each with full jitter. */
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;
/** A loaded provider's metadata and keys are fetched again about this often, ±10 %, so instances spread out. */
const REFRESH_MS = 24 * 60 * 60_000;

export interface DiscoveryLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * Loads the metadata and keys of every provider the tenants use — once per provider, however many tenants share
 * it — a bounded number at a time; retries each provider that failed on its own backoff schedule, so one provider
 * being down delays only the tenants that use it; and refreshes each loaded provider in the background about
 * daily (a failed refresh keeps the last good metadata and keys, and is retried on the same backoff).
 */
export class Discovery {
  readonly #tenants: Tenants;
  readonly #log: DiscoveryLog;
  readonly #failures = new Map<Provider, number>();
  readonly #timers = new Map<Provider, NodeJS.Timeout>();
  readonly #random: () => number;
  readonly #refreshMs: number;
  #running: Promise<void> | undefined;
  #again: Promise<void> | undefined;
  #stopped = false;

  /** `refreshMs`: how often a loaded provider is fetched again (REFRESH_MS, about daily, unless a test says otherwise). */
  constructor(tenants: Tenants, log: DiscoveryLog, opts: { random?: () => number; refreshMs?: number } = {}) {
    this.#tenants = tenants;
    this.#log = log;
    this.#random = opts.random ?? Math.random;
    this.#refreshMs = opts.refreshMs ?? REFRESH_MS;
  }

  /**
   * One pass over the providers not loaded yet; resolves when each has succeeded or failed once. Called while a
   * pass is under way (a reload added tenants), another pass follows it, for the providers the first one did not see.
   */
  run(): Promise<void> {
    if (this.#running) {
      this.#again ??= this.#running.then(() => {
        this.#again = undefined;
        return this.run();
      });
      return this.#again;
    }
    const pending = this.#tenants.providers.filter((provider) => !provider.ready && !this.#timers.has(provider));
    this.#running = this.#pass(pending).finally(() => (this.#running = undefined));
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  async #pass(pending: Provider[]): Promise<void> {
    const queue = [...pending];
    const worker = async () => {
      for (let provider = queue.shift(); provider; provider = queue.shift()) await this.#attempt(provider);
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  }

  async #attempt(provider: Provider): Promise<void> {
    const refreshing = provider.ready;
    try {
      await provider.load();
      this.#failures.delete(provider);
      this.#log.info({ issuer: provider.issuer, tenants: this.#tenants.tenantsOf(provider) }, refreshing ? 'provider metadata refreshed' : 'provider metadata loaded');
      this.#schedule(provider, this.#refreshMs * (0.9 + 0.2 * this.#random()));
    } catch (err) {
      const failures = (this.#failures.get(provider) ?? 0) + 1;
      this.#failures.set(provider, failures);
      const delayMs = Math.round(this.#random() * Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1)));
      const message = refreshing ? 'provider metadata not refreshed; keeping the last; retrying' : 'provider metadata not loaded yet; retrying';
      this.#log.warn({ issuer: provider.issuer, tenants: this.#tenants.tenantsOf(provider), reason: (err as Error).message, retryInMs: delayMs }, message);
      this.#schedule(provider, delayMs);
    }
  }

  /** The provider's next load; forgotten when no tenant uses the provider any more by then. */
  #schedule(provider: Provider, delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timers.get(provider));
    const timer = setTimeout(() => {
      this.#timers.delete(provider);
      if (this.#stopped) return;
      if (!this.#tenants.providers.includes(provider)) return void this.#failures.delete(provider);
      void this.#attempt(provider);
    }, delayMs);
    timer.unref();
    this.#timers.set(provider, timer);
  }
}
