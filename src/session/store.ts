/**
 * Where sealed sessions live. Values are opaque (already encrypted); keys are hashes of cookie values.
 * Implementations: memory (lru-cache, one instance) and Redis (shared by several instances).
 */
export interface StoredSession {
  /** The sealed SessionData. */
  sealed: string;
  /** Epoch ms of the last request seen; kept apart from `sealed` so touching never overwrites token updates. */
  lastSeenAt: number;
}

export interface SessionStore {
  get(id: string): Promise<StoredSession | undefined>;
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
  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Mutual exclusion per session for token updates (refresh, Altinn exchange), so that a rotated refresh
 * token is stored before anyone else may refresh. Memory: in-process; Redis: across instances.
 */
export interface SessionLock {
  /** Runs fn while holding the session's lock; waits (bounded by waitMs) for another holder to finish. */
  withLock<T>(id: string, fn: () => Promise<T>, opts?: { waitMs?: number; leaseMs?: number }): Promise<T>;
}

// Defined with the other domain errors, so the HTTP edge maps them to problems in one place.
export { LockTimeoutError, StoreUnavailableError } from '../errors.js';
