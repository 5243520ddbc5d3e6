import type { AuditLog } from '../audit/audit-log.js';
import type { GatewayMetrics } from '../audit/metrics.js';
import type { GatewayConfig } from '../config/types.js';
import type { TenantIntegrations } from '../digdir/tenant-integrations.js';
import type { KeyRing } from '../session/key-ring.js';
import type { RuntimeTenants } from '../tenant/runtime.js';
import type { Tenants } from '../tenant/tenant.js';
import type { TokenLifecycle } from '../tokens/lifecycle.js';

/** What the gateway's routes work with, made once by the plugin and decorated onto its Fastify scope. */
export interface GatewayCore {
  readonly config: GatewayConfig;
  readonly tenants: Tenants;
  readonly lifecycle: TokenLifecycle;
  /** Seals login transactions (the session store has its own use of the same ring). */
  readonly keys: KeyRing;
  readonly audit: AuditLog;
  readonly metrics: GatewayMetrics;
  readonly now: () => number;
  /** Tenants added at run time (the admin API); undefined when there is nowhere to keep them (no Redis, no tenantsDir). */
  readonly runtimeTenants: RuntimeTenants | undefined;
  /** `integrations apply` for a run-time tenant; undefined without a digdir block and a Redis store. */
  readonly integrations: TenantIntegrations | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    gateway: GatewayCore;
  }
}
