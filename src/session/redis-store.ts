import { randomBytes } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisStoreConfig } from '../config/types.js';
import {
  DEFAULT_LOCK_HOLD_MS,
  DEFAULT_LOCK_WAIT_MS,
  LockTimeoutError,
  StoreUnavailableError,
  type ClaimOutcome,
  type ClaimTiming,
  type LockOptions,
  type ReadMode,
  type SessionLock,
  type SessionStore,
  type StoredSession,
  type WriteOutcome,
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
 *   P{s:<key>}       a shared value with a TTL (an upstream's DPoP nonce)
 *
 * Every key of one session carries the hash tag {<id>}, so they share a slot; an index key is its own slot.
 * No script ever touches keys of two slots: a script reaches only the keys it declares in KEYS, all of one
 * session (or one index), and what spans a session and its indexes is done as separate commands, in an order
 * that never leaves a live session unfindable by its indexes (add to the index first, drop from it last).
 * An index may therefore list an id whose record is gone for a moment (or after a failure between the
 * steps); findByIndex drops such members on the way. A keyPrefix with braces of its own puts every key in
 * the prefix's slot, which is also correct (only less spread over a cluster).
 */

// The record's fields beyond the sealed data: v, its version (the fencing value writes compare); c, the holder
// redeeming that version's refresh token; cb, that holder's last renewal and cs, when an asker first found it
// lapsed (both by the store's clock, ms). A record without v was stored by an earlier release: a conditional
// write accepts it once.

// ARGV: sealed, last seen, index keys (JSON), ttl, conditional ('1': only over the expected version of an
// existing record), expected version, new version, writing holder. A write that changes the version, or comes
// from the claim's holder, lifts the claim. Returns {1 written | 0 gone | 2 changed, the index keys it had or ''}.
const WRITE = `
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[5] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
  if v and v ~= ARGV[6] and v ~= ARGV[7] then return {2, ''} end
end
local old = redis.call('HGET', KEYS[1], 'i') or ''
if ARGV[5] == '0' or v ~= ARGV[7] or redis.call('HGET', KEYS[1], 'c') == ARGV[8] then redis.call('HDEL', KEYS[1], 'c', 'cb', 'cs') end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 't', ARGV[2], 'i', ARGV[3], 'v', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, old}`;

// ARGV: expected version, holder, ttl, grace (ms). Returns {1 claimed | 0 gone | 2 changed | 3 held, ms to
// wait}. The same rule as the memory store's claimHeld: another holder's claim holds while renewed within the
// ttl, then until it has been seen lapsed for the grace.
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local v = redis.call('HGET', KEYS[1], 'v')
if v and v ~= ARGV[1] then return {2, 0} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local c = redis.call('HGET', KEYS[1], 'c')
if c and c ~= ARGV[2] then
  local ttl, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
  local beat = tonumber(redis.call('HGET', KEYS[1], 'cb') or '0') or 0
  if now - beat < ttl then return {3, ttl - (now - beat)} end
  local seen = tonumber(redis.call('HGET', KEYS[1], 'cs') or '')
  if not seen or seen < beat then
    redis.call('HSET', KEYS[1], 'cs', now)
    return {3, grace}
  end
  if now - seen < grace then return {3, grace - (now - seen)} end
end
redis.call('HSET', KEYS[1], 'c', ARGV[2], 'cb', now)
redis.call('HDEL', KEYS[1], 'cs')
return {1, 0}`;

const UNCLAIM = `if redis.call('HGET', KEYS[1], 'c') == ARGV[1] then redis.call('HDEL', KEYS[1], 'c', 'cb', 'cs') end return 1`;

// Only when the record still exists, so a touch never resurrects a destroyed session. Returns its index
// keys (the caller extends them with the record: an active session stays findable by sid), or nil.
const TOUCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'i') or '[]'`;

// ARGV: conditional ('1': only over the expected version), expected version. Returns {1 deleted | 0 gone |
// 2 changed, the index keys it had (the caller removes the id from them) or ''}.
const DELETE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '1' and v and v ~= ARGV[2] then return {2, ''} end
local index = redis.call('HGET', KEYS[1], 'i') or ''
redis.call('DEL', KEYS[1])
return {1, index}`;

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
  bffWrite(key: string, sealed: Buffer, lastSeenAt: Arg, index: string, ttlMs: Arg, conditional: string, expected: string, version: string, holder: string): Promise<[number, string]>;
  bffClaim(key: string, expected: string, holder: string, ttlMs: Arg, graceMs: Arg): Promise<[number, number]>;
  bffUnclaim(key: string, holder: string): Promise<number>;
  bffTouch(key: string, lastSeenAt: Arg, ttlMs: Arg): Promise<string | null>;
  bffDelete(key: string, conditional: string, expected: string): Promise<[number, string]>;
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
  redis.defineCommand('bffClaim', { lua: CLAIM, numberOfKeys: 1 });
  redis.defineCommand('bffUnclaim', { lua: UNCLAIM, numberOfKeys: 1 });
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

/** A write script's outcome as Redis answers it (see WRITE, CLAIM, DELETE). */
const OUTCOMES: Record<number, WriteOutcome> = { 0: 'gone', 1: 'written', 2: 'changed' };

export interface RedisStoreOptions {
  logger?: Logger | undefined;
  /**
   * Behind Sentinel: a token update or claim is answered only once this many replicas have it (WAIT on the
   * connection that wrote it), so a failover cannot take back a rotated refresh token; if they do not confirm
   * within `replicaAckMs`, it fails as the store being unavailable (it may stand on the primary: every write is
   * safe to repeat, and a kept token update is). A new session or a delete waits as long for them, and stands
   * without them (logged): a primary left with no replica still lets users log in and out.
   */
  replicas?: number;
  replicaAckMs?: number;
}

const UNCONFIRMED_LOG_MS = 10_000;

/** How long a write waits for a replica's confirmation behind Sentinel, by default. */
export const DEFAULT_REPLICA_ACK_MS = 500;

/**
 * Shared store for several gateway instances. Every failure to reach Redis surfaces as StoreUnavailableError
 * (the gateway answers 503 store_unavailable) instead of hanging the request.
 */
export class RedisSessionStore implements SessionStore {
  readonly #redis: StoreRedis;
  readonly #prefix: string;
  /** One server or a Sentinel-named primary; a cluster's reads all go to Redis (tracking is per node there). */
  readonly #tracked: TrackedReads | undefined;
  readonly #replicas: number;
  readonly #replicaAckMs: number;
  readonly #logger: Logger | undefined;
  /** When an unconfirmed write was last logged (at most one line per UNCONFIRMED_LOG_MS). */
  #unconfirmedLoggedAt = 0;
  #closed = false;

  constructor(redis: RedisClient, keyPrefix: string, opts: RedisStoreOptions = {}) {
    this.#redis = withCommands(redis);
    this.#prefix = keyPrefix;
    this.#tracked = redis instanceof Redis ? new TrackedReads(redis, opts.logger) : undefined;
    this.#replicas = opts.replicas ?? 0;
    this.#replicaAckMs = opts.replicaAckMs ?? DEFAULT_REPLICA_ACK_MS;
    this.#logger = opts.logger;
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
    const [sealed, lastSeen, version] = await this.#do(() => this.#redis.hmgetBuffer(key, 'd', 't', 'v'));
    if (!sealed || !lastSeen) return undefined;
    return { sealed, lastSeenAt: Number(lastSeen.toString()), version: version?.toString() };
  }

  async set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void> {
    if (ttlMs <= 0) {
      await this.delete(id);
      return;
    }
    await this.#write(id, value, ttlMs, indexKeys, undefined);
  }

  async update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], expected: string, holder: string): Promise<WriteOutcome> {
    if (ttlMs <= 0) return (await this.delete(id, expected)) === 'changed' ? 'changed' : 'gone';
    return this.#write(id, value, ttlMs, indexKeys, { expected, holder });
  }

  async #write(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], condition: { expected: string; holder: string } | undefined): Promise<WriteOutcome> {
    const ttl = Math.ceil(ttlMs);
    const index = [...new Set(indexKeys.map((k) => this.indexKey(k)))];
    // Index first: a session is never stored without being findable by its sid (logout must reach it).
    await this.#extendIndexes(id, index, ttl);
    // Right before the write goes out: a read sent after it sees the new record, one sent before is not kept.
    this.#tracked?.forget(this.key(id));
    const [written, old] = await this.#confirmed(
      'bffWrite',
      [this.key(id), value.sealed, value.lastSeenAt, JSON.stringify(index), ttl, condition ? '1' : '0', condition?.expected ?? '', value.version ?? '', condition?.holder ?? ''],
      condition !== undefined,
    );
    const outcome = OUTCOMES[written] ?? 'changed';
    // Gone meanwhile (destroyed by a logout): take back the index entries made above. A changed record is
    // another writer's, indexed by it.
    if (outcome === 'gone') await this.#unindex(id, index);
    if (outcome !== 'written') return outcome;
    await this.#unindex(id, indexList(old).filter((k) => !index.includes(k)));
    return 'written';
  }

  async claim(id: string, expected: string, holder: string, timing: ClaimTiming): Promise<ClaimOutcome> {
    this.#tracked?.forget(this.key(id));
    const [state, waitMs] = await this.#confirmed('bffClaim', [this.key(id), expected, holder, Math.ceil(timing.ttlMs), Math.ceil(timing.graceMs)], true);
    if (state === 3) return { state: 'held', retryInMs: Number(waitMs) };
    const outcome = OUTCOMES[state] ?? 'changed';
    return { state: outcome === 'written' ? 'claimed' : outcome };
  }

  async unclaim(id: string, holder: string): Promise<void> {
    this.#tracked?.forget(this.key(id));
    await this.#do(() => this.#redis.bffUnclaim(this.key(id), holder));
  }

  async touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) {
      await this.delete(id);
      return;
    }
    this.#tracked?.forget(this.key(id));
    const ttl = Math.ceil(ttlMs);
    const index = await this.#do(() => this.#redis.bffTouch(this.key(id), lastSeenAt, ttl));
    if (index !== null) await this.#extendIndexes(id, indexList(index), ttl);
  }

  async delete(id: string, expected?: string): Promise<WriteOutcome> {
    this.#tracked?.forget(this.key(id));
    const [deleted, had] = await this.#confirmed('bffDelete', [this.key(id), expected === undefined ? '0' : '1', expected ?? ''], false);
    const outcome = OUTCOMES[deleted] ?? 'changed';
    if (outcome === 'written') await this.#unindex(id, indexList(had));
    return outcome;
  }

  /**
   * Runs a write script. Behind Sentinel it is answered once enough replicas confirm everything this connection
   * wrote so far (the script and the index commands before it): WAIT, pipelined on the same connection. Unconfirmed
   * in time, a `required` write fails; another stands, logged.
   */
  async #confirmed<K extends 'bffWrite' | 'bffClaim' | 'bffDelete'>(name: K, args: Parameters<StoreCommands[K]>, required: boolean): Promise<Awaited<ReturnType<StoreCommands[K]>>> {
    type Answer = Awaited<ReturnType<StoreCommands[K]>>;
    const run = (target: object) => (target as Record<K, (...a: unknown[]) => unknown>)[name](...args);
    if (this.#replicas === 0) return this.#do(() => run(this.#redis) as Promise<Answer>);
    const pipeline = this.#redis.pipeline();
    run(pipeline);
    pipeline.wait(this.#replicas, this.#replicaAckMs);
    const answers = await this.#do(() => pipeline.exec());
    const [scriptError, value] = answers?.[0] ?? [new Error('no answer')];
    if (scriptError) throw new StoreUnavailableError('redis command failed', { cause: scriptError });
    const [waitError, acknowledged] = answers?.[1] ?? [new Error('no answer')];
    if (waitError || Number(acknowledged) < this.#replicas) {
      const message = `a session write was not confirmed by ${this.#replicas} replica(s) within ${this.#replicaAckMs} ms`;
      if (required) throw new StoreUnavailableError(message, { cause: waitError ?? undefined });
      if (Date.now() - this.#unconfirmedLoggedAt >= UNCONFIRMED_LOG_MS) {
        this.#unconfirmedLoggedAt = Date.now();
        this.#logger?.warn({ replicas: this.#replicas, acknowledged: Number(acknowledged ?? 0) }, `${message}; it stands on the primary`);
      }
    }
    return value as Answer;
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

  async putShared(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#do(() => this.#redis.set(`${this.#prefix}{s:${key}}`, value, 'PX', Math.max(1, Math.ceil(ttlMs))));
  }

  async getShared(key: string): Promise<string | undefined> {
    return (await this.#do(() => this.#redis.get(`${this.#prefix}{s:${key}}`))) ?? undefined;
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
      let ok: string | null;
      try {
        ok = await this.#do(() => this.#redis.set(key, token, 'PX', leaseMs, 'NX'));
      } catch (err) {
        // A SET that timed out may still be carried out when Redis answers again (it waits on the connection): the
        // release, sent after it on the same connection, frees the lock this waiter will not hold.
        void this.#redis.bffRelease(key, token).catch(() => undefined);
        throw err;
      }
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
export type RedisConnection = Pick<RedisStoreConfig, 'url' | 'keyPrefix'> &
  Partial<Pick<RedisStoreConfig, 'mode'>> & { nodes?: string[]; name?: string; replicaAcks?: number; replicaAckTimeoutMs?: number };

// Fail fast while disconnected: a request gets 503 store_unavailable instead of waiting in a queue; a server
// that accepts connections but does not answer (overloaded, frozen) must not hang requests either.
const FAIL_FAST: RedisOptions = { maxRetriesPerRequest: 1, connectTimeout: COMMAND_TIMEOUT_MS, commandTimeout: COMMAND_TIMEOUT_MS };

/**
 * Reconnect attempts come at most this far apart, however long Redis was away: what waits for it (kept token
 * updates, back-channel logouts, every 200-250 ms) goes through within about a second of its return. An attempt on
 * a server that is down costs a refused connection.
 */
const RECONNECT_MAX_DELAY_MS = 500;
const reconnectDelay = (times: number): number => Math.min(times * 50, RECONNECT_MAX_DELAY_MS);

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
  if (mode === 'single') return new Redis(config.url, { lazyConnect: true, enableOfflineQueue: false, ...FAIL_FAST, retryStrategy: reconnectDelay });
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
      retryStrategy: reconnectDelay,
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
    clusterRetryStrategy: reconnectDelay,
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
  // Only behind Sentinel is a replica known to be there to confirm a write (WAIT on a lone server would only time out).
  const replicas = config.mode === 'sentinel' ? (config.replicaAcks ?? 1) : 0;
  const options = { logger, replicas, replicaAckMs: config.replicaAckTimeoutMs ?? DEFAULT_REPLICA_ACK_MS };
  const store =
    config.mode === 'sentinel' && redis instanceof Redis
      ? new SentinelSessionStore(redis, config.keyPrefix, options)
      : new RedisSessionStore(redis, config.keyPrefix, options);
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

  constructor(redis: Redis, keyPrefix: string, options: RedisStoreOptions & { logger: Logger }) {
    super(redis, keyPrefix, options);
    this.#watch = followFailovers(redis, options.logger);
  }

  override async close(): Promise<void> {
    this.#watch.close();
    await super.close();
  }
}
