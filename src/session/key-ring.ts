import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomFillSync } from 'node:crypto';
import type { SessionKey } from '../config/types.js';

/**
 * AES-256-GCM under a key ring: the first key seals, every key opens, so a new key can be put in front
 * without logging anyone out. The additional data binds a sealed value to its purpose and owner
 * (e.g. the session's store key), so a value copied to another record does not open.
 *
 * Formats: seal/open (cookies) v1.<keyId>.<iv>.<ciphertext+tag>, the last two base64url; sealBytes/openBytes
 * (session records) [0x02][keyId length][keyId utf8][iv 12][ciphertext][tag 16], a third smaller.
 */
/** The MAC purpose of the store's sid/sub index keys. */
const INDEX_MAC_PURPOSE = 'idporten-bff index key v1';
const BINARY_VERSION = 0x02;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** What a record sealed by seal() begins with ("v1."): records stored before the binary format. */
const LEGACY_PREFIX = Buffer.from('v1.');

export class KeyRing {
  readonly #keys: Map<string, Buffer>;
  readonly #current: SessionKey;
  /** The binary header of the current key: version, keyId length, keyId. */
  readonly #header: Buffer;
  readonly #secrets: Buffer[];
  /** Per purpose, one MAC key per ring key, derived apart from its sealing use; the first is the current one. */
  readonly #macKeys = new Map<string, Buffer[]>();

  constructor(keys: SessionKey[]) {
    const first = keys[0];
    if (!first) throw new Error('key ring needs at least one key');
    this.#current = first;
    const id = Buffer.from(first.id, 'utf8');
    if (id.length > 255) throw new Error('key id longer than 255 bytes');
    this.#header = Buffer.concat([Buffer.from([BINARY_VERSION, id.length]), id]);
    this.#keys = new Map(keys.map((k) => [k.id, k.secret]));
    this.#secrets = keys.map((k) => k.secret);
  }

  /**
   * HMAC-SHA256 of a value under every key's MAC key for `purpose` (the HKDF info), the current key's first: a
   * name under which the value can be stored and looked up (write under the first, look up under all, so
   * rotation finds older entries) without the value itself being readable.
   */
  macs(value: string, purpose: string = INDEX_MAC_PURPOSE): string[] {
    let keys = this.#macKeys.get(purpose);
    if (!keys) {
      keys = this.#secrets.map((secret) => Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), purpose, 32)));
      this.#macKeys.set(purpose, keys);
    }
    return [...new Set(keys.map((key) => createHmac('sha256', key).update(value).digest('base64url')))];
  }

  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#current.secret, iv);
    cipher.setAAD(Buffer.from(aad));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${this.#current.id}.${iv.toString('base64url')}.${ct.toString('base64url')}`;
  }

  /** Returns undefined for anything that does not open: unknown key, tampering, wrong aad, bad format. */
  open(sealed: string, aad: string): string | undefined {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') return undefined;
    const [, keyId, ivText, ctText] = parts as [string, string, string, string];
    const key = this.#keys.get(keyId);
    if (!key) return undefined;
    const iv = Buffer.from(ivText, 'base64url');
    const ct = Buffer.from(ctText, 'base64url');
    if (iv.length !== IV_BYTES || ct.length < TAG_BYTES) return undefined;
    try {
      // authTagLength: the cipher itself refuses a shorter tag (GCM would otherwise accept 4 to 16 bytes).
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
      return Buffer.concat([decipher.update(ct.subarray(0, ct.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /**
   * seal() as bytes, for session records kept in memory or Redis. Its own allocation, never a slice of Node's
   * shared pool: a record of under 4 KB would otherwise keep a whole 8 KB pool alive.
   */
  sealBytes(plaintext: string, aad: string): Buffer {
    const header = this.#header;
    const plain = Buffer.from(plaintext, 'utf8');
    const out = Buffer.allocUnsafeSlow(header.length + IV_BYTES + plain.length + TAG_BYTES);
    header.copy(out, 0);
    const iv = randomFillSync(out, header.length, IV_BYTES).subarray(header.length, header.length + IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#current.secret, iv);
    cipher.setAAD(Buffer.from(aad));
    let at = header.length + IV_BYTES;
    at += cipher.update(plain).copy(out, at);
    at += cipher.final().copy(out, at);
    cipher.getAuthTag().copy(out, at);
    return out;
  }

  /**
   * Opens what sealBytes made, and also a seal() string (as text or as its bytes, as Redis returns a value
   * stored by an earlier release), so an upgrade logs no one out. Undefined for anything that does not open.
   */
  openBytes(sealed: Buffer | string, aad: string): string | undefined {
    if (typeof sealed === 'string') return this.open(sealed, aad);
    if (sealed.length >= LEGACY_PREFIX.length && LEGACY_PREFIX.equals(sealed.subarray(0, LEGACY_PREFIX.length))) return this.open(sealed.toString('latin1'), aad);
    if (sealed.length < 2 || sealed[0] !== BINARY_VERSION) return undefined;
    const ivAt = 2 + sealed[1]!;
    const tagAt = sealed.length - TAG_BYTES;
    if (ivAt + IV_BYTES > tagAt) return undefined;
    const key = this.#keys.get(sealed.toString('utf8', 2, ivAt));
    if (!key) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(ivAt, ivAt + IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(sealed.subarray(tagAt));
      return Buffer.concat([decipher.update(sealed.subarray(ivAt + IV_BYTES, tagAt)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}
