import type { Session } from '../tokens/session-data.js';

/** Public view of a session (GET /auth/session): never a token. */
export function sessionView(session: Session, lifetimes: { absoluteLifetimeMs: number; idleTimeoutMs: number }, now: number) {
  const { data } = session;
  const endsAt = data.createdAt + lifetimes.absoluteLifetimeMs;
  const idleExpiresAt = Math.min(endsAt, session.lastSeenAt + lifetimes.idleTimeoutMs);
  return {
    authenticated: true,
    user: { sub: data.user.sub, pid: data.user.pid, acr: data.user.acr, amr: data.user.amr, locale: data.user.locale },
    session: {
      createdAt: new Date(data.createdAt).toISOString(),
      endsAt: new Date(endsAt).toISOString(),
      idleExpiresAt: new Date(idleExpiresAt).toISOString(),
    },
    accessToken: {
      expiresAt: new Date(data.tokens.accessTokenExpiresAt).toISOString(),
      refreshable: Boolean(data.tokens.refreshToken) && now < endsAt,
    },
  };
}
