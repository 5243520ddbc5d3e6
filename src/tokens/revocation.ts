import { fingerprint } from '../audit/fingerprint.js';
import type { Tenant } from '../tenant/tenant.js';
import type { Session } from './session-data.js';

/** Where revocation failures and background outcomes are reported (the process logger). */
export interface WarningLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

export interface RevocationOutcome {
  refreshToken: boolean;
  accessToken: boolean;
  /** Present when the session held RFC 8707 resource tokens: whether every one of them was revoked. */
  resourceTokens?: boolean;
}

/** At most this many revocations run at once in the background, and at most this many wait. */
const BACKGROUND_CONCURRENCY = 4;
const BACKGROUND_QUEUE_LIMIT = 10_000;

/**
 * RFC 7009 revocation of a session's tokens at ID-porten: refresh token first (it is the long-lived one),
 * then the access token, then its RFC 8707 resource tokens. ID-porten's logout does not revoke tokens carrying API scopes, so every way a
 * session ends comes here. Best effort: a failure is logged, never thrown.
 */
export class Revoker {
  readonly #log: WarningLog;
  readonly #queue: Array<() => Promise<unknown>> = [];
  #running = 0;

  constructor(log: WarningLog) {
    this.#log = log;
  }

  async revoke(tenant: Tenant, session: Pick<Session, 'hash' | 'data'>): Promise<RevocationOutcome> {
    const outcome: RevocationOutcome = { refreshToken: false, accessToken: false };
    const { refreshToken, accessToken } = session.data.tokens;
    for (const [token, hint, field] of [
      [refreshToken, 'refresh_token', 'refreshToken'],
      [accessToken, 'access_token', 'accessToken'],
    ] as const) {
      if (token) outcome[field] = await this.#revokeOne(tenant, session, token, hint);
    }
    // The refresh token's revocation ends the grant they were issued on; each is revoked as the session's own
    // access token is, so none stays usable at an upstream that checks with the provider.
    const resourceTokens = Object.values(session.data.resourceTokens ?? {});
    if (resourceTokens.length > 0) {
      let all = true;
      for (const { accessToken: token } of resourceTokens) all = (await this.#revokeOne(tenant, session, token, 'access_token')) && all;
      outcome.resourceTokens = all;
    }
    return outcome;
  }

  async #revokeOne(tenant: Tenant, session: Pick<Session, 'hash'>, token: string, hint: 'refresh_token' | 'access_token'): Promise<boolean> {
    try {
      await tenant.idporten.revoke(token, hint);
      return true;
    } catch (err) {
      this.#log.warn({ tenant: tenant.id, session: session.hash, token: fingerprint(token), reason: (err as Error).message }, 'token revocation failed');
      return false;
    }
  }

  /** Revokes without holding anyone up (expired, idle and replaced sessions), bounded in concurrency and backlog. */
  inBackground(tenant: Tenant, session: Pick<Session, 'hash' | 'data'>, channel?: string): void {
    const { refreshToken, accessToken } = session.data.tokens;
    // Fingerprints only, so a reviewer can match this line to the session's `logout` audit line.
    const fields = { tenant: tenant.id, session: session.hash, channel, refreshToken: fingerprint(refreshToken), accessToken: fingerprint(accessToken) };
    if (this.#queue.length >= BACKGROUND_QUEUE_LIMIT) {
      this.#log.warn(fields, 'revocation backlog full; tokens left to expire at ID-porten');
      return;
    }
    this.#queue.push(async () => {
      const revoked = await this.revoke(tenant, session);
      this.#log.info({ ...fields, revoked }, 'background revocation finished');
    });
    this.#drain();
  }

  /** Resolves once every queued revocation has run (shutdown, tests). */
  async settled(): Promise<void> {
    while (this.#running > 0 || this.#queue.length > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  #drain(): void {
    while (this.#running < BACKGROUND_CONCURRENCY && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running += 1;
      void job().finally(() => {
        this.#running -= 1;
        this.#drain();
      });
    }
  }
}
