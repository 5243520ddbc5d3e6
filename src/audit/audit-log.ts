
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

/** How a session ended: the user (rp, all, user), ID-porten (frontchannel, backchannel), an operator (admin), time (expired, idle), a new login (replaced); a refresh token ID-porten no longer accepts is `expired` with a reason. */
export type LogoutChannel = 'rp' | 'frontchannel' | 'backchannel' | 'expired' | 'idle' | 'all' | 'user' | 'admin' | 'replaced';

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

/** The part of a pino logger the audit log writes through. */
export interface ChildLogger {
  child(bindings: Record<string, unknown>): { info(fields: object, message: string): void };
}

export function createAuditLog(logger: ChildLogger): AuditLog {
  const log = logger.child({ audit: true });
  return {
    event(name, fields) {
      log.info({ event: name, ...fields }, name);
    },
  };
}
