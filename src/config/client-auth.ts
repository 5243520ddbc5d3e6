/**
 * How the gateway authenticates to ID-porten's token endpoint. For private_key_jwt the JWK is
 * checked here, at start-up, so a wrong key fails the deploy rather than the first login.
 */

import { createPrivateKey, type JsonWebKey as NodeJsonWebKey } from 'node:crypto';
import type { RawClientAuth } from './schema.js';
import type { ClientAuth, JsonWebKeyWithKid } from './types.js';

/** ID-porten requires RSA keys of at least 2048 bits. */
const MIN_RSA_BITS = 2048;

export function normaliseClientAuth(raw: RawClientAuth): ClientAuth {
  if (raw.method !== 'private_key_jwt') return { method: raw.method, secret: raw.secret };
  return { method: raw.method, privateKeyJwk: parsePrivateJwk(raw.privateKeyJwk) };
}

export function parsePrivateJwk(value: string | Record<string, unknown>): JsonWebKeyWithKid {
  const jwk = typeof value === 'string' ? parseJson(value) : value;
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) {
    throw new Error('must be a JSON Web Key object (or its JSON text)');
  }
  const key = jwk as JsonWebKeyWithKid;
  if (key.kty !== 'RSA' && key.kty !== 'EC') throw new Error('must be an RSA or EC key (kty "RSA" or "EC")');
  if (typeof key.d !== 'string') {
    throw new Error('must be a private key (it has no "d"); the public half belongs in the client registration at ID-porten');
  }
  let details;
  try {
    details = createPrivateKey({ key: jwk as NodeJsonWebKey, format: 'jwk' }).asymmetricKeyDetails;
  } catch {
    // The parser's own message may quote key material, so it is not passed on.
    throw new Error(`is not a usable ${key.kty} private key`);
  }
  if (key.kty === 'RSA' && (details?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new Error(`RSA key must be at least ${MIN_RSA_BITS} bits`);
  }
  return key;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // JSON.parse quotes the text in its message; the text is a private key.
    throw new Error('must be a JSON Web Key as JSON text (or an object); the text is not valid JSON');
  }
}
