/**
 * DPoP (RFC 9449) keys and proofs, for the calls the gateway makes with a session's bound token: the session's key
 * pair (made at login, kept sealed with the session and never sent anywhere but its public half), its JWK
 * thumbprint (RFC 7638, the `jkt` ID-porten binds the tokens to), and proofs signed with node:crypto directly.
 *
 * ES256 (P-256): the one algorithm RFC 9449 section 4.1 names for every implementation to support, and the one the
 * benchmark found cheapest to sign among those ID-porten may accept (bench/README.md, "DPoP").
 */
import { createPrivateKey, generateKeyPairSync, hash, randomBytes, sign, type KeyObject } from 'node:crypto';

export const DPOP_ALGORITHM = 'ES256';

/** A session's DPoP key pair as kept in its sealed record: a private P-256 JWK. Never logged, never sent. */
export interface DpopKey {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  d: string;
}

/** What signing needs, worked out once per key (see signerFor). */
export interface DpopSigner {
  /** RFC 7638 thumbprint of the public key: what `dpop_jkt` and a bound token's `cnf.jkt` carry. */
  readonly jkt: string;
  /** The public JWK, as proofs carry it in their header. */
  readonly publicJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  readonly privateKey: KeyObject;
  /** base64url of the proof's JOSE header (typ, alg, jwk), the same for every proof of this key. */
  readonly encodedHeader: string;
}

/** A fresh key pair for one session. */
export function newDpopKey(): DpopKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y!, d: jwk.d! };
}

/** Signers by key record: a session's record is opened once and shared while in use, so its key is imported once. */
const signers = new WeakMap<DpopKey, DpopSigner>();

export function signerFor(key: DpopKey): DpopSigner {
  let signer = signers.get(key);
  if (signer === undefined) {
    const publicJwk = { kty: key.kty, crv: key.crv, x: key.x, y: key.y };
    signer = {
      jkt: jwkThumbprint(publicJwk),
      publicJwk,
      privateKey: createPrivateKey({ key: { ...key }, format: 'jwk' }),
      encodedHeader: base64url(JSON.stringify({ typ: 'dpop+jwt', alg: DPOP_ALGORITHM, jwk: publicJwk })),
    };
    signers.set(key, signer);
  }
  return signer;
}

/** RFC 7638: SHA-256 over the required members of an EC key, in lexicographic order. */
export function jwkThumbprint(jwk: { crv: string; kty: string; x: string; y: string }): string {
  return hash('sha256', `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`, 'base64url');
}

/** RFC 9449 section 4.2 `ath`: base64url of the SHA-256 of the access token. */
export function accessTokenHash(accessToken: string): string {
  return hash('sha256', accessToken, 'base64url');
}

export interface ProofClaims {
  /** The request's method. */
  htm: string;
  /** The URL called, without query and fragment (RFC 9449 section 4.2). */
  htu: string;
  /** The access token the request carries, for `ath`. */
  accessToken?: string | undefined;
  /** The server's last DPoP-Nonce, when it gave one. */
  nonce?: string | undefined;
}

/** One DPoP proof JWT: a fresh `jti` (128 random bits) and `iat` each time. */
export function dpopProof(signer: DpopSigner, claims: ProofClaims, nowMs: number = Date.now()): string {
  const payload: Record<string, string | number> = {
    jti: randomBytes(16).toString('base64url'),
    htm: claims.htm,
    htu: claims.htu,
    iat: Math.floor(nowMs / 1000),
  };
  if (claims.accessToken !== undefined) payload.ath = accessTokenHash(claims.accessToken);
  if (claims.nonce !== undefined) payload.nonce = claims.nonce;
  const input = `${signer.encodedHeader}.${base64url(JSON.stringify(payload))}`;
  // JWS ES256 is the raw r || s pair (RFC 7518 section 3.4), not DER.
  const signature = sign('sha256', Buffer.from(input), { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** Whether a value looks like a session's DPoP key (a record sealed by this release). */
export function isDpopKey(value: unknown): value is DpopKey {
  const key = value as DpopKey | undefined;
  return typeof key === 'object' && key !== null && key.kty === 'EC' && key.crv === 'P-256' && [key.x, key.y, key.d].every((part) => typeof part === 'string');
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
