import { decodeJwt } from 'jose';
import { dpopProof, type DpopSigner } from '../net/dpop.js';
import { asksForNonce, validNonce, type UpstreamNonces } from '../net/dpop-nonces.js';
import type { FetchLike } from '../net/fetch.js';

export class AltinnExchangeError extends Error {
  readonly kind: 'unavailable' | 'rejected';
  constructor(kind: 'unavailable' | 'rejected', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AltinnExchangeError';
    this.kind = kind;
  }
}

/** An Altinn token is a few kilobytes; an answer larger than this is not one, and is not read further. */
export const MAX_EXCHANGE_RESPONSE_BYTES = 64 * 1024;

/** `altinn.dpop`: the bound token goes as DPoP, with a proof by the session's key. */
export interface ExchangeDpop {
  signer: DpopSigner;
  /** The nonces resource servers handed out, shared by the instances; without it, each exchange learns anew. */
  nonces?: UpstreamNonces | undefined;
}

/** A compact JWS: three base64url parts, a signature included. Anything else could not be sent as a bearer. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Altinn 3: GET {platform}/authentication/api/v1/exchange/id-porten with the ID-porten access token as
 * bearer (as DPoP with `dpop`) answers an Altinn token (a JWT, usually as plain text, sometimes as a JSON string).
 *
 * Every failure is an AltinnExchangeError: unreachable, a timeout while reading, a non-2xx status, an
 * answer larger than MAX_EXCHANGE_RESPONSE_BYTES, or one that is not a compact JWS with a numeric
 * `exp` in the future. The token is kept until its `exp`, but never past `accessTokenExpiresAt`
 * (the ID-porten access token it was exchanged from).
 */
export async function exchangeForAltinnToken(
  fetchImpl: FetchLike,
  exchangeUrl: string,
  idportenAccessToken: string,
  accessTokenExpiresAt: number,
  now: number = Date.now(),
  dpop?: ExchangeDpop,
): Promise<{ token: string; expiresAt: number }> {
  const response = dpop === undefined ? await send(fetchImpl, exchangeUrl, { authorization: `Bearer ${idportenAccessToken}` }) : await sendDpop(fetchImpl, exchangeUrl, idportenAccessToken, dpop);
  if (!response.ok) {
    await discard(response);
    throw new AltinnExchangeError(response.status >= 500 ? 'unavailable' : 'rejected', `Altinn token exchange answered ${response.status}`);
  }
  const text = (await readBounded(response, MAX_EXCHANGE_RESPONSE_BYTES)).trim();
  const token = unquote(text);
  if (token === undefined || !COMPACT_JWS.test(token)) {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange returned something that is not a JWT');
  }
  let exp: unknown;
  try {
    exp = decodeJwt(token).exp;
  } catch {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange returned something that is not a JWT');
  }
  if (typeof exp !== 'number' || !Number.isFinite(exp) || exp * 1000 <= now) {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange returned a token without a valid exp');
  }
  return { token, expiresAt: Math.min(exp * 1000, accessTokenExpiresAt) };
}

async function send(fetchImpl: FetchLike, exchangeUrl: string, authorization: Record<string, string>): Promise<Response> {
  try {
    return await fetchImpl(exchangeUrl, { method: 'GET', headers: { ...authorization, accept: 'text/plain, application/json' } });
  } catch (err) {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange unreachable', { cause: err });
  }
}

/**
 * The exchange with a DPoP proof (RFC 9449 section 7.1) carrying the exchange's last nonce. A refusal for want of a
 * (new) nonce (section 9: 401, a DPoP `use_dpop_nonce` challenge and a DPoP-Nonce) is sent once more with it; every
 * nonce the exchange hands out is kept for the next exchange, on any instance.
 */
async function sendDpop(fetchImpl: FetchLike, exchangeUrl: string, accessToken: string, dpop: ExchangeDpop): Promise<Response> {
  const htu = exchangeUrl.split(/[?#]/, 1)[0]!;
  const origin = new URL(exchangeUrl).origin;
  const attempt = async (nonce: string | undefined): Promise<{ response: Response; offered: string | undefined }> => {
    const proof = dpopProof(dpop.signer, { htm: 'GET', htu, accessToken, nonce });
    const response = await send(fetchImpl, exchangeUrl, { authorization: `DPoP ${accessToken}`, dpop: proof });
    const offered = validNonce(response.headers.get('dpop-nonce') ?? undefined);
    if (offered !== undefined) dpop.nonces?.learn(origin, offered);
    return { response, offered };
  };
  const nonce = await dpop.nonces?.get(origin);
  const { response, offered } = await attempt(nonce);
  // Once only, and only with a nonce other than the one refused.
  if (offered === undefined || offered === nonce || !asksForNonce(response.status, response.headers.get('www-authenticate') ?? undefined)) return response;
  await discard(response);
  return (await attempt(offered)).response;
}

/** The token as plain text, or decoded from a JSON string; undefined when it is neither. */
function unquote(text: string): string | undefined {
  if (!text.startsWith('"')) return text;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'string' ? parsed.trim() : undefined;
  } catch {
    return undefined;
  }
}

/** Reads at most `limit` bytes of the body as UTF-8; a longer body is cancelled and refused. */
async function readBounded(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) {
    await discard(response);
    throw new AltinnExchangeError('unavailable', `Altinn token exchange answer exceeds ${limit} bytes`);
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.byteLength;
      if (length > limit) {
        await reader.cancel().catch(() => undefined);
        throw new AltinnExchangeError('unavailable', `Altinn token exchange answer exceeds ${limit} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof AltinnExchangeError) throw err;
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange answer could not be read', { cause: err });
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch (err) {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange answer is not UTF-8', { cause: err });
  }
}

async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // the body is not needed; a failure to cancel it changes nothing
  }
}
