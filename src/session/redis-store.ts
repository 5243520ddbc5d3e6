import { randomBytes } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisStoreConfig } from '../config/types.js';
import {
  DEFAULT_LOCK_HOLD_MS,
  DEFAULT_LOCK_WAIT_MS,
  LockTimeoutError,
  StoreUnavailableError,
  type LockOptions,
  type ReadMode,
  type SessionLock,
  type SessionStore,
  type StoredSession,
} from './store.js';
import { LockHold, MemorySessionLock } from './memory-store.js';
import { TrackedReads } from './tracked-reads.js';
import { followFailovers, SENTINEL_TIMEOUT_MS, type FailoverWatch } from './sentinel-watch.js';

const COMMAND_TIMEOUT_MS = 2_000;
const LOCK_POLL_MS = 25;
/**
 * Lease on a Redis lock key. A holder that died (killed, crashed, cut off) blocks its session for at most this
 * long; a live holder renews it LOCK_RENEWALS_PER_LEASE times per lease, so it loses the lock only after
 * renewals failed for most of a lease (Redis commands time out after COMMAND_TIMEOUT_MS).
 */
export const DEFAULT_LOCK_LEASE_MS = 4_000;
const LOCK_RENEWALS_PER_LEASE = 4;

/*
 * Key layout, the same on one server, behind Sentinel and on Redis Cluster (P is the configured keyPrefix):
 *
 *   P{<id>}:s        the session: a hash {d: sealed data (bytes), t: last seen, i: JSON list of its index keys}
 *   P{<id>}:l        the session's lock (SET NX PX with a renewed lease)
 *   P{i:<index>}     an index (an HMAC of a sid or sub, computed by SessionManager): a set of session ids
 *   P{r:<key>}       a remembered one-time value (a logout token's jti)
 *
 * Every key of one session carries the hash tag {<id>}, so they share a slot; an index key is its own slot.
 * No script ever touches keys of two slots: a script reaches only the keys it declares in KEYS, all of one
 * session (or one index), and what spans a session and its indexes is done as separate commands, in an order
 * that never leaves a live session unfindable by its indexes (add to the index first, drop from it last).
 * An index may therefore list an id whose record is gone for a moment (or after a failure between the
 * steps); findByIndex drops such members on the way. A keyPrefix with braces of its own puts every key in
 * the prefix's slot, which is also correct (only less spread over a cluster).
 */

// ARGV[5] = '1': update only an existing record. Returns {written, the index keys it had before or ''}.
const WRITE = `
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local old = redis.call('HGET', KEYS[1], 'i') or ''
redis.call('HSET', KEYS[1], 'd', ARGV[1], 't', ARGV[2], 'i', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, old}`;

// Only when the record still exists, so a touch never resurrects a destroyed session. Returns its index
// keys (the caller extends them with the record: an active session stays findable by sid), or nil.
const TOUCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'i') or '[]'`;

// Returns the index keys the record had (the caller removes the id from them), or nil when it was absent.
const DELETE = `
local index = redis.call('HGET', KEYS[1], 'i')
redis.call('DEL', KEYS[1])
return index or false`;

// An index lives as long as its longest-lived member: NX gives a fresh set its first expiry, GT only extends it.
const INDEX = `
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
return 1`;

// Readiness: a script over two keys of one session, as the session scripts are laid out. Fails where EVAL
// is refused, a slot has no master, or the layout would put one session's keys in two slots (CROSSSLOT).
const PROBE = `return redis.call('EXISTS', KEYS[1], KEYS[2])`;

// A lock is released or extended only by its holder (the value is a random token per holder).
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

type Arg = string | number;
interface StoreCommands {
  bffWrite(key: string, sealed: Buffer, lastSeenAt: Arg, index: string, ttlMs: Arg, onlyIfPresent: string): Promise<[number, string]>;
  bffTouch(key: string, lastSeenAt: Arg, ttlMs: Arg): Promise<string | null>;
  bffDelete(key: string): Promise<string | null>;
  bffIndex(indexKey: string, id: string, ttlMs: Arg): Promise<number>;
  bffProbe(a: string, b: string): Promise<number>;
  bffRelease(key: string, token: string): Promise<number>;
  bffExtend(key: string, token: string, leaseMs: Arg): Promise<number>;
}
/** One server, a primary found through Sentinel (both Redis), or a Redis Cluster. */
export type RedisClient = Redis | Cluster;
type StoreRedis = Redis & StoreCommands;

function withCommands(redis: RedisClient): StoreRedis {
  // defineCommand runs scripts by EVALSHA and reloads them after a Redis restart emptied its script cache;
  // on a cluster each goes to the node of its first key's slot.
  redis.defineCommand('bffWrite', { lua: WRITE, numberOfKeys: 1 });
  redis.defineCommand('bffTouch', { lua: TOUCH, numberOfKeys: 1 });
  redis.defineCommand('bffDelete', { lua: DELETE, numberOfKeys: 1 });
  redis.defineCommand('bffIndex', { lua: INDEX, numberOfKeys: 1 });
  redis.defineCommand('bffProbe', { lua: PROBE, numberOfKeys: 2 });
  redis.defineCommand('bffRelease', { lua: RELEASE, numberOfKeys: 1 });
  redis.defineCommand('bffExtend', { lua: EXTEND, numberOfKeys: 1 });
  // Both clients take the same commands; the cluster routes each by its key's slot.
  return redis as unknown as StoreRedis;
}

function indexList(json: string | null | undefined): string[] {
  if (!json) return [];
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * Shared store for several gateway instances. Every failure to reach Redis surfaces as StoreUnavailableError
 * (the gateway answers 503 store_unavailable) instead of hanging the request.
 */
export class RedisSessionStore implements SessionStore {
  readonly #redis: StoreRedis;
  readonly #prefix: string;
  /** One server or a Sentinel-named primary; a cluster's reads all go to Redis (tracking is per node there). */
  readonly #tracked: TrackedReads | undefined;
  #closed = false;

  constructor(redis: RedisClient, keyPrefix: string, logger?: Logger) {
    this.#redis = withCommands(redis);
    this.#prefix = keyPrefix;
    this.#tracked = redis instanceof Redis ? new TrackedReads(redis, logger) : undefined;
  }

  /** Whether tracked reads are being kept now (see TrackedReads). */
  get tracking(): boolean {
    return this.#tracked?.tracking ?? false;
  }

  /** True once close() was called: the connection's end is then on purpose. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The Redis key of a session record (see the key layout above). */
  key(id: string): string {
    return `${this.#prefix}{${id}}:s`;
  }

  #lockKey(id: string): string {
    return `${this.#prefix}{${id}}:l`;
  }

  /** The Redis key of an index, as given by the session manager (already an HMAC, never a raw sid or sub). */
  indexKey(key: string): string {
    return `${this.#prefix}{i:${key}}`;
  }

  #rememberKey(key: string): string {
    return `${this.#prefix}{r:${key}}`;
  }

  async get(id: string, mode: ReadMode = 'exact'): Promise<StoredSession | undefined> {
    const key = this.key(id);
    if (mode === 'exact' || !this.#tracked) return this.#read(key);
    const ticket = this.#tracked.begin(key);
    let value: StoredSession | undefined;
    try {
      value = await this.#read(key);
    } finally {
      if (ticket) value = this.#tracked.settle(ticket, value);
    }
    return value;
  }

  kept(id: string): StoredSession | undefined {
    return this.#tracked?.get(this.key(id));
  }

  async #read(key: string): Promise<StoredSession | undefined> {
    const [sealed, lastSeen] = await this.#do(() => this.#redis.hmgetBuffer(key, 'd', 't'));
    if (!sealed || !lastSeen) return undefined;
    return { sealed, lastSeenAt: Number(lastSeen.toString()) };
  }

  async set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void> {
    if (ttlMs <= 0) return this.delete(id);
    await this.#write(id, value, ttlMs, indexKeys, false);
  }

  async update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<boolean> {
    if (ttlMs <= 0) {
      this.#tracked?.forget(this.key(id));
      const had = await this.#do(() => this.#redis.bffDelete(this.key(id)));
      await this.#unindex(id, indexList(had));
      return had !== null;
    }
    return this.#write(id, value, ttlMs, indexKeys, true);
  }

  async #write(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], onlyIfPresent: boolean): Promise<boolean> {
    const ttl = Math.ceil(ttlMs);
    const index = [...new Set(indexKeys.map((k) => this.indexKey(k)))];
    // Index first: a session is never stored without being findable by its sid (logout must reach it).
    await this.#extendIndexes(id, index, ttl);
    // Right before the write goes out: a read sent after it sees the new record, one sent before is not kept.
    this.#tracked?.forget(this.key(id));
    const [written, old] = await this.#do(() =>
      this.#redis.bffWrite(this.key(id), value.sealed, value.lastSeenAt, JSON.stringify(index), ttl, onlyIfPresent ? '1' : '0'),
    );
    if (written !== 1) {
      // Gone meanwhile (destroyed by a logout): take back the index entries made above.
      await this.#unindex(id, index);
      return false;
    }
    await this.#unindex(id, indexList(old).filter((k) => !index.includes(k)));
    return true;
  }

  async touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) return this.delete(id);
    this.#tracked?.forget(this.key(id));
    const ttl = Math.ceil(ttlMs);
    const index = await this.#do(() => this.#redis.bffTouch(this.key(id), lastSeenAt, ttl));
    if (index !== null) await this.#extendIndexes(id, indexList(index), ttl);
  }

  async delete(id: string): Promise<void> {
    this.#tracked?.forget(this.key(id));
    const had = await this.#do(() => this.#redis.bffDelete(this.key(id)));
    await this.#unindex(id, indexList(had));
  }

  async findByIndex(indexKey: string): Promise<string[]> {
    const key = this.indexKey(indexKey);
    const members = await this.#do(() => this.#redis.smembers(key));
    // One command per record (each its own slot), in parallel; members whose record is gone are dropped.
    const alive = await Promise.all(members.map((id) => this.#do(() => this.#redis.exists(this.key(id)))));
    const dead = members.filter((_, i) => alive[i] !== 1);
    if (dead.length > 0) await this.#do(() => this.#redis.srem(key, ...dead));
    return members.filter((_, i) => alive[i] === 1);
  }

  async remember(key: string, ttlMs: number): Promise<boolean> {
    const ok = await this.#do(() => this.#redis.set(this.#rememberKey(key), '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'));
    return ok === 'OK';
  }

  async remembered(key: string): Promise<boolean> {
    return (await this.#do(() => this.#redis.exists(this.#rememberKey(key)))) === 1;
  }

  async ping(): Promise<void> {
    await this.#do(() => this.#redis.bffProbe(this.key('ready-probe'), this.#lockKey('ready-probe')));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#tracked?.close();
    this.#redis.disconnect();
  }

  async #extendIndexes(id: string, index: string[], ttl: number): Promise<void> {
    await Promise.all(index.map((k) => this.#do(() => this.#redis.bffIndex(k, id, ttl))));
  }

  async #unindex(id: string, index: string[]): Promise<void> {
    await Promise.all(index.map((k) => this.#do(() => this.#redis.srem(k, id))));
  }

  async #do<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreUnavailableError('redis command failed', { cause: err });
    }
  }

  /**
   * Lock across instances: a SET NX PX key with a short lease, renewed while its holder works, so an instance
   * that died frees it within one lease and a slow live holder keeps it (up to holdMs). Waiters in this
   * process queue locally first so only one of them polls Redis; waitMs bounds the whole wait, local and
   * remote, and outlasts a dead holder's lease. The holder counts its lease from just before the command that
   * set or renewed it (Redis counts from a little later), and takes itself for lost once that time is up
   * without a confirmed renewal, or as soon as a renewal finds the key gone or someone else's.
   */
  lock(): SessionLock {
    const local = new MemorySessionLock();
    return {
      withLock: <T>(id: string, fn: (signal: AbortSignal) => Promise<T>, opts: LockOptions = {}) => {
        const waitMs = opts.waitMs ?? DEFAULT_LOCK_WAIT_MS;
        const holdMs = opts.holdMs ?? DEFAULT_LOCK_HOLD_MS;
        const leaseMs = opts.leaseMs ?? DEFAULT_LOCK_LEASE_MS;
        const deadline = Date.now() + waitMs;
        // The remote hold enforces holdMs itself; the local one only has to outlast the remote wait plus it.
        return local.withLock(id, () => this.#holdRemote(id, fn, deadline, leaseMs, holdMs), { waitMs, holdMs: waitMs + holdMs + leaseMs });
      },
    };
  }

  async #holdRemote<T>(id: string, fn: (signal: AbortSignal) => Promise<T>, deadline: number, leaseMs: number, holdMs: number): Promise<T> {
    const key = this.#lockKey(id);
    const token = randomBytes(16).toString('base64url');
    const retryAfter = Math.ceil(leaseMs / 1000);
    let validUntil: number;
    for (;;) {
      const sentAt = Date.now();
      const ok = await this.#do(() => this.#redis.set(key, token, 'PX', leaseMs, 'NX'));
      if (ok === 'OK') {
        validUntil = sentAt + leaseMs;
        break;
      }
      if (Date.now() >= deadline) throw new LockTimeoutError('timed out waiting for the session lock', retryAfter);
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    const hold = new LockHold();
    hold.loseAfter(holdMs, undefined, retryAfter);
    let expiry = hold.loseAfter(validUntil - Date.now(), 'its lease ran out before a renewal was confirmed', retryAfter);
    let renewing = false;
    const renew = async (): Promise<void> => {
      if (renewing || hold.signal.aborted) return;
      renewing = true;
      const sentAt = Date.now();
      try {
        const extended = await this.#redis.bffExtend(key, token, leaseMs);
        if (hold.signal.aborted) return;
        if (extended !== 1) return hold.lose('its key expired or was taken over', retryAfter);
        validUntil = sentAt + leaseMs;
        clearTimeout(expiry);
        expiry = hold.loseAfter(validUntil - Date.now(), 'its lease ran out before a renewal was confirmed', retryAfter);
      } catch {
        // Redis unreachable or slow: try again on the next tick; the expiry timer decides when it is too late.
      } finally {
        renewing = false;
      }
    };
    const renewal = setInterval(() => void renew(), Math.max(10, Math.floor(leaseMs / LOCK_RENEWALS_PER_LEASE)));
    renewal.unref();
    try {
      return await hold.run(fn);
    } finally {
      clearInterval(renewal);
      clearTimeout(expiry);
      // Also after a lost hold: a holder past holdMs still owns the key and frees it for the next waiter now.
      // When Redis is unreachable the lease frees the lock instead.
      await this.#redis.bffRelease(key, token).catch(() => undefined);
    }
  }
}

/** Where the store finds Redis: RedisStoreConfig, or just a URL and a prefix (one server). */
export type RedisConnection = Pick<RedisStoreConfig, 'url' | 'keyPrefix'> & Partial<Pick<RedisStoreConfig, 'mode'>> & { nodes?: string[]; name?: string };

// Fail fast while disconnected: a request gets 503 store_unavailable instead of waiting in a queue; a server
// that accepts connections but does not answer (overloaded, frozen) must not hang requests either.
const FAIL_FAST: RedisOptions = { maxRetriesPerRequest: 1, connectTimeout: COMMAND_TIMEOUT_MS, commandTimeout: COMMAND_TIMEOUT_MS };

/** host, port, credentials and TLS of a redis:// or rediss:// URL (already validated by the config). */
function endpoint(text: string): { host: string; port: number; auth: Pick<RedisOptions, 'username' | 'password' | 'tls'> } {
  const url = new URL(text);
  const auth: Pick<RedisOptions, 'username' | 'password' | 'tls'> = {};
  if (url.username) auth.username = decodeURIComponent(url.username);
  if (url.password) auth.password = decodeURIComponent(url.password);
  if (url.protocol === 'rediss:') auth.tls = { servername: url.hostname };
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 6379), auth };
}

/**
 * The client for a mode. single: the URL. sentinel: the primary named `name`, asked of the Sentinels in
 * `nodes` (their URLs' credentials and TLS apply to the Sentinels and to the primary alike); after a
 * failover the client reconnects to the promoted replica. cluster: `nodes` are seeds, the rest is discovered;
 * after a failover the client follows the new slot map.
 */
export function redisClient(config: RedisConnection): RedisClient {
  const mode = config.mode ?? 'single';
  if (mode === 'single') return new Redis(config.url, { lazyConnect: true, enableOfflineQueue: false, ...FAIL_FAST });
  const nodes = (config.nodes?.length ? config.nodes : [config.url]).map(endpoint);
  const auth = nodes[0]!.auth;
  if (mode === 'sentinel') {
    if (!config.name) throw new Error('a Sentinel store needs the name of its primary');
    return new Redis({
      lazyConnect: true,
      enableOfflineQueue: false,
      ...FAIL_FAST,
      ...auth,
      sentinels: nodes.map(({ host, port }) => ({ host, port })),
      name: config.name,
      ...(auth.username ? { sentinelUsername: auth.username } : {}),
      ...(auth.password ? { sentinelPassword: auth.password } : {}),
      ...(auth.tls ? { enableTLSForSentinelMode: true, sentinelTLS: auth.tls } : {}),
      // No failoverDetector: on a Sentinel's +switch-master it disconnects the client, and when that lands while the
      // client is between reconnect attempts, no further attempt is scheduled and the client stays down. Every
      // reconnect asks the Sentinels for the primary, and createRedisStore's watch (sentinel-watch.ts) makes a
      // client that stayed connected to the old primary reconnect.
      retryStrategy: (times) => Math.min(times * 100, 1_000),
      // A Sentinel that accepts the connection but does not answer (frozen) is passed over for the next one
      // instead of holding the reconnect forever.
      sentinelCommandTimeout: SENTINEL_TIMEOUT_MS,
      // A demoted primary answers READONLY: reconnect, which asks the Sentinels for the new one.
      reconnectOnError: (err) => err.message.startsWith('READONLY'),
    });
  }
  const options: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    redisOptions: { ...FAIL_FAST, ...auth },
    // Follow a failover (MOVED, CLUSTERDOWN while a replica takes over) a few times within one request, then
    // give up with an error (503) rather than hold the request.
    maxRedirections: 6,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: COMMAND_TIMEOUT_MS,
    clusterRetryStrategy: (times) => Math.min(times * 100, 2_000),
  };
  return new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    options,
  );
}

/**
 * Connects to Redis for the session store: one server, Sentinel or Cluster (config.mode). A Redis that is
 * down at start-up is not fatal: the client keeps reconnecting, /readyz reports the store unreachable
 * meanwhile, and requests get 503 store_unavailable.
 */
export async function createRedisStore(config: RedisConnection, logger: Logger): Promise<{ store: RedisSessionStore; lock: SessionLock }> {
  const redis = redisClient(config);
  // Log transitions, not every failed reconnect attempt.
  let reachable = true;
  redis.on('error', (err: Error) => {
    if (reachable) logger.warn({ reason: err.message, mode: config.mode ?? 'single' }, 'redis unreachable; reconnecting');
    reachable = false;
  });
  redis.on('ready', () => {
    if (!reachable) logger.info({ mode: config.mode ?? 'single' }, 'redis reachable again');
    reachable = true;
  });
  try {
    await redis.connect();
  } catch {
    // Already logged by the error listener; the client keeps retrying.
  }
  const store =
    config.mode === 'sentinel' && redis instanceof Redis
      ? new SentinelSessionStore(redis, config.keyPrefix, logger)
      : new RedisSessionStore(redis, config.keyPrefix, logger);
  // ioredis stops reconnecting in a few corner cases; a session store must not stay down while Redis is up again.
  redis.on('end', () => {
    if (store.closed) return;
    logger.warn({ mode: config.mode ?? 'single' }, 'redis connection ended; connecting again');
    setTimeout(() => {
      if (!store.closed) redis.connect().catch(() => undefined);
    }, 1_000).unref();
  });
  return { store, lock: store.lock() };
}

/** Behind Sentinel: the store, and the watch that makes its client follow a failover at once; closed together. */
class SentinelSessionStore extends RedisSessionStore {
  readonly #watch: FailoverWatch;

  constructor(redis: Redis, keyPrefix: string, logger: Logger) {
    super(redis, keyPrefix, logger);
    this.#watch = followFailovers(redis, logger);
  }

  override async close(): Promise<void> {
    this.#watch.close();
    await super.close();
  }
}
