import type { SessionData } from '../../src/tokens/session-data.js';

/** A session record as a login would leave it, for tests that drive the session manager without a provider. */
export function sessionRecord(opts: { tenant?: string; sub?: string; sid?: string } = {}): SessionData {
  const { tenant = 'test', sub = 'sub-1', sid } = opts;
  const now = Date.now();
  return {
    tenant,
    user: { sub, ...(sid === undefined ? {} : { sid }), acr: 'idporten-loa-substantial', amr: ['TestID'] },
    idTokenBinding: { iss: 'https://issuer.invalid', aud: 'client', sub, acr: 'idporten-loa-substantial' },
    createdAt: now,
    tokens: { accessToken: 'at', accessTokenIssuedAt: now, accessTokenExpiresAt: now + 120_000, refreshToken: 'rt', idToken: 'id' },
  };
}
