/** What a fault-injection run records, for the invariants and the report to read. */

/** One API call a session made through one instance. */
export interface CallRecord {
  /** The session: its slot and login, e.g. `s07.2` (slot 7, logged in for the second time). */
  session: string;
  /** The instance's pid. */
  instance: number;
  sentAt: number;
  doneAt: number;
  /** Undefined: no answer (the instance died, or the connection broke). */
  status?: number;
  /** The gateway's problem code, on a problem answer. */
  code?: string;
  /** The Retry-After header, where there was one. */
  retryAfter?: string;
  /** The jti of the bearer the upstream verified, on a 200 from it. */
  jti?: string;
  /** The upstream's own refusal of the bearer (RFC 6750 error), passed through by the gateway. */
  upstreamError?: string;
}

export interface SessionRecord {
  session: string;
  /** The provider's grant made by this session's login. */
  grantId: string;
  loggedInAt: number;
  /** When and how the gateway said it was over (401 session_expired or login_required). */
  endedAt?: number;
  endedWith?: string;
}

export interface FaultEvent {
  kind: 'kill' | 'restart' | 'pause' | 'drop' | 'failover';
  /** Epoch ms at which it struck. */
  at: number;
  /** How long it lasted (pause; failover: from pausing the primary to resuming it). */
  ms?: number;
  /** The instance killed or started. */
  pid?: number;
  detail?: string;
}
