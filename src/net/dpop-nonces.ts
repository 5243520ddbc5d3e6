/**
 * The DPoP nonces upstreams hand out (RFC 9449 section 9), by upstream origin, shared by every instance through the
 * session store: a nonce one instance learns serves the next request on any other, without a refused first try.
 *
 * Each instance keeps what it read for LOCAL_READ_MS, so the store is asked about an origin at most about once
 * a second per instance (one read shared by the requests waiting for it), not on every request: a nonce rotated
 * on another instance within that second costs one retry here (the upstream names the new one).
 */

/** The part of the session store this needs (SessionStore.getShared / putShared). */
export interface SharedValues {
  getShared(key: string): Promise<string | undefined>;
  putShared(key: string, value: string, ttlMs: number): Promise<void>;
}

/** How long a learnt nonce is kept in the store: servers rotate them, and a stale one costs one retry. */
export const NONCE_TTL_MS = 5 * 60_000;
/** How long an instance trusts its own copy before asking the store again. */
export const LOCAL_READ_MS = 1_000;
/** Bound on the origins remembered (one per DPoP upstream; this only caps a misuse). */
const MAX_ORIGINS = 1_000;

interface LocalEntry {
  nonce: string | undefined;
  readAt: number;
}

export class UpstreamNonces {
  readonly #store: SharedValues;
  readonly #now: () => number;
  readonly #warn: (reason: string) => void;
  readonly #local = new Map<string, LocalEntry>();
  readonly #reading = new Map<string, Promise<string | undefined>>();

  constructor(store: SharedValues, opts: { now?: () => number; warn?: (reason: string) => void } = {}) {
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#warn = opts.warn ?? (() => undefined);
  }

  /** The nonce for `origin` when this instance's copy is fresh (`{ nonce: undefined }`: none is known); else undefined. */
  now(origin: string): { nonce: string | undefined } | undefined {
    const entry = this.#local.get(origin);
    return entry !== undefined && this.#now() - entry.readAt < LOCAL_READ_MS ? entry : undefined;
  }

  /** The nonce for `origin`, from the store when this instance's copy is old. A store that fails leaves the old copy. */
  async get(origin: string): Promise<string | undefined> {
    const fresh = this.now(origin);
    if (fresh) return fresh.nonce;
    let reading = this.#reading.get(origin);
    if (!reading) {
      reading = this.#store
        .getShared(storeKey(origin))
        .then(
          (nonce) => (this.#keep(origin, nonce), nonce),
          (err: Error) => {
            this.#warn(err.message);
            return this.#local.get(origin)?.nonce;
          },
        )
        .finally(() => this.#reading.delete(origin));
      this.#reading.set(origin, reading);
    }
    return reading;
  }

  /** A nonce an upstream sent (DPoP-Nonce): used here at once, and stored for the other instances. */
  learn(origin: string, nonce: string): void {
    if (this.#local.get(origin)?.nonce === nonce) return;
    this.#keep(origin, nonce);
    this.#store.putShared(storeKey(origin), nonce, NONCE_TTL_MS).catch((err: Error) => this.#warn(err.message));
  }

  #keep(origin: string, nonce: string | undefined): void {
    if (this.#local.size >= MAX_ORIGINS && !this.#local.has(origin)) this.#local.clear();
    this.#local.set(origin, { nonce, readAt: this.#now() });
  }
}

function storeKey(origin: string): string {
  return `dpop-nonce:${origin}`;
}

/** A DPoP-Nonce value as RFC 9449 section 8.1 allows it (NQCHAR: printable ASCII without `"` and `\`), else undefined. */
export function validNonce(value: string | string[] | undefined): string | undefined {
  const nonce = Array.isArray(value) ? value[0] : value;
  return nonce !== undefined && nonce.length > 0 && nonce.length <= 1024 && /^[\x21\x23-\x5B\x5D-\x7E]+$/.test(nonce) ? nonce : undefined;
}

/** RFC 9449 section 9: a 401 whose WWW-Authenticate DPoP challenge says error="use_dpop_nonce". */
export function asksForNonce(statusCode: number, wwwAuthenticate: string | string[] | undefined): boolean {
  if (statusCode !== 401 || wwwAuthenticate === undefined) return false;
  const text = Array.isArray(wwwAuthenticate) ? wwwAuthenticate.join(', ') : wwwAuthenticate;
  return /(^|[\s,])DPoP\b[^]*?error\s*=\s*"?use_dpop_nonce"?/i.test(text);
}
