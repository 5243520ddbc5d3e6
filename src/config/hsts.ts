/**
 * `tenants[].hsts`: HTTP Strict Transport Security (RFC 6797) for a tenant on https. On by default there,
 * for a year (OWASP ASVS 5.0 V3.4.1), without includeSubDomains: the gateway cannot know that every host
 * below the tenant's is served over https, and a policy that covers one that is not makes it unreachable
 * for the policy's lifetime. Never on a plain-http publicUrl (localhost): browsers ignore the header over
 * http (RFC 6797 section 8.1), and pinning a name such as localhost to https would break other local servers.
 */

import { parseUnboundedDurationMs } from './duration.js';
import type { IssueList } from './errors.js';
import { childPath } from './path.js';
import type { RawTenant } from './schema.js';
import type { HstsPolicy } from './types.js';

/** A year, in seconds: the least max-age ASVS 5.0 V3.4.1 accepts. */
export const DEFAULT_HSTS_MAX_AGE_SECONDS = 365 * 24 * 60 * 60;

/** The tenant's policy, or undefined when it sends none (http publicUrl, or `hsts: false`). */
export function normaliseHsts(raw: RawTenant['hsts'], publicUrl: string | undefined, path: string, issues: IssueList): HstsPolicy | undefined {
  const options = typeof raw === 'object' ? raw : {};
  const maxAge = options.maxAge;
  const maxAgeSeconds =
    maxAge === undefined ? DEFAULT_HSTS_MAX_AGE_SECONDS : issues.attempt(childPath(path, 'maxAge'), () => wholeSeconds(parseUnboundedDurationMs(maxAge)));
  if (raw === false || maxAgeSeconds === undefined || publicUrl === undefined || !publicUrl.startsWith('https:')) return undefined;
  return { maxAgeSeconds, includeSubDomains: options.includeSubDomains ?? false };
}

function wholeSeconds(ms: number): number {
  if (ms < 1000) throw new Error('must be at least 1s: max-age is counted in whole seconds');
  return Math.floor(ms / 1000);
}

/** The header's value (RFC 6797 section 6.1). */
export function hstsHeader(policy: HstsPolicy): string {
  return `max-age=${policy.maxAgeSeconds}${policy.includeSubDomains ? '; includeSubDomains' : ''}`;
}
