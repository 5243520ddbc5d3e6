/**
 * A proxied request carrying a DPoP-bound token (RFC 9449 section 7): `Authorization: DPoP <token>` and a fresh
 * proof for the URL actually called (htm, htu without query, ath, a unique jti, iat, and the upstream's nonce when
 * it gave one). When the upstream refuses for want of a (new) nonce (a 401 with a DPoP `use_dpop_nonce`
 * challenge and a DPoP-Nonce), the request is sent once more with that nonce, which needs its body again: a body
 * of at most REPLAYABLE_BODY_BYTES is read whole before the first try; a larger one streams, and its refusal
 * fails with `nonce_refused` (the next request carries the nonce, learnt meanwhile). Every DPoP-Nonce an upstream
 * sends is learnt, for all instances (net/dpop-nonces.ts).
 */
import { Readable } from 'node:stream';
import { dpopProof, type DpopSigner } from '../net/dpop.js';
import { asksForNonce, validNonce, type UpstreamNonces } from '../net/dpop-nonces.js';
import type { UpstreamRequest } from './forward.js';
import { readReplayable } from './replayable-body.js';

export interface DpopUse {
  signer: DpopSigner;
  accessToken: string;
  method: string;
  nonces: UpstreamNonces;
}

/**
 * `upstream` as a DPoP request. At once when nothing has to be waited for (no body to read, this instance's copy of
 * the origin's nonce is fresh), which is the common case; else once the body and the nonce are at hand.
 */
export function withDpop(upstream: UpstreamRequest, use: DpopUse): UpstreamRequest | Promise<UpstreamRequest> {
  const known = use.nonces.now(upstream.origin);
  if (known !== undefined && !(upstream.body instanceof Readable)) return proved(upstream, use, known.nonce, false);
  return (async () => {
    const body = upstream.body instanceof Readable ? await readReplayable(upstream.body) : upstream.body;
    const nonce = await use.nonces.get(upstream.origin);
    return proved({ ...upstream, body }, use, nonce, false);
  })();
}

function proved(upstream: UpstreamRequest, use: DpopUse, nonce: string | undefined, retried: boolean): UpstreamRequest {
  const queryAt = upstream.path.indexOf('?');
  const htu = upstream.origin + (queryAt === -1 ? upstream.path : upstream.path.slice(0, queryAt));
  const headers = {
    ...upstream.headers,
    authorization: `DPoP ${use.accessToken}`,
    dpop: dpopProof(use.signer, { htm: use.method, htu, accessToken: use.accessToken, nonce }),
  };
  const replay = (statusCode: number, answer: Record<string, string | string[] | undefined>): UpstreamRequest | 'refused' | undefined => {
    const offered = validNonce(answer['dpop-nonce']);
    if (offered !== undefined) use.nonces.learn(upstream.origin, offered);
    // Once only, and only with a nonce other than the one refused: anything else passes the answer on as it is.
    if (retried || offered === undefined || offered === nonce || !asksForNonce(statusCode, answer['www-authenticate'])) return undefined;
    if (upstream.body instanceof Readable) return 'refused';
    return proved(upstream, use, offered, true);
  };
  return { ...upstream, headers, replay };
}
