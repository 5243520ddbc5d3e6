import { LRUCache } from 'lru-cache';
import {
  DEFAULT_LOCK_HOLD_MS,
  DEFAULT_LOCK_WAIT_MS,
  LockLostError,
  LockTimeoutError,
  type ClaimOutcome,
  type ClaimTiming,
  type LockOptions,
  type SessionLock,
  type SessionStore,
  type StoredSession,
  type WriteOutcome,
} from './store.js';

/** The record itself rather than a StoredSession inside a wrapper: one object less per session. */
interface Entry {
  sealed: Buffer;
  lastSeenAt: number;
  version: string | undefined;
  indexKeys: string[];
  /** The holder redeeming this version's refresh token, its last renewal, and when an asker first found it lapsed. */
  claim?: { holder: string; beatAt: number; seenAt?: number | undefined } | undefined;
}

/** Single-instance store: bounded by maxSessions (least recently used go first) with a TTL per record. */
export class MemorySessionStore implements SessionStore {
  readonly #cache: LRUCache<string, Entry>;
  /** Index key → its session id, or a Set once it has several: most sub and sid name a single session. */
  readonly #index = new Map<string, string | Set<string>>();
  readonly #remembered = new LRUCache<string, true>({ max: 10_000, ttlAutopurge: false, allowStale: false });
  readonly #shared = new LRUCache<string, string>({ max: 10_000, ttlAutopurge: false, allowStale: false });

  constructor(maxSessions: number) {
    this.#cache = new LRUCache<string, Entry>({
      max: maxSessions,
      ttlAutopurge: false,
      allowStale: false,
      dispose: (entry, id) => this.#unindex(id, entry.indexKeys),
    });
  }

  async get(id: string): Promise<StoredSession | undefined> {
    return this.#read(id);
  }

  /** The record itself, as `get` reads it, without a promise: a request's lookup takes it from here. */
  kept(id: string): StoredSession | undefined {
    return this.#read(id);
  }

  #read(id: string): StoredSession | undefined {
    const entry = this.#cache.get(id);
    return entry ? { sealed: entry.sealed, lastSeenAt: entry.lastSeenAt, version: entry.version } : undefined;
  }

  async set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void> {
    this.#put(id, value, ttlMs, indexKeys, undefined);
  }

  #put(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], claim: Entry['claim']): void {
    if (ttlMs <= 0) {
      this.#cache.delete(id);
      return;
    }
    // Overwriting disposes the old entry first (unindexing it), then the new keys are indexed.
    this.#cache.set(id, { sealed: value.sealed, lastSeenAt: value.lastSeenAt, version: value.version, indexKeys: [...indexKeys], claim }, { ttl: ttlMs });
    for (const key of indexKeys) {
      const ids = this.#index.get(key);
      if (ids === undefined) this.#index.set(key, id);
      else if (typeof ids !== 'string') ids.add(id);
      else if (ids !== id) this.#index.set(key, new Set([ids, id]));
    }
  }

  async update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], expected: string, holder: string): Promise<WriteOutcome> {
    const entry = this.#cache.get(id);
    if (!entry) return 'gone';
    if (!versionAccepts(entry.version, expected, value.version)) return 'changed';
    const keepsClaim = entry.claim !== undefined && entry.version === value.version && entry.claim.holder !== holder;
    this.#put(id, value, ttlMs, indexKeys, keepsClaim ? entry.claim : undefined);
    return 'written';
  }

  async claim(id: string, expected: string, holder: string, timing: ClaimTiming): Promise<ClaimOutcome> {
    const entry = this.#cache.get(id);
    if (!entry) return { state: 'gone' };
    if (!versionAccepts(entry.version, expected, expected)) return { state: 'changed' };
    const now = Date.now();
    const held = entry.claim === undefined || entry.claim.holder === holder ? undefined : claimHeld(entry.claim, now, timing);
    if (held !== undefined) return { state: 'held', retryInMs: held };
    entry.claim = { holder, beatAt: now };
    return { state: 'claimed' };
  }

  async unclaim(id: string, holder: string): Promise<void> {
    const entry = this.#cache.get(id);
    if (entry?.claim?.holder === holder) entry.claim = undefined;
  }

  async touch(id: string, lastSeenAt: number, ttlMs: number): Promise<void> {
    const entry = this.#cache.get(id);
    if (!entry) return;
    if (ttlMs <= 0) {
      this.#cache.delete(id);
      return;
    }
    entry.lastSeenAt = lastSeenAt;
    this.#cache.set(id, entry, { ttl: ttlMs });
  }

  async delete(id: string, expected?: string): Promise<WriteOutcome> {
    const entry = this.#cache.get(id);
    if (!entry) return 'gone';
    if (expected !== undefined && !versionAccepts(entry.version, expected, expected)) return 'changed';
    this.#cache.delete(id);
    return 'written';
  }

  async findByIndex(indexKey: string): Promise<string[]> {
    const ids = this.#index.get(indexKey);
    if (ids === undefined) return [];
    return typeof ids === 'string' ? [ids] : [...ids];
  }

  async remember(key: string, ttlMs: number): Promise<boolean> {
    if (this.#remembered.has(key)) return false;
    this.#remembered.set(key, true, { ttl: Math.max(1, Math.ceil(ttlMs)) });
    return true;
  }

  async remembered(key: string): Promise<boolean> {
    return this.#remembered.has(key);
  }

  async putShared(key: string, value: string, ttlMs: number): Promise<void> {
    this.#shared.set(key, value, { ttl: Math.max(1, Math.ceil(ttlMs)) });
  }

  async getShared(key: string): Promise<string | undefined> {
    return this.#shared.get(key);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#cache.clear();
    this.#remembered.clear();
    this.#shared.clear();
  }

  get size(): number {
    return this.#cache.size;
  }

  #unindex(id: string, indexKeys: string[]): void {
    // The cache calls dispose on overwrite too; only unindex when the id is really gone or re-indexed.
    for (const key of indexKeys) {
      const ids = this.#index.get(key);
      if (ids === undefined) continue;
      if (typeof ids === 'string') {
        if (ids === id) this.#index.delete(key);
        continue;
      }
      ids.delete(id);
      // Back to a plain id when one is left; never an empty Set.
      if (ids.size <= 1) {
        const [last] = ids;
        if (last === undefined) this.#index.delete(key);
        else this.#index.set(key, last);
      }
    }
  }
}

/**
 * The compare-and-set rule every store applies: a record holds the expected version, or the new one already (the
 * same write again), or none at all (stored by an earlier release, which knew no versions).
 */
export function versionAccepts(stored: string | undefined, expected: string, next: string | undefined): boolean {
  return stored === undefined || stored === expected || stored === next;
}

/**
 * How long another holder's claim still holds (ms), or undefined when it passes on: renewed within the ttl, or
 * lapsed but first seen so less than the grace ago (this marks it seen). The Redis store's CLAIM script is the same rule.
 */
function claimHeld(claim: NonNullable<Entry['claim']>, now: number, { ttlMs, graceMs }: ClaimTiming): number | undefined {
  if (now - claim.beatAt < ttlMs) return ttlMs - (now - claim.beatAt);
  if (claim.seenAt === undefined || claim.seenAt < claim.beatAt) {
    claim.seenAt = now;
    return graceMs;
  }
  return now - claim.seenAt < graceMs ? graceMs - (now - claim.seenAt) : undefined;
}

/**
 * In-process lock: a promise chain per session id. Enough when only one gateway instance runs. A holder that
 * throws frees the lock at once; one that hangs past holdMs loses it (its signal aborts) and the next waiter goes.
 */
export class MemorySessionLock implements SessionLock {
  readonly #tails = new Map<string, Promise<void>>();

  async withLock<T>(id: string, fn: (signal: AbortSignal) => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const previous = this.#tails.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(id, tail);
    // Forget the queue only once everyone in it is done: a waiter that timed out must not let the next
    // caller in while the holder ahead of it still runs.
    void tail.then(() => {
      if (this.#tails.get(id) === tail) this.#tails.delete(id);
    });
    try {
      await waitBounded(previous, opts.waitMs ?? DEFAULT_LOCK_WAIT_MS);
      const hold = new LockHold();
      hold.loseAfter(opts.holdMs ?? DEFAULT_LOCK_HOLD_MS);
      return await hold.run(fn);
    } finally {
      release();
    }
  }
}

/**
 * One holder's hold on a lock: the signal it gets, and the rule that withLock answers as soon as the hold is
 * lost, not when fn finally settles. Shared by the memory and the Redis lock.
 */
export class LockHold {
  readonly #controller = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  lose(why: string, retryAfterSeconds?: number): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(new LockLostError(`session lock lost: ${why}`, retryAfterSeconds));
  }

  /** Loses the hold after ms unless it ended before; the timer never keeps a process alive. */
  loseAfter(ms: number, why = `held longer than ${ms} ms`, retryAfterSeconds?: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.lose(why, retryAfterSeconds), Math.max(0, ms));
    timer.unref();
    this.#timers.push(timer);
    return timer;
  }

  /** fn's result, or the LockLostError as soon as the hold is lost (fn's own late outcome is then dropped). */
  async run<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { signal } = this.#controller;
    let onAbort!: () => void;
    const lost = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const work = Promise.resolve().then(() => fn(signal));
      work.catch(() => undefined);
      lost.catch(() => undefined);
      return await Promise.race([work, lost]);
    } finally {
      signal.removeEventListener('abort', onAbort);
      for (const timer of this.#timers) clearTimeout(timer);
    }
  }
}

async function waitBounded(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new LockTimeoutError()), ms);
        timer.unref();
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
