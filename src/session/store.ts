/**
 * Where sealed sessions live. Values are opaque (already encrypted); keys are hashes of cookie values.
 * Implementations: memory (lru-cache, one instance) and Redis (shared by several instances).
 */
export interface StoredSession {
  /**
   * The sealed SessionData (KeyRing.sealBytes; a record stored by an earlier release holds its seal() text).
   * Shared, not copied, between the store and its callers: nobody changes it in place.
   */
  sealed: Buffer;
  /** Epoch ms of the last request seen; kept apart from `sealed` so touching never overwrites token updates. */
  lastSeenAt: number;
}

/**
 * `exact`: read what the store holds now. `tracked`: the same read, and its answer is kept for `kept` while the
 * store would hear of any change to it (Redis client tracking; see TrackedReads).
 */
export type ReadMode = 'exact' | 'tracked';

export interface SessionStore {
  get(id: string, mode?: ReadMode): Promise<StoredSession | undefined>;
  /**
   * The answer of a tracked read of this id, while nothing has changed it as far as this instance has heard:
   * it can lag a change made elsewhere by the delivery of that change's invalidation, and never by more than a
   * second. Only for a request's lookup; reads under the session lock and every decision to end a session
   * read the store. The memory store holds the record itself in this process and answers with it (an exact read
   * without a promise); a store that keeps nothing leaves it out.
   */
  kept?(id: string): StoredSession | undefined;
  /** Writes the whole record and (re)indexes it under `indexKeys` (e.g. the ID-porten sid). */
  set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void>;
  /**
   * Like set, but only while the record exists, so a token update never resurrects a session that was
   * destroyed meanwhile (a logout on another instance). Resolves false when the record was gone.
   */
  update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<boolean>;
  /** Updates only lastSeenAt and the expiry; a no-op when the record is gone. */
  touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void>;
  delete(id: string): Promise<void>;
  /** Session ids indexed under this key. May include ids whose record has since expired. */
  findByIndex(indexKey: string): Promise<string[]>;
  /**
   * Set-if-absent for a one-time value (a logout token's jti), shared by every instance of this store until
   * ttlMs has passed. Resolves true when the key was new, false when it was remembered already.
   */
  remember(key: string, ttlMs: number): Promise<boolean>;
  /** Whether remember(key) was called within its ttl. */
  remembered(key: string): Promise<boolean>;
  /**
   * Throws when the store cannot be reached or cannot run what sessions need (Redis: a script over the keys
   * of one session, so a layout that would fail with CROSSSLOT on a cluster shows as not ready).
   */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Bounds of one withLock call. Defaults: DEFAULT_LOCK_WAIT_MS, DEFAULT_LOCK_HOLD_MS, and the store's own lease. */
export interface LockOptions {
  /** How long to wait for another holder, in total; then LockTimeoutError and fn never runs. */
  waitMs?: number;
  /** How long fn may hold the lock; past it the lock is freed for the next waiter and this hold is lost. */
  holdMs?: number;
  /**
   * Shared locks only (Redis): the lease on the lock key, renewed while the holder works, so an instance that
   * died while holding the lock frees it within one lease.
   */
  leaseMs?: number;
}

/**
 * Mutual exclusion per session for token updates (refresh, Altinn exchange), so that a rotated refresh
 * token is stored before anyone else may refresh. Memory: in-process; Redis: across instances.
 *
 * Fencing: fn receives an AbortSignal that aborts, with a LockLostError as its reason, as soon as the lock
 * may belong to someone else: its lease could not be renewed in time (Redis unreachable or frozen, the key
 * expired or was taken over), or fn ran past holdMs. A holder checks it (`signal.throwIfAborted()`) right
 * before every write that needs the lock; SessionManager.update does so for every token update made under
 * SessionManager.withLock. withLock itself then rejects with that LockLostError at once, without waiting
 * for fn, so the caller is answered and the next waiter can go.
 */
export interface SessionLock {
  /** Runs fn while holding the session's lock; waits (bounded by waitMs) for another holder to finish. */
  withLock<T>(id: string, fn: (signal: AbortSignal) => Promise<T>, opts?: LockOptions): Promise<T>;
}

/**
 * Waiters outlast a holder that died (its lease is much shorter) and a live holder's slowest ID-porten round
 * trip (httpTimeout, 10 s by default), then give up rather than hold a request forever.
 */
export const DEFAULT_LOCK_WAIT_MS = 12_000;
/**
 * Longer than any work a holder does under the lock (an ID-porten refresh within its 10 s default timeout, an
 * Altinn exchange within 15 s), so only a holder that hangs loses the lock this way.
 */
export const DEFAULT_LOCK_HOLD_MS = 20_000;

// Defined with the other domain errors, so the HTTP edge maps them to problems in one place.
export { LockLostError, LockTimeoutError, StoreUnavailableError } from '../errors.js';
