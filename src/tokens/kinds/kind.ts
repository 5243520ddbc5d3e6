import type { UpstreamNonces } from '../../net/dpop-nonces.js';
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
  /** The session, when its access token needs no refresh (what `fresh` would give without waiting); else undefined. */
  freshNow(session: Session): Session | undefined;
  /** The cached derived token, when `derived` would give it without obtaining one; else undefined. */
  derivedNow(session: Session, kind: string): string | undefined;
  /** An access token for one RFC 8707 resource, obtained or refreshed on its own when needed. */
  forResource(session: Session, tenant: Tenant, resource: string): Promise<string>;
  /** That token when it needs no refresh; else undefined. */
  forResourceNow(session: Session, resource: string): string | undefined;
  /** The DPoP nonces resource servers handed out, shared by the instances (undefined: none kept). */
  readonly upstreamNonces: UpstreamNonces | undefined;
}

/**
 * One kind of bearer an API route can carry (`routes[].token`). Adding a kind is one file exporting one of
 * these and one line in `kinds/index.ts`.
 */
export interface TokenKind {
  readonly name: string;
  /** Whether a request on such a route needs a live session. */
  readonly needsSession: boolean;
  /**
   * The bearer for the upstream; undefined sends none. `session` is set whenever needsSession is. `resource`: the
   * route's RFC 8707 resource indicator (configuration allows it only for kinds that take it).
   */
  bearer(source: TokenSource, tenant: Tenant, session: Session | undefined, resource?: string): Promise<string | undefined>;
  /**
   * The same bearer when it is at hand without waiting (nothing to refresh or obtain), so that a request
   * that needs nothing done takes no promise; undefined when only `bearer` can tell.
   */
  bearerNow(source: TokenSource, tenant: Tenant, session: Session | undefined, resource?: string): { value: string | undefined } | undefined;
}
