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
  /**
   * The record's fencing value, in clear beside the sealed data so the store itself can compare it: a hash of
   * the refresh token the record holds (see SessionManager's `versionOf`). Undefined for a record stored by an
   * earlier release, which any conditional write accepts once.
   */
  version?: string | undefined;
}

/**
 * What a conditional write found. `written`: the record held the expected version (or already the new one: a
 * retry of a write that landed) and now holds the new one. `gone`: no record (ended meanwhile). `changed`: the
 * record holds another version — someone else rotated its tokens — and was left alone.
 */
export type WriteOutcome = 'written' | 'gone' | 'changed';

/**
 * What a claim found (see SessionStore.claim). `held`: another holder's claim is alive, or was seen lapsed less
 * than the grace ago — that holder may have redeemed the refresh token and not yet written the rotated one; ask
 * again after `retryInMs`.
 */
export type ClaimOutcome = { state: 'claimed' } | { state: 'gone' } | { state: 'changed' } | { state: 'held'; retryInMs: number };

/** How a claim lives: its holder renews it within `ttlMs`; a lapsed one passes on once seen lapsed for `graceMs`. */
export interface ClaimTiming {
  ttlMs: number;
  graceMs: number;
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
  /** Writes the whole record (a new session) and (re)indexes it under `indexKeys` (e.g. the ID-porten sid). */
  set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void>;
  /**
   * Compare-and-set, decided by the store itself: writes the record only while it exists and holds version
   * `expected`, or holds `value.version` already (the same write again, after one whose answer was lost). So a
   * token update never resurrects a session destroyed meanwhile (a logout on another instance) and never puts
   * back a refresh token that another holder rotated. A write that changes the version (or is made by
   * `holder`) also lifts the claim on the record.
   */
  update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], expected: string, holder: string): Promise<WriteOutcome>;
  /**
   * Marks the record's version as being redeemed by `holder` (a refresh about to present its refresh token), while
   * it holds `expected`; the same holder claiming again renews it. Another holder's claim is `held` while it was
   * renewed within `ttlMs`, and after that until the store has seen it lapsed for `graceMs` (all by the store's
   * clock): a holder cut off from the store (a pause, a dropped connection) may hold the rotated token and write
   * it as soon as the store answers. Then it passes to the asker: its holder died, or lost the token.
   */
  claim(id: string, expected: string, holder: string, timing: ClaimTiming): Promise<ClaimOutcome>;
  /** Lifts holder's claim, if it is still the record's (the refresh token was not redeemed after all). */
  unclaim(id: string, holder: string): Promise<void>;
  /** Updates only lastSeenAt and the expiry; a no-op when the record is gone. */
  touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void>;
  /**
   * Deletes the record; with `expected`, only while it holds that version (`changed` otherwise: its tokens were
   * rotated since the caller read it, and the caller must look again). `gone` when there was none.
   */
  delete(id: string, expected?: string): Promise<WriteOutcome>;
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
   * A small value every instance of this store sees until ttlMs has passed (an upstream's DPoP nonce, by its origin),
   * replacing the one before. Not a session: no index, no fencing.
   */
  putShared(key: string, value: string, ttlMs: number): Promise<void>;
  /** The value putShared last stored under key, while it lives. */
  getShared(key: string): Promise<string | undefined>;
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
 * Mutual exclusion per session for token updates (refresh, Altinn exchange), so that concurrent requests share
 * one refresh. Memory: in-process; Redis: across instances. An optimisation, not what keeps a token safe: that is
 * the store's compare-and-set (update) and claim, which hold when a lease lapses under a holder that lives on.
 *
 * fn receives an AbortSignal that aborts, with a LockLostError as its reason, as soon as the lock may belong to
 * someone else: its lease could not be renewed in time (Redis unreachable or frozen, the key expired or was taken
 * over), or fn ran past holdMs. withLock then rejects with that LockLostError at once, without waiting for fn, so
 * the caller is answered and the next waiter can go. What fn still writes is decided by the store's conditions,
 * not by the signal: a refresh that holds a rotated token writes it (or keeps it) all the same.
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
