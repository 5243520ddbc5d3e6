import type { Tenant } from '../../tenant/tenant.js';
import type { Session } from '../session-data.js';

/** What a token kind may ask of the lifecycle. */
export interface TokenSource {
  /** The session with a fresh ID-porten access token (refreshing if needed). */
  fresh(session: Session, tenant: Tenant): Promise<Session>;
  /**
   * A token obtained from the current access token and cached in the session until shortly before it
   * expires or the access token changes (under the session lock, once across instances).
   */
  derived(session: Session, tenant: Tenant, kind: string, obtain: (accessToken: string, session: Session) => Promise<{ token: string; expiresAt: number }>): Promise<string>;
}

/**
 * One kind of bearer an API route can carry (`routes[].token`). Adding a kind is one file exporting one of
 * these and one line in `kinds/index.ts`.
 */
export interface TokenKind {
  readonly name: string;
  /** Whether a request on such a route needs a live session. */
  readonly needsSession: boolean;
  /** The bearer for the upstream; undefined sends none. `session` is set whenever needsSession is. */
  bearer(source: TokenSource, tenant: Tenant, session: Session | undefined): Promise<string | undefined>;
}
