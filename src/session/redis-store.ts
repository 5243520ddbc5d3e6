import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  DEFAULT_LOCK_HOLD_MS,
  DEFAULT_LOCK_WAIT_MS,
  LockTimeoutError,
  StoreUnavailableError,
  type LockOptions,
  type SessionLock,
  type SessionStore,
  type StoredSession,
} from './store.js';
import { LockHold, MemorySessionLock } from './memory-store.js';

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
 * A session is a hash {d: sealed data, t: last seen, i: JSON list of its index keys}; an index (sid, sub) is a
 * set of session ids. The scripts keep both in step atomically. They reach index keys named inside the
 * hash, so they need a single Redis server (or a primary with replicas), not Redis Cluster.
 */

// ARGV[5] = '1': update only an existing record. An index lives as long as its longest-lived member:
// NX gives a fresh set its first expiry, GT only ever extends it.
const SET = `
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[1], 'i')
if old then for _, k in ipairs(cjson.decode(old)) do redis.call('SREM', k, ARGV[1]) end end
local index = {}
for i = 2, #KEYS do index[#index + 1] = KEYS[i] end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 't', ARGV[3], 'i', cjson.encode(index))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
for _, k in ipairs(index) do
  redis.call('SADD', k, ARGV[1])
  redis.call('PEXPIRE', k, ARGV[4], 'NX')
  redis.call('PEXPIRE', k, ARGV[4], 'GT')
end
return 1`;

// Only when the record still exists, so a touch never resurrects a destroyed session. It extends the
// indexes with the record: an active session stays findable by sid long after its first expiry.
const TOUCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local index = redis.call('HGET', KEYS[1], 'i')
if index then for _, k in ipairs(cjson.decode(index)) do
  redis.call('SADD', k, ARGV[1])
  redis.call('PEXPIRE', k, ARGV[3], 'NX')
  redis.call('PEXPIRE', k, ARGV[3], 'GT')
end end
return 1`;

const DELETE = `
local index = redis.call('HGET', KEYS[1], 'i')
if index then for _, k in ipairs(cjson.decode(index)) do redis.call('SREM', k, ARGV[1]) end end
return redis.call('DEL', KEYS[1])`;

// Members whose record expired are dropped on the way (expiry cannot tell the index).
const FIND = `
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then live[#live + 1] = id else redis.call('SREM', KEYS[1], id) end
end
return live`;

// A lock is released or extended only by its holder (the value is a random token per holder).
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

type Arg = string | number;
interface StoreCommands {
  bffSet(...args: Arg[]): Promise<number>;
  bffTouch(key: string, id: string, lastSeenAt: Arg, ttlMs: Arg): Promise<number>;
  bffDelete(key: string, id: string): Promise<number>;
  bffFind(indexKey: string, sessionKeyPrefix: string): Promise<string[]>;
  bffRelease(key: string, token: string): Promise<number>;
  bffExtend(key: string, token: string, leaseMs: Arg): Promise<number>;
}
type StoreRedis = Redis & StoreCommands;

function withCommands(redis: Redis): StoreRedis {
  // defineCommand runs scripts by EVALSHA and reloads them after a Redis restart emptied its script cache.
  redis.defineCommand('bffSet', { lua: SET });
  redis.defineCommand('bffTouch', { lua: TOUCH, numberOfKeys: 1 });
  redis.defineCommand('bffDelete', { lua: DELETE, numberOfKeys: 1 });
  redis.defineCommand('bffFind', { lua: FIND, numberOfKeys: 1 });
  redis.defineCommand('bffRelease', { lua: RELEASE, numberOfKeys: 1 });
  redis.defineCommand('bffExtend', { lua: EXTEND, numberOfKeys: 1 });
  return redis as StoreRedis;
}

/**
 * Shared store for several gateway instances. Every failure to reach Redis surfaces as StoreUnavailableError
 * (the gateway answers 503 store_unavailable) instead of hanging the request.
 */
export class RedisSessionStore implements SessionStore {
  readonly #redis: StoreRedis;
  readonly #prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.#redis = withCommands(redis);
    this.#prefix = keyPrefix;
  }

  #key(id: string): string {
    return `${this.#prefix}s:${id}`;
  }

  #indexKey(key: string): string {
    return `${this.#prefix}i:${key}`;
  }

  #lockKey(id: string): string {
    return `${this.#prefix}l:${id}`;
  }

  async get(id: string): Promise<StoredSession | undefined> {
    const [sealed, lastSeen] = await this.#do(() => this.#redis.hmget(this.#key(id), 'd', 't'));
    if (!sealed || !lastSeen) return undefined;
    return { sealed, lastSeenAt: Number(lastSeen) };
  }

  async set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void> {
    if (ttlMs <= 0) return this.delete(id);
    await this.#write(id, value, ttlMs, indexKeys, false);
  }

  async update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<boolean> {
    if (ttlMs <= 0) return (await this.#do(() => this.#redis.bffDelete(this.#key(id), id))) === 1;
    return this.#write(id, value, ttlMs, indexKeys, true);
  }

  async #write(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], onlyIfPresent: boolean): Promise<boolean> {
    const keys = [this.#key(id), ...new Set(indexKeys.map((k) => this.#indexKey(k)))];
    const written = await this.#do(() =>
      this.#redis.bffSet(keys.length, ...keys, id, value.sealed, value.lastSeenAt, Math.ceil(ttlMs), onlyIfPresent ? '1' : '0'),
    );
    return written === 1;
  }

  async touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) return this.delete(id);
    await this.#do(() => this.#redis.bffTouch(this.#key(id), id, lastSeenAt, Math.ceil(ttlMs)));
  }

  async delete(id: string): Promise<void> {
    await this.#do(() => this.#redis.bffDelete(this.#key(id), id));
  }

  async findByIndex(indexKey: string): Promise<string[]> {
    return this.#do(() => this.#redis.bffFind(this.#indexKey(indexKey), this.#key('')));
  }

  async ping(): Promise<void> {
    await this.#do(() => this.#redis.ping());
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
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

/**
 * Connects to Redis for the session store. A Redis that is down at start-up is not fatal: the client keeps
 * reconnecting, /readyz reports the store unreachable meanwhile, and requests get 503 store_unavailable.
 */
export async function createRedisStore(config: { url: string; keyPrefix: string }, logger: Logger): Promise<{ store: RedisSessionStore; lock: SessionLock }> {
  const redis = new Redis(config.url, {
    lazyConnect: true,
    // Fail fast while disconnected: a request gets 503 store_unavailable instead of waiting in a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: COMMAND_TIMEOUT_MS,
    // A server that accepts connections but does not answer (overloaded, frozen) must not hang requests.
    commandTimeout: COMMAND_TIMEOUT_MS,
  });
  // Log transitions, not every failed reconnect attempt.
  let reachable = true;
  redis.on('error', (err: Error) => {
    if (reachable) logger.warn({ reason: err.message }, 'redis unreachable; reconnecting');
    reachable = false;
  });
  redis.on('ready', () => {
    if (!reachable) logger.info('redis reachable again');
    reachable = true;
  });
  try {
    await redis.connect();
  } catch {
    // Already logged by the error listener; the client keeps retrying.
  }
  const store = new RedisSessionStore(redis, config.keyPrefix);
  return { store, lock: store.lock() };
}
