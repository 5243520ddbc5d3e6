import type { WriteOutcome } from './store.js';

/** What became of a kept write in the end: one of the store's answers, or `expired` (its session's deadline passed first). */
export type PendingOutcome = WriteOutcome | 'expired';

/** A session write the store did not take when it was made, kept to be made again. */
export interface PendingWrite {
  readonly id: string;
  /** Makes the write (a compare-and-set, so making it twice is safe); throws StoreUnavailableError while the store fails. */
  write(): Promise<PendingOutcome>;
  /** Told once, when the write is made or can no longer be. */
  settled(outcome: PendingOutcome): void;
}

/** How often kept writes are tried again while any are kept: a store that answers again has them within this. */
export const PENDING_RETRY_MS = 200;

/**
 * Writes the store could not take (unreachable, frozen, or unconfirmed by a replica), kept in memory and made again
 * as soon as it answers: a rotated refresh token is never thrown away while the record may still take it. One
 * per session (the latest); bounded, so callers ask `hasRoom` before they make something that would need keeping.
 */
export class PendingWrites {
  readonly #entries = new Map<string, PendingWrite>();
  /** Attempts under way: a flush while the background round is at the same write joins it (settled once). */
  readonly #attempts = new Map<PendingWrite, Promise<void>>();
  readonly #max: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  get hasRoom(): boolean {
    return this.#entries.size < this.#max;
  }

  /** Keeps a write; false when there is no room (the caller still holds what it could not write). */
  keep(write: PendingWrite): boolean {
    if (!this.#entries.has(write.id) && !this.hasRoom) return false;
    this.#entries.set(write.id, write);
    this.#schedule();
    return true;
  }

  /** Makes the kept write of this session now, if there is one; throws StoreUnavailableError while the store fails. */
  async flush(id: string): Promise<void> {
    const write = this.#entries.get(id);
    if (write) await this.#attempt(write);
  }

  /** Makes every kept write once, together; throws if any failed (it stays kept). */
  async flushAll(): Promise<void> {
    const results = await Promise.allSettled([...this.#entries.values()].map((write) => this.#attempt(write)));
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Stops retrying (shutdown); what is still kept is lost with the process. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #attempt(write: PendingWrite): Promise<void> {
    let attempt = this.#attempts.get(write);
    if (attempt) return attempt;
    attempt = (async () => {
      const outcome = await write.write();
      // Settled once, by the attempt that found it still kept.
      if (this.#entries.get(write.id) !== write) return;
      this.#entries.delete(write.id);
      write.settled(outcome);
    })().finally(() => this.#attempts.delete(write));
    this.#attempts.set(write, attempt);
    return attempt;
  }

  #schedule(): void {
    if (this.#timer || this.#stopped || this.#entries.size === 0) return;
    this.#timer = setTimeout(() => void this.#retry(), PENDING_RETRY_MS);
    this.#timer.unref();
  }

  async #retry(): Promise<void> {
    const writes = [...this.#entries.values()];
    // A write that fails (the store still unreachable) stays kept for the next round.
    try {
      // The first alone tells whether the store answers again; then the rest together.
      await this.#attempt(writes[0]!);
      await Promise.all(writes.slice(1).map((write) => this.#attempt(write).catch(() => undefined)));
    } catch {
      // Still failing: try again next round.
    } finally {
      this.#timer = undefined;
      this.#schedule();
    }
  }
}
