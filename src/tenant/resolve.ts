import type { TenantConfig } from '../config/types.js';

/**
 * Finds the tenant a request belongs to from its host (Host, or X-Forwarded-Host when the proxy is trusted:
 * Fastify's request.host already applies trustProxy). The match is exact on host and port.
 */
export function createTenantResolver(tenants: TenantConfig[]): (host: string | undefined) => TenantConfig | undefined {
  const byHost = new Map<string, TenantConfig>();
  for (const tenant of tenants) byHost.set(new URL(tenant.publicUrl).host.toLowerCase(), tenant);
  return (host) => (host ? byHost.get(host.toLowerCase()) : undefined);
}
