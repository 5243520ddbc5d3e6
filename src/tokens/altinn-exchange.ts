import { decodeJwt } from 'jose';
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

/** A compact JWS: three base64url parts, a signature included. Anything else could not be sent as a bearer. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Altinn 3: GET {platform}/authentication/api/v1/exchange/id-porten with the ID-porten access token as
 * bearer answers an Altinn token (a JWT, usually as plain text, sometimes as a JSON string).
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
  dpopProof?: string,
): Promise<{ token: string; expiresAt: number }> {
  // A DPoP-bound token goes as DPoP with its proof (altinn.dpop), else as Bearer.
  const authorization: Record<string, string> =
    dpopProof === undefined ? { authorization: `Bearer ${idportenAccessToken}` } : { authorization: `DPoP ${idportenAccessToken}`, dpop: dpopProof };
  let response: Response;
  try {
    response = await fetchImpl(exchangeUrl, { method: 'GET', headers: { ...authorization, accept: 'text/plain, application/json' } });
  } catch (err) {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange unreachable', { cause: err });
  }
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
