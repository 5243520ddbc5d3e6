import type { TokenKind } from './kind.js';

/**
 * The session's own ID-porten access token (Skatteetaten's APIs take it as it is), or, for a route with
 * `resource`, the session's token for that resource alone (RFC 8707), so no upstream sees another's token.
 */
export const idportenKind: TokenKind = {
  name: 'idporten',
  needsSession: true,
  async bearer(source, tenant, session, resource) {
    if (resource !== undefined) return source.forResource(session!, tenant, resource);
    return (await source.fresh(session!, tenant)).data.tokens.accessToken;
  },
  bearerNow(source, _tenant, session, resource) {
    if (resource !== undefined) {
      const token = source.forResourceNow(session!, resource);
      return token === undefined ? undefined : { value: token };
    }
    const current = source.freshNow(session!);
    return current && { value: current.data.tokens.accessToken };
  },
};
