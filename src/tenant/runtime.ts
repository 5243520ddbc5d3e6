import { isDeepStrictEqual } from 'node:util';
import { ConfigError, type ConfigIssue } from '../config/errors.js';
import { hostClash, normaliseTenantEntry } from '../config/normalise.js';
import type { TenantConfig, TenantSettings } from '../config/types.js';
import type { TenantStore } from './tenant-store.js';

/** How often each instance compares the store's version with the one it applied (a missed message is caught up). */
const CHECK_INTERVAL_MS = 1_000;

export interface RuntimeTenantsLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A run-time tenant: with its client, or awaiting the one `integrations apply` made for it (PUT with apply=true). */
export type RuntimeTenant = TenantConfig | TenantSettings;

export interface RuntimeTenantsDeps {
  tenantStore: TenantStore;
  env: NodeJS.ProcessEnv;
  /** Where relative paths in a tenant (caFile) start from: the configuration file's folder. */
  baseDir: string;
  log: RuntimeTenantsLog;
  /** The tenants of the configuration file (and, with a Redis store, of tenantsDir): not the admin API's to change. */
  configured(): readonly RuntimeTenant[];
  /** Whether a tenant may come without its client (the gateway has a digdir block and keeps applied integrations in Redis). */
  awaitingClient(): boolean;
  /**
   * Serves these run-time tenants next to the configured ones: checks everything first and rejects (changing
   * nothing) when they cannot be served; with `dryRun`, only checks.
   */
  apply(tenants: RuntimeTenant[], opts: { dryRun: boolean }): Promise<void>;
}

/** A tenant the admin API cannot take as given: the issues name paths inside the tenant (`idporten.clientId`). */
export class TenantRefused extends ConfigError {}

/**
 * The tenants added at run time: read from their store, each checked as at start-up, and applied on this
 * instance whenever the store changes — told by the store (Redis pub/sub) or found by comparing its version
 * every second. Changes through `put` and `delete` are checked against the running gateway before they are kept.
 */
export class RuntimeTenants {
  readonly #deps: RuntimeTenantsDeps;
  /** Each kept tenant's JSON and what it normalised to (a tenant whose JSON is unchanged is not checked again). */
  #known = new Map<string, { json: string; config: RuntimeTenant }>();
  #version: string | undefined;
  /** One change at a time: a refresh, a put or a delete. */
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(deps: RuntimeTenantsDeps) {
    this.#deps = deps;
  }

  /** The run-time tenants as last read (their order: by id). */
  get tenants(): RuntimeTenant[] {
    return [...this.#known.values()].map((entry) => entry.config);
  }

  /** A run-time tenant as it was given (the file's shape), if there is one with this id. */
  entry(id: string): unknown {
    const known = this.#known.get(id);
    return known === undefined ? undefined : JSON.parse(known.json);
  }

  /** Reads the store once, without applying (at start, before the routes are registered). */
  async load(): Promise<void> {
    try {
      await this.#read(true);
    } catch (err) {
      this.#deps.log.error({ reason: (err as Error).message }, 'run-time tenants not read at start; retrying in the background');
    }
  }

  /** Watches the store for changes from now on. */
  start(): void {
    this.#deps.tenantStore.watch(() => void this.refresh().catch(() => undefined));
    this.#timer = setInterval(() => void this.refresh().catch(() => undefined), CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#queue.catch(() => undefined);
    await this.#deps.tenantStore.close();
  }

  /** Applies what the store holds now, if it changed since the last look (`force`: read it anyway). */
  refresh(opts: { force?: boolean } = {}): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      const previous = this.#known;
      if (!(await this.#read(opts.force ?? false))) return;
      try {
        await this.#deps.apply(this.tenants, { dryRun: false });
      } catch (err) {
        // Tried again when the store changes next (or on a reload).
        this.#known = previous;
        this.#deps.log.error({ reason: (err as Error).message }, 'run-time tenants not applied; the running tenants keep serving');
      }
    });
  }

  /**
   * Checks `raw` (one entry of `tenants`) as at start-up and against the running gateway, keeps it, and applies it
   * here. Throws TenantRefused (issues with paths inside the tenant), or the store's error.
   */
  put(id: string, raw: unknown): Promise<'created' | 'updated'> {
    return this.#serial(async () => {
      const config = this.check(id, raw);
      const json = JSON.stringify(raw);
      const next = this.tenants.filter((tenant) => tenant.id !== id).concat(config);
      try {
        await this.#deps.apply(next, { dryRun: true });
      } catch (err) {
        const message = (err as Error).message;
        throw new TenantRefused([{ path: /route paths/.test(message) ? 'routes' : '', message }]);
      }
      const created = !this.#known.has(id);
      await this.#deps.tenantStore.put(id, json);
      this.#deps.log.info({ tenant: id, created }, 'tenant kept');
      await this.#applyNow();
      return created ? 'created' : 'updated';
    });
  }

  /** Removes a run-time tenant everywhere; false when there was none with this id. */
  delete(id: string): Promise<boolean> {
    return this.#serial(async () => {
      const deleted = await this.#deps.tenantStore.delete(id);
      if (deleted) this.#deps.log.info({ tenant: id }, 'tenant removed');
      await this.#applyNow();
      return deleted;
    });
  }

  /** `raw` checked as at start-up and against the configured and other run-time tenants; throws TenantRefused. */
  check(id: string, raw: unknown): RuntimeTenant {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TenantRefused([{ path: '', message: 'must be one tenant: an object in the shape of an entry of tenants' }]);
    const given = (raw as { id?: unknown }).id;
    if (given !== id) throw new TenantRefused([{ path: 'id', message: `must be "${id}", the id in the URL` }]);
    const issues: ConfigIssue[] = [];
    if ('app' in raw) issues.push({ path: 'app', message: "a tenant's app is registered at start: add this tenant to the configuration file and restart" });
    if (this.#deps.configured().some((tenant) => tenant.id === id)) issues.push({ path: 'id', message: 'names a tenant of the configuration file; change it there' });
    let config: RuntimeTenant | undefined;
    try {
      config = this.#normalise(raw);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues.push(...err.issues);
    }
    if (config) {
      const others = [...this.#deps.configured(), ...this.tenants].filter((tenant) => tenant.id !== id);
      const clash = hostClash(config, others);
      if (clash) issues.push({ path: 'publicUrl', message: clash });
    }
    if (issues.length > 0 || !config) throw new TenantRefused(issues);
    return config;
  }

  /** After this instance's own write: read and apply at once, so the answer means it is served here. */
  async #applyNow(): Promise<void> {
    if (await this.#read(true)) await this.#deps.apply(this.tenants, { dryRun: false });
  }

  #normalise(raw: unknown): RuntimeTenant {
    return normaliseTenantEntry(raw, this.#deps.env, this.#deps.baseDir, { awaitingClient: this.#deps.awaitingClient() });
  }

  /** Reads the store when its version moved (or `force`); true when the tenants changed. */
  async #read(force: boolean): Promise<boolean> {
    const version = await this.#deps.tenantStore.version();
    if (!force && version === this.#version) return false;
    const { tenants, unreadable } = await this.#deps.tenantStore.list();
    for (const reason of unreadable) this.#deps.log.error({ reason }, 'run-time tenant not read');
    const known = new Map<string, { json: string; config: RuntimeTenant }>();
    for (const id of [...tenants.keys()].sort()) {
      const json = tenants.get(id)!;
      const same = this.#known.get(id);
      if (same?.json === json) {
        known.set(id, same);
        continue;
      }
      try {
        known.set(id, { json, config: this.#normalise(JSON.parse(json)) });
      } catch (err) {
        // Valid when it was kept, but not here (an environment variable this instance lacks, say).
        this.#deps.log.error({ tenant: id, reason: (err as Error).message }, 'run-time tenant not served: its configuration does not hold here');
      }
    }
    this.#version = version;
    const changed = !isDeepStrictEqual([...known.keys()], [...this.#known.keys()]) || [...known].some(([id, entry]) => this.#known.get(id) !== entry);
    this.#known = known;
    return changed;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
