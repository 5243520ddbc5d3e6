import type { TokenKind } from './kind.js';

/** The session's own ID-porten access token (Skatteetaten's APIs take it as it is). */
export const idportenKind: TokenKind = {
  name: 'idporten',
  needsSession: true,
  async bearer(source, tenant, session) {
    return (await source.fresh(session!, tenant)).data.tokens.accessToken;
  },
  bearerNow(source, _tenant, session) {
    const current = source.freshNow(session!);
    return current && { value: current.data.tokens.accessToken };
  },
};
