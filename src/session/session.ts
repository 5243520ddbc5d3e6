/**
 * What the session layer needs of a session record. The record itself (user, tokens) is defined by the
 * token lifecycle (`src/tokens/session-data.ts`); here it is stored sealed and indexed, nothing more.
 */
export interface SessionRecord {
  tenant: string;
  /** Epoch milliseconds; the absolute lifetime counts from here. */
  createdAt: number;
  /** Indexed so a session can be found by subject and by the provider's session id. */
  user: { sub: string; sid?: string | undefined };
}

/** A session as loaded for one request. */
export interface SessionContext<D extends SessionRecord = SessionRecord> {
  /** Store key: a hash of the cookie value. */
  id: string;
  /** Short hash of the store key for logs. */
  hash: string;
  data: D;
  /** Epoch ms of the last request seen (idle timeout). */
  lastSeenAt: number;
}
