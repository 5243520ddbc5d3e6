import type { ClaimTiming, SessionStore, StoredSession, WriteOutcome } from '../../src/session/store.js';

/** A real store, able to hold its next session write (set or update) or delete until the test releases it. */
export class HoldingStore implements SessionStore {
  readonly #inner: SessionStore;
  readonly #holds = new Map<'write' | 'delete', { reached: () => void; released: Promise<void> }>();

  constructor(inner: SessionStore) {
    this.#inner = inner;
  }

  holdNextWrite(): { reached: Promise<void>; release: () => void } {
    return this.#holdNext('write');
  }

  holdNextDelete(): { reached: Promise<void>; release: () => void } {
    return this.#holdNext('delete');
  }

  #holdNext(kind: 'write' | 'delete'): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    this.#holds.set(kind, { reached, released: new Promise<void>((resolve) => (release = resolve)) });
    return { reached: reachedPromise, release };
  }

  async #held(kind: 'write' | 'delete'): Promise<void> {
    const hold = this.#holds.get(kind);
    this.#holds.delete(kind);
    if (!hold) return;
    hold.reached();
    await hold.released;
  }

  get = (id: string) => this.#inner.get(id);
  touch = (id: string, lastSeenAt: number, ttlMs: number) => this.#inner.touch(id, lastSeenAt, ttlMs);
  claim = (id: string, expected: string, holder: string, timing: ClaimTiming) => this.#inner.claim(id, expected, holder, timing);
  unclaim = (id: string, holder: string) => this.#inner.unclaim(id, holder);
  findByIndex = (key: string) => this.#inner.findByIndex(key);
  remember = (key: string, ttlMs: number) => this.#inner.remember(key, ttlMs);
  remembered = (key: string) => this.#inner.remembered(key);
  putShared = (key: string, value: string, ttlMs: number) => this.#inner.putShared(key, value, ttlMs);
  getShared = (key: string) => this.#inner.getShared(key);
  ping = () => this.#inner.ping();
  close = () => this.#inner.close();

  async set(id: string, value: StoredSession, ttlMs: number, indexKeys: string[]): Promise<void> {
    await this.#held('write');
    return this.#inner.set(id, value, ttlMs, indexKeys);
  }

  async update(id: string, value: StoredSession, ttlMs: number, indexKeys: string[], expected: string, holder: string): Promise<WriteOutcome> {
    await this.#held('write');
    return this.#inner.update(id, value, ttlMs, indexKeys, expected, holder);
  }

  async delete(id: string, expected?: string): Promise<WriteOutcome> {
    await this.#held('delete');
    return this.#inner.delete(id, expected);
  }
}
