/**
 * Session key ring: turns configured secrets into 32-byte AEAD keys.
 * A secret may be longer than 32 bytes; HKDF-SHA256 (RFC 5869) condenses it to exactly 32.
 */

import { hkdfSync } from 'node:crypto';
import type { IssueList } from './errors.js';
import { childPath } from './path.js';
import type { RawConfig } from './schema.js';
import type { SessionKey } from './types.js';

const MIN_SECRET_BYTES = 32;
const KEY_INFO = 'idporten-bff session key';
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Throws with an operator-facing message (never containing the secret) when the secret is unusable. */
export function deriveSessionKey(id: string, secret: string): SessionKey {
  const text = secret.trim();
  if (!BASE64.test(text)) {
    throw new Error(`must be base64 or base64url text of at least ${MIN_SECRET_BYTES} random bytes (e.g. openssl rand -base64 32)`);
  }
  const material = Buffer.from(text, 'base64');
  if (material.length < MIN_SECRET_BYTES) {
    throw new Error(`decodes to ${material.length} bytes; it must hold at least ${MIN_SECRET_BYTES} random bytes (e.g. openssl rand -base64 32)`);
  }
  const key = hkdfSync('sha256', material, Buffer.alloc(0), KEY_INFO, 32);
  return { id, secret: Buffer.from(key) };
}

/** A key ring as written (`session.keys`, or a tenant's `sessionKeys` under `path`) as derived keys. */
export function normaliseKeys(raw: RawConfig['session']['keys'], issues: IssueList, path = 'session.keys'): SessionKey[] {
  const keys: SessionKey[] = [];
  const firstIndexOf = new Map<string, number>();
  raw.forEach((entry, index) => {
    const at = childPath(path, index);
    const earlier = firstIndexOf.get(entry.id);
    if (earlier !== undefined) {
      issues.add(childPath(at, 'id'), `repeats ${path}[${earlier}].id; key ids must be unique`);
      return;
    }
    firstIndexOf.set(entry.id, index);
    const key = issues.attempt(childPath(at, 'secret'), () => deriveSessionKey(entry.id, entry.secret));
    if (key) keys.push(key);
  });
  return keys;
}
