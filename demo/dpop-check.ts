/**
 * A resource server's DPoP checks (RFC 9449 sections 4.3 and 7.1), for the upstream look-alikes: the proof's
 * header (typ dpop+jwt, an asymmetric alg, a public jwk), its signature under that jwk, htm and htu against the
 * request as received, ath against the token, a jti never seen before, iat within a window, the server's nonce
 * when it demands one, and the token's cnf.jkt equal to the proof key's thumbprint.
 */
import { createHash, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';

export type DpopCheck = { ok: true; jkt: string } | { ok: false; error: 'invalid_dpop_proof' | 'invalid_token' | 'use_dpop_nonce'; description: string };

export interface DpopRequest {
  method: string;
  /** scheme://host[:port] the request was sent to. */
  origin: string;
  /** The request target as received (path and query). */
  url: string;
  proof: string | undefined;
}

/** How far a proof's iat may lie from this server's clock (RFC 9449 section 11.1 leaves it to the server). */
const IAT_WINDOW_SECONDS = 60;

export interface DpopCheckerOptions {
  /** Demand a server nonce (section 9): proofs without the current one are refused with use_dpop_nonce. */
  nonce?: boolean;
}

export class DpopChecker {
  readonly #seen = new Map<string, number>();
  #nonce = randomBytes(16).toString('base64url');
  readonly demandsNonce: boolean;

  constructor(opts: DpopCheckerOptions = {}) {
    this.demandsNonce = opts.nonce ?? false;
  }

  /** The nonce this server currently wants (sent as DPoP-Nonce). */
  get nonce(): string {
    return this.#nonce;
  }

  /** A new nonce from now on: proofs carrying the old one are refused. */
  rotateNonce(): string {
    this.#nonce = randomBytes(16).toString('base64url');
    return this.#nonce;
  }

  async check(request: DpopRequest, accessToken: string, claims: JWTPayload): Promise<DpopCheck> {
    if (!request.proof || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(request.proof)) return refuse('no DPoP proof, or not a JWS');
    let header;
    try {
      header = decodeProtectedHeader(request.proof);
    } catch {
      return refuse('proof header unreadable');
    }
    const jwk = header.jwk as JWK | undefined;
    if (header.typ !== 'dpop+jwt') return refuse('typ is not dpop+jwt');
    if (!header.alg || header.alg === 'none' || header.alg.startsWith('HS')) return refuse('alg must be asymmetric');
    if (!jwk || 'd' in jwk || 'p' in jwk) return refuse('jwk missing or private');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(request.proof, await importJWK(jwk, header.alg), { typ: 'dpop+jwt' }));
    } catch {
      return refuse('proof signature invalid');
    }
    if (payload.htm !== request.method) return refuse('htm differs from the request method');
    const htu = `${request.origin}${request.url.split('?', 1)[0]}`;
    if (payload.htu !== htu) return refuse(`htu differs from the URL called (${htu})`);
    if (payload.ath !== createHash('sha256').update(accessToken).digest('base64url')) return refuse('ath differs from the token');
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > IAT_WINDOW_SECONDS) return refuse('iat outside the window');
    if (typeof payload.jti !== 'string' || payload.jti.length < 16) return refuse('jti missing or short');
    if (this.demandsNonce && payload.nonce !== this.#nonce) return { ok: false, error: 'use_dpop_nonce', description: 'a DPoP nonce is required' };
    this.#forgetOld(now);
    if (this.#seen.has(payload.jti)) return refuse('jti replayed');
    this.#seen.set(payload.jti, now);
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    const bound = (claims.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (bound !== jkt) return { ok: false, error: 'invalid_token', description: 'token is not bound to the proof key (cnf.jkt)' };
    return { ok: true, jkt };
  }

  #forgetOld(now: number): void {
    if (this.#seen.size < 10_000) return;
    for (const [jti, at] of this.#seen) if (now - at > IAT_WINDOW_SECONDS * 2) this.#seen.delete(jti);
  }
}

function refuse(description: string): DpopCheck {
  return { ok: false, error: 'invalid_dpop_proof', description };
}

/** The 401 challenge for a refused DPoP request (RFC 9449 section 7.1), with the current nonce when demanded. */
export function dpopChallenge(check: Extract<DpopCheck, { ok: false }>, checker: DpopChecker): Record<string, string> {
  const headers: Record<string, string> = {
    'www-authenticate': `DPoP algs="ES256 RS256 EdDSA", error="${check.error}", error_description="${check.description.replaceAll('"', "'")}"`,
  };
  if (checker.demandsNonce) headers['dpop-nonce'] = checker.nonce;
  return headers;
}

/** What a DPoP check needs of a plain-http request as this server received it (htu from its Host header). */
export function dpopRequestOf(req: { method?: string | undefined; url?: string | undefined; headers: { host?: string | undefined; dpop?: string | string[] | undefined } }): DpopRequest {
  const proof = req.headers.dpop;
  return { method: req.method ?? '', origin: `http://${req.headers.host ?? ''}`, url: req.url ?? '', proof: Array.isArray(proof) ? undefined : proof };
}
