/**
 * Where tenants added at run time (the admin API) are kept, so that they survive a restart and reach every
 * instance: the Redis store when the gateway uses one (each tenant sealed under the session keys: its
 * configuration may carry a client secret or key), otherwise one file per tenant in `tenantsDir`.
 *
 * Each store keeps tenants as the JSON text of an entry of `tenants` and a version that changes with every write,
 * which instances compare to notice a change they were not told of.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { ConfigError } from '../config/errors.js';
import { parseConfigFile } from '../config/parse-file.js';
import { tenantFileNames } from '../config/tenants-dir.js';
import { StoreUnavailableError } from '../session/store.js';
import type { KeyRing } from '../session/key-ring.js';
import type { RedisClient } from '../session/redis-store.js';

export interface TenantStore {
  /** Changes whenever a tenant is written or deleted (by any instance). */
  version(): Promise<string>;
  /** Every kept tenant, by id, as JSON text; `unreadable` names entries that could not be read (and why). */
  list(): Promise<{ tenants: Map<string, string>; unreadable: string[] }>;
  put(id: string, json: string): Promise<void>;
  /** False when there was no such tenant. */
  delete(id: string): Promise<boolean>;
  /** Calls `changed` as soon as another instance tells of a change (when the store can tell; else only the version says). */
  watch(changed: () => void): void;
  close(): Promise<void>;
}

/** Its own connection to the session store's Redis. The Redis keys: one hash of sealed tenants and its version, hash-tagged together (Cluster), and a channel. */
export class RedisTenantStore implements TenantStore {
  readonly #redis: RedisClient;
  readonly #keys: KeyRing;
  readonly #hash: string;
  readonly #version: string;
  readonly #channel: string;
  #subscriber: RedisClient | undefined;

  constructor(redis: RedisClient, keyPrefix: string, keys: KeyRing) {
    this.#redis = redis;
    this.#keys = keys;
    this.#hash = `${keyPrefix}{tenants}`;
    this.#version = `${keyPrefix}{tenants}:v`;
    this.#channel = `${keyPrefix}tenants`;
  }

  async version(): Promise<string> {
    return (await unavailableOnError(this.#redis.get(this.#version))) ?? '0';
  }

  async list(): Promise<{ tenants: Map<string, string>; unreadable: string[] }> {
    const sealed = await unavailableOnError(this.#redis.hgetall(this.#hash));
    const tenants = new Map<string, string>();
    const unreadable: string[] = [];
    for (const [id, value] of Object.entries(sealed)) {
      const json = this.#keys.open(value, aad(id));
      if (json === undefined) unreadable.push(`${id}: sealed under a key this instance does not have`);
      else tenants.set(id, json);
    }
    return { tenants, unreadable };
  }

  async put(id: string, json: string): Promise<void> {
    await unavailableOnError(this.#redis.multi().hset(this.#hash, id, this.#keys.seal(json, aad(id))).incr(this.#version).exec());
    await this.#publish(id);
  }

  async delete(id: string): Promise<boolean> {
    const result = await unavailableOnError(this.#redis.multi().hdel(this.#hash, id).incr(this.#version).exec());
    await this.#publish(id);
    return result?.[0]?.[1] === 1;
  }

  watch(changed: () => void): void {
    // Its own connection: a subscribed connection can do nothing else. ioredis subscribes again after a reconnect;
    // a message lost meanwhile is caught up by the version check.
    const options = { enableOfflineQueue: true, lazyConnect: false };
    const subscriber = this.#redis instanceof Cluster ? this.#redis.duplicate([], options) : this.#redis.duplicate(options);
    subscriber.on('error', () => undefined);
    subscriber.on('message', (channel: string) => {
      if (channel === this.#channel) changed();
    });
    subscriber.subscribe(this.#channel).catch(() => undefined);
    this.#subscriber = subscriber;
  }

  /** Closes its connections (both are its own). */
  async close(): Promise<void> {
    this.#subscriber?.disconnect();
    this.#redis.disconnect();
  }

  async #publish(id: string): Promise<void> {
    // The change stands without the message: the other instances' version check finds it.
    await this.#redis.publish(this.#channel, id).catch(() => undefined);
  }
}

/** The sealed value belongs to this tenant's entry: copied to another id it does not open. */
const aad = (id: string) => `idporten-bff tenant ${id}`;

async function unavailableOnError<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new StoreUnavailableError('The store holding the tenants could not be reached.', { cause: err });
  }
}

/** The marker file whose content changes with every write through the admin API. */
const VERSION_FILE = '.tenants-version';

/**
 * One file per tenant in `tenantsDir`: a tenant's file is the one that defines its id (any name), or `<id>.json`
 * for a new one; written whole and renamed into place, readable by this user only (it may hold secrets).
 */
export class DirTenantStore implements TenantStore {
  readonly #dir: string;
  readonly #applied: ReadonlySet<string>;

  /** `applied`: ids whose files `integrations apply` keeps (their client is its), neither listed nor changed here. */
  constructor(dir: string, applied: readonly string[] = []) {
    this.#dir = dir;
    this.#applied = new Set(applied);
  }

  async version(): Promise<string> {
    try {
      return readFileSync(join(this.#dir, VERSION_FILE), 'utf8');
    } catch {
      return '';
    }
  }

  async list(): Promise<{ tenants: Map<string, string>; unreadable: string[] }> {
    const { tenants, unreadable } = this.#read();
    return { tenants: new Map([...tenants].map(([id, { json }]) => [id, json])), unreadable };
  }

  async put(id: string, json: string): Promise<void> {
    const file = this.#read().tenants.get(id)?.file ?? join(this.#dir, `${id}.json`);
    const temporary = join(this.#dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    writeFileSync(temporary, `${JSON.stringify(JSON.parse(json), null, 2)}\n`, { mode: 0o600 });
    renameSync(temporary, file);
    this.#bump();
  }

  async delete(id: string): Promise<boolean> {
    const file = this.#read().tenants.get(id)?.file;
    if (file === undefined) return false;
    rmSync(file, { force: true });
    this.#bump();
    return true;
  }

  watch(): void {
    // Nothing tells of a change to a folder: the version check finds it.
  }

  async close(): Promise<void> {}

  #read(): { tenants: Map<string, { json: string; file: string }>; unreadable: string[] } {
    const tenants = new Map<string, { json: string; file: string }>();
    const unreadable: string[] = [];
    for (const name of tenantFileNames(this.#dir)) {
      const file = join(this.#dir, name);
      try {
        const raw = parseConfigFile(file) as { id?: unknown } | null;
        if (typeof raw?.id !== 'string') unreadable.push(`${file}: no id`);
        else if (this.#applied.has(raw.id)) continue;
        else if (tenants.has(raw.id)) unreadable.push(`${file}: repeats the id of ${tenants.get(raw.id)!.file}`);
        else tenants.set(raw.id, { json: JSON.stringify(raw), file });
      } catch (err) {
        unreadable.push(err instanceof ConfigError ? err.message : `${file}: ${(err as Error).message}`);
      }
    }
    return { tenants, unreadable };
  }

  #bump(): void {
    writeFileSync(join(this.#dir, VERSION_FILE), randomBytes(12).toString('base64url'));
  }
}
