/**
 * What the gateway needs of a tenant's ID-porten integration, derived from its configuration, and how a registered
 * integration differs from it. The field names are the self-service API's.
 */
import type { SessionConfig, TenantSettings } from '../config/types.js';

/** ID-porten's cap on a login's lifetime: no session outlives it, so no integration asks for more. */
export const MAX_LIFETIME_S = 8 * 3600;
/**
 * Whether the API takes `backchannel_logout_uri`: documented for the self-service web pages, unconfirmed for the
 * API. The gateway needs it (back-channel logout); if the API turns out to refuse it, this is the one switch.
 */
export const API_TAKES_BACKCHANNEL_LOGOUT_URI = true;

export type Wanted = Record<string, string | number | boolean | string[]>;

/** The integration the gateway needs for one tenant (whole object, as POST and PUT take it). */
export function wantedIntegration(tenant: TenantSettings, session: Pick<SessionConfig, 'absoluteLifetimeMs' | 'idleTimeoutMs'>): Wanted {
  const at = (path: string) => new URL(path, tenant.publicUrl).toString();
  const authorizationLifetime = Math.min(MAX_LIFETIME_S, Math.ceil(session.absoluteLifetimeMs / 1000));
  return {
    client_name: tenant.id,
    description: descriptionFor(tenant.id),
    integration_type: 'api_klient',
    application_type: 'web',
    client_orgno: tenant.orgno ?? '',
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['authorization_code', 'refresh_token'],
    refresh_token_usage: 'ONETIME',
    code_challenge_method: 'S256',
    scopes: [...tenant.idporten.scopes].sort(),
    redirect_uris: [at('/auth/callback')],
    post_logout_redirect_uris: [tenant.idporten.postLogoutRedirectUri],
    frontchannel_logout_uri: at('/auth/logout/frontchannel'),
    frontchannel_logout_session_required: true,
    ...(API_TAKES_BACKCHANNEL_LOGOUT_URI ? { backchannel_logout_uri: at('/auth/logout/backchannel') } : {}),
    client_uri: at('/auth/login/cancelled'),
    // A refresh token dies after this long unused; the gateway's idle timeout ends the session then anyway.
    refresh_token_lifetime: Math.min(authorizationLifetime, Math.ceil(session.idleTimeoutMs / 1000)),
    authorization_lifetime: authorizationLifetime,
  };
}

/** How apply finds a tenant's integration when it kept no client id (a lost record, a second vendor gateway). */
export function descriptionFor(tenantId: string): string {
  return `idporten-bff:${tenantId}`;
}

export interface Difference {
  field: string;
  want: unknown;
  have: unknown;
}

export interface Comparison {
  differences: Difference[];
  notes: string[];
}

/** Lists of URIs where more registered than needed is only a note: the gateway's own are what matter. */
const URI_LISTS = new Set(['redirect_uris', 'post_logout_redirect_uris']);
const LIFETIMES = new Set(['refresh_token_lifetime', 'authorization_lifetime']);

/**
 * Every field of `want` that the registration lacks or has otherwise, and (as notes) registered URIs the gateway does
 * not use. `signingKid` is the key the gateway signs with; it must be among the registered keys.
 */
export function compare(want: Wanted, have: Record<string, unknown>, registeredKids: string[], signingKid: string | undefined): Comparison {
  const differences: Difference[] = [];
  const notes: string[] = [];
  for (const [field, wanted] of Object.entries(want)) {
    const got = have[field];
    if (URI_LISTS.has(field)) {
      const list = Array.isArray(got) ? (got as unknown[]).map(String) : [];
      const missing = (wanted as string[]).filter((uri) => !list.includes(uri));
      if (missing.length > 0) differences.push({ field, want: wanted, have: got ?? null });
      for (const extra of list.filter((uri) => !(wanted as string[]).includes(uri))) notes.push(`${field} also has ${extra}, which the gateway does not use`);
      continue;
    }
    if (LIFETIMES.has(field) && typeof got === 'number' && got > MAX_LIFETIME_S) {
      differences.push({ field, want: wanted, have: got });
      continue;
    }
    const same = Array.isArray(wanted) ? Array.isArray(got) && [...(got as unknown[])].map(String).sort().join(' ') === wanted.join(' ') : got === wanted;
    if (!same) differences.push({ field, want: wanted, have: got ?? null });
  }
  if (signingKid === undefined) differences.push({ field: 'jwks', want: 'the key the gateway signs with', have: registeredKids.length === 0 ? 'no keys' : `keys ${registeredKids.join(', ')}, none of them kept by the gateway` });
  else if (!registeredKids.includes(signingKid)) differences.push({ field: 'jwks', want: `key ${signingKid}`, have: registeredKids.length === 0 ? 'no keys' : registeredKids });
  return { differences, notes };
}

/** A difference in plain language. */
export function describe(d: Difference): string {
  const show = (v: unknown) => (v === null || v === undefined ? 'nothing' : Array.isArray(v) ? v.join(' ') || 'nothing' : String(v));
  return `${d.field}: the gateway needs ${show(d.want)}, the integration has ${show(d.have)}`;
}
