import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { SessionKey } from '../config/types.js';

/**
 * AES-256-GCM under a key ring: the first key seals, every key opens, so a new key can be put in front
 * without logging anyone out. The additional data binds a sealed value to its purpose and owner
 * (e.g. the session's store key), so a value copied to another record does not open.
 *
 * Format: v1.<keyId>.<iv>.<ciphertext+tag>, the last two base64url.
 */
/** The MAC purpose of the store's sid/sub index keys. */
const INDEX_MAC_PURPOSE = 'idporten-bff index key v1';

export class KeyRing {
  readonly #keys: Map<string, Buffer>;
  readonly #current: SessionKey;
  readonly #secrets: Buffer[];
  /** Per purpose, one MAC key per ring key, derived apart from its sealing use; the first is the current one. */
  readonly #macKeys = new Map<string, Buffer[]>();

  constructor(keys: SessionKey[]) {
    const first = keys[0];
    if (!first) throw new Error('key ring needs at least one key');
    this.#current = first;
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
    if (iv.length !== 12 || ct.length < 16) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(ct.subarray(ct.length - 16));
      return Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}
