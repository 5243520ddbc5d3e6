/**
 * `integrations apply` for a tenant added through the admin API (PUT /admin/tenants/{id}?apply=true): possible when
 * the configuration has a digdir block and the session store is Redis, where the applied client of a run-time
 * tenant is kept (by tenant id) and every instance reads it.
 */
import type { GatewayConfig, TenantSettings } from '../config/types.js';
import { appliedIntegrations } from './applied-integrations.js';
import { applyIntegration, type AppliedChanges } from './apply-integration.js';
import { adminAccessToken } from './maskinporten.js';
import { SelfServiceApi } from './self-service.js';

export interface TenantIntegrations {
  /** Throws DigdirRefused or DigdirUnavailable (errors.ts). */
  apply(tenant: TenantSettings): Promise<AppliedChanges>;
}

export function tenantIntegrations(config: GatewayConfig): TenantIntegrations | undefined {
  const digdir = config.digdir;
  if (digdir === undefined || config.session.store.type !== 'redis') return undefined;
  return {
    async apply(tenant) {
      const records = appliedIntegrations(config);
      try {
        const api = new SelfServiceApi(digdir.adminApiUrl, () => adminAccessToken(digdir));
        return await applyIntegration({ config, api, records }, tenant, { dryRun: false });
      } finally {
        await records.close();
      }
    },
  };
}
