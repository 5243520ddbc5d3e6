import type { GatewayConfig, TenantConfig } from '../config/types.js';
import { IdportenClient } from '../idporten/client.js';
import { cookiePolicy, type CookiePolicy } from '../session/cookies.js';

/** One tenant as the running gateway holds it: its configuration, its ID-porten client and its cookie rules. */
export interface Tenant {
  readonly id: string;
  readonly config: TenantConfig;
  readonly idporten: IdportenClient;
  readonly cookies: CookiePolicy;
}

/** Every tenant of one configuration, found by id or by the host a request names. */
export class Tenants {
  readonly #byId = new Map<string, Tenant>();
  readonly #byHost = new Map<string, Tenant>();

  constructor(config: GatewayConfig, opts: { now?: () => number } = {}) {
    for (const tenantConfig of config.tenants) {
      const tenant: Tenant = {
        id: tenantConfig.id,
        config: tenantConfig,
        idporten: new IdportenClient(tenantConfig, opts),
        cookies: cookiePolicy(tenantConfig.publicUrl, config.session.cookieName, config.session.sameSite),
      };
      this.#byId.set(tenant.id, tenant);
      // Exact match on host and port (Host, or X-Forwarded-Host when the proxy in front is trusted).
      this.#byHost.set(new URL(tenantConfig.publicUrl).host.toLowerCase(), tenant);
    }
  }

  get all(): Tenant[] {
    return [...this.#byId.values()];
  }

  byId(id: string): Tenant | undefined {
    return this.#byId.get(id);
  }

  forHost(host: string | undefined): Tenant | undefined {
    return host ? this.#byHost.get(host.toLowerCase()) : undefined;
  }
}
