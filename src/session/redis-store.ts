import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { LockTimeoutError, StoreUnavailableError, type SessionLock, type SessionStore, type StoredSession } from './store.js';
import { MemorySessionLock } from './memory-store.js';

const COMMAND_TIMEOUT_MS = 2_000;
const LOCK_POLL_MS = 25;

// Touch only when the record still exists, so a touch never resurrects a destroyed session.
const TOUCH = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 't', ARGV[1]); redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1 end return 0`;
// Release only our own lock (the value is a random token per holder).
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Shared store for several gateway instances. A session is a hash {d: sealed data, t: last seen};
 * index sets (sid, sub) list session ids; locks are SET NX PX keys with a lease.
 */
export class RedisSessionStore implements SessionStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.#redis = redis;
    this.#prefix = keyPrefix;
  }

  #key(id: string): string {
    return `${this.#prefix}s:${id}`;
  }

  #indexKey(key: string): string {
    return `${this.#prefix}i:${key}`;
  }

  async get(id: string): Promise<StoredSession | undefined> {
    const [sealed, lastSeen] = await this.#do(() => this.#redis.hmget(this.#key(id), 'd', 't'));
    if (!sealed || !lastSeen) return undefined;
    return { sealed, lastSeenAt: Number(lastSeen) };
  }

  async set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void> {
    if (ttlMs <= 0) return this.delete(id);
    const ttl = Math.ceil(ttlMs);
    const multi = this.#redis.multi().hset(this.#key(id), 'd', value.sealed, 't', String(value.lastSeenAt)).pexpire(this.#key(id), ttl);
    for (const key of indexKeys) {
      const k = this.#indexKey(key);
      // The index lives at least as long as its longest-lived member.
      multi.sadd(k, id).pexpire(k, ttl, 'NX').pexpire(k, ttl, 'GT');
    }
    await this.#do(() => multi.exec());
  }

  async touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) return this.delete(id);
    await this.#do(() => this.#redis.eval(TOUCH, 1, this.#key(id), String(lastSeenAt), String(Math.ceil(ttlMs))));
  }

  async delete(id: string): Promise<void> {
    await this.#do(() => this.#redis.del(this.#key(id)));
  }

  async findByIndex(indexKey: string): Promise<string[]> {
    return this.#do(() => this.#redis.smembers(this.#indexKey(indexKey)));
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

  /** Lock across instances; waiters in this process queue locally first so only one polls Redis. */
  lock(): SessionLock {
    const local = new MemorySessionLock();
    const redis = this.#redis;
    const lockKey = (id: string) => `${this.#prefix}l:${id}`;
    const run = <T>(fn: () => Promise<T>) => this.#do(fn);
    return {
      withLock: <T>(id: string, fn: () => Promise<T>, opts: { waitMs?: number; leaseMs?: number } = {}) =>
        local.withLock(id, async () => {
          const token = randomBytes(16).toString('base64url');
          const leaseMs = opts.leaseMs ?? 30_000;
          const deadline = Date.now() + (opts.waitMs ?? 15_000);
          for (;;) {
            const ok = await run(() => redis.set(lockKey(id), token, 'PX', leaseMs, 'NX'));
            if (ok === 'OK') break;
            if (Date.now() >= deadline) throw new LockTimeoutError();
            await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
          }
          try {
            return await fn();
          } finally {
            await run(() => redis.eval(RELEASE, 1, lockKey(id), token)).catch(() => undefined);
          }
        }, opts),
    };
  }
}

export async function createRedisStore(config: { url: string; keyPrefix: string }, logger: Logger): Promise<{ store: RedisSessionStore; lock: SessionLock }> {
  const redis = new Redis(config.url, {
    lazyConnect: true,
    // Fail fast while disconnected: a request gets 503 store_unavailable instead of hanging.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: COMMAND_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
  });
  redis.on('error', (err: Error) => logger.warn({ reason: err.message }, 'redis error'));
  try {
    await redis.connect();
  } catch (err) {
    logger.warn({ reason: (err as Error).message }, 'redis not reachable at start; will keep retrying');
  }
  const store = new RedisSessionStore(redis, config.keyPrefix);
  return { store, lock: store.lock() };
}
