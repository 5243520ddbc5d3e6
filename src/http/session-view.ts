import type { Session } from '../tokens/session-data.js';

export interface SessionViewOptions {
  /** The tenant's `exposePid`: the national identity number is sent only when the tenant opts in. */
  exposePid?: boolean;
}

/** Whole seconds from `now` until `at`, never negative. */
function secondsUntil(at: number, now: number): number {
  return Math.max(0, Math.floor((at - now) / 1000));
}

/**
 * Public view of a session (GET /auth/session): never a token. Next to each deadline it carries the seconds
 * left by the gateway's clock (`*In`), so a browser with a wrong clock can still time its warnings.
 */
export function sessionView(
  session: Session,
  lifetimes: { absoluteLifetimeMs: number; idleTimeoutMs: number },
  now: number,
  options: SessionViewOptions = {},
) {
  const { data } = session;
  const endsAt = data.createdAt + lifetimes.absoluteLifetimeMs;
  const idleExpiresAt = Math.min(endsAt, session.lastSeenAt + lifetimes.idleTimeoutMs);
  const accessTokenExpiresAt = data.tokens.accessTokenExpiresAt;
  return {
    authenticated: true,
    user: {
      sub: data.user.sub,
      pid: options.exposePid === true ? data.user.pid : undefined,
      acr: data.user.acr,
      amr: data.user.amr,
      locale: data.user.locale,
    },
    session: {
      createdAt: new Date(data.createdAt).toISOString(),
      endsAt: new Date(endsAt).toISOString(),
      endsIn: secondsUntil(endsAt, now),
      idleExpiresAt: new Date(idleExpiresAt).toISOString(),
      idleExpiresIn: secondsUntil(idleExpiresAt, now),
    },
    accessToken: {
      expiresAt: new Date(accessTokenExpiresAt).toISOString(),
      expiresIn: secondsUntil(accessTokenExpiresAt, now),
      refreshable: Boolean(data.tokens.refreshToken) && now < endsAt,
    },
  };
}
