import { GatewayError } from '../../errors.js';
import { signerFor } from '../../net/dpop.js';
import { boundedFetch, type FetchLike } from '../../net/fetch.js';
import type { Tenant } from '../../tenant/tenant.js';
import { AltinnExchangeError, exchangeForAltinnToken } from '../altinn-exchange.js';
import type { TokenKind } from './kind.js';

const EXCHANGE_TIMEOUT_MS = 15_000;

/** One HTTP client per tenant (its CA bundle), made on first use. */
const clients = new WeakMap<Tenant, FetchLike>();
function fetchFor(tenant: Tenant): FetchLike {
  let f = clients.get(tenant);
  if (!f) {
    f = boundedFetch({ timeoutMs: EXCHANGE_TIMEOUT_MS, caPem: tenant.config.upstreamCaPem });
    clients.set(tenant, f);
  }
  return f;
}

/** Altinn 3: the ID-porten access token exchanged for an Altinn token, which Altinn apps take as bearer. */
export const altinnKind: TokenKind = {
  name: 'altinn',
  needsSession: true,
  async bearer(source, tenant, session) {
    const exchangeUrl = tenant.config.altinn?.exchangeUrl;
    if (!exchangeUrl) throw new GatewayError('internal_error', 'This tenant has no Altinn exchange configured.');
    const current = await source.fresh(session!, tenant);
    return source.derived(current, tenant, 'altinn', async (accessToken, locked) => {
      try {
        const key = tenant.config.altinn?.dpop ? locked.data.dpop : undefined;
        const dpop = key && { signer: signerFor(key), nonces: source.upstreamNonces };
        return await exchangeForAltinnToken(fetchFor(tenant), exchangeUrl, accessToken, locked.data.tokens.accessTokenExpiresAt, Date.now(), dpop);
      } catch (err) {
        if (err instanceof AltinnExchangeError) throw new GatewayError('upstream_unavailable', 'The Altinn token exchange failed.', { cause: err });
        throw err;
      }
    });
  },
  bearerNow(source, tenant, session) {
    if (!tenant.config.altinn?.exchangeUrl) return undefined;
    const current = source.freshNow(session!);
    const token = current && source.derivedNow(current, 'altinn');
    return token === undefined ? undefined : { value: token };
  },
};
