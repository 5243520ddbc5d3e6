import type { Logger } from 'pino';

/** The audit events of the contract. One JSON line each, never carrying a raw token, code, cookie or pid. */
export type AuditEvent =
  | 'login.start'
  | 'login.success'
  | 'login.failure'
  | 'login.cancelled'
  | 'token.refresh'
  | 'token.refresh.failure'
  | 'token.exchange'
  | 'logout'
  | 'csrf.reject'
  | 'proxy';

export type LogoutChannel = 'rp' | 'frontchannel' | 'backchannel' | 'expired' | 'idle';

export interface AuditFields {
  tenant: string;
  /** Hash of the session's store key (never the cookie). */
  session?: string | undefined;
  sub?: string | undefined;
  [field: string]: unknown;
}

export interface AuditLog {
  event(name: AuditEvent, fields: AuditFields): void;
}

export function createAuditLog(logger: Logger): AuditLog {
  const log = logger.child({ audit: true });
  return {
    event(name, fields) {
      log.info({ event: name, ...fields }, name);
    },
  };
}
