import { LRUCache } from 'lru-cache';
import type { KeyRing } from './key-ring.js';

/** Sessions in active use whose opened record is kept; the least recently used go first. */
const MAX_OPENED = 1024;
/** How long an opened record outlives its last use. */
const KEPT_AFTER_USE_MS = 60_000;

interface Opened<D> {
  sealed: Buffer;
  ring: KeyRing;
  record: OpenedRecord<D>;
}

/** A record as opened, with its session's log fingerprint (worked out once per record, not per request). */
export interface OpenedRecord<D> {
  data: D;
  hash: string;
}

/**
 * Records opened recently, so that a session in active use is decrypted and parsed once per change rather than
 * on every request. An entry serves a load only while the store still holds the very same sealed value and only
 * for the key ring that opened it: a refresh on any instance seals anew, a logout deletes the record and a
 * rotation or reload brings another ring, and each of those opens afresh. Bounded in count, and purged shortly
 * after its last use, so the plaintext tokens of idle sessions do not stay in memory unsealed.
 *
 * Records handed out are deeply frozen and shared between requests: whoever changes a session builds a new
 * record (`session.data = { ...session.data, … }`) and saves that.
 */
export class OpenedRecords<D extends object> {
  readonly #cache = new LRUCache<string, Opened<D>>({ max: MAX_OPENED, ttl: KEPT_AFTER_USE_MS, updateAgeOnGet: true, ttlAutopurge: false });

  constructor() {
    // Expired entries are dropped in one sweep per period rather than with a timer per entry.
    setInterval(() => this.#cache.purgeStale(), KEPT_AFTER_USE_MS).unref();
  }

  /** The record opened from exactly this sealed value with this ring, if it is still kept. */
  get(id: string, sealed: Buffer, ring: KeyRing): OpenedRecord<D> | undefined {
    const entry = this.#cache.get(id);
    if (!entry) return undefined;
    // The same object when the memory store holds it; equal bytes when Redis returned a fresh copy.
    if (entry.ring === ring && (entry.sealed === sealed || entry.sealed.equals(sealed))) return entry.record;
    this.#cache.delete(id);
    return undefined;
  }

  /** Keeps a record just opened from `sealed`; returns it with its data frozen. */
  keep(id: string, sealed: Buffer, ring: KeyRing, record: OpenedRecord<D>): OpenedRecord<D> {
    deepFreeze(record.data);
    this.#cache.set(id, { sealed: ownBytes(sealed), ring, record });
    return record;
  }

  forget(id: string): void {
    this.#cache.delete(id);
  }
}

/**
 * The bytes in memory of their own. A view into a larger buffer (Redis's reply parser hands out views into its
 * socket chunks and pool) would keep all of that alive for as long as the record is kept; a sealed record the
 * memory store holds is its own allocation already and is kept as it is.
 */
export function ownBytes(bytes: Buffer): Buffer {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) return bytes;
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

function deepFreeze(value: object): void {
  for (const child of Object.values(value)) if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) deepFreeze(child);
  Object.freeze(value);
}
