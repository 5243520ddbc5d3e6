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

/**
 * Altinn 3: GET {platform}/authentication/api/v1/exchange/id-porten with the ID-porten access token as
 * bearer answers an Altinn token (a JWT, usually as plain text, sometimes as a JSON string).
 */
export async function exchangeForAltinnToken(
  fetchImpl: FetchLike,
  exchangeUrl: string,
  idportenAccessToken: string,
  fallbackExpiresAt: number,
): Promise<{ token: string; expiresAt: number }> {
  let response: Response;
  try {
    response = await fetchImpl(exchangeUrl, { method: 'GET', headers: { authorization: `Bearer ${idportenAccessToken}`, accept: 'text/plain, application/json' } });
  } catch (err) {
    throw new AltinnExchangeError('unavailable', 'Altinn token exchange unreachable', { cause: err });
  }
  const text = (await response.text()).trim();
  if (!response.ok) {
    throw new AltinnExchangeError(response.status >= 500 ? 'unavailable' : 'rejected', `Altinn token exchange answered ${response.status}`);
  }
  const token = text.startsWith('"') ? (JSON.parse(text) as string) : text;
  let exp: unknown;
  try {
    exp = decodeJwt(token).exp;
  } catch {
    throw new AltinnExchangeError('rejected', 'Altinn token exchange returned something that is not a JWT');
  }
  const expiresAt = typeof exp === 'number' ? exp * 1000 : fallbackExpiresAt;
  return { token, expiresAt };
}
