import { isDeepStrictEqual } from 'node:util';
import type { GatewayConfig, TenantConfig } from '../config/types.js';
import { IdportenClient } from '../idporten/client.js';
import { Providers, type Provider } from '../idporten/provider.js';
import { cookiePolicy, type CookiePolicy } from '../session/cookies.js';
import { KeyRing } from '../session/key-ring.js';

/** One tenant as the running gateway holds it: its configuration, its ID-porten client and its cookie rules. */
export interface Tenant {
  readonly id: string;
  readonly config: TenantConfig;
  readonly idporten: IdportenClient;
  readonly cookies: CookiePolicy;
  /** Seals this tenant's sessions, login transactions and logout links: its own `sessionKeys`, or the session key ring. */
  readonly keys: KeyRing;
}

/** One configuration's tenants, by id and by host; never changed once made. */
interface Snapshot {
  readonly byId: ReadonlyMap<string, Tenant>;
  readonly byHost: ReadonlyMap<string, Tenant>;
  /** Tenants of earlier configurations that this one no longer has, by host (their sessions are ended when met). */
  readonly removedByHost: ReadonlyMap<string, Tenant>;
  /** The providers its tenants name, each once. */
  readonly providers: ReadonlySet<Provider>;
}

/** What a new configuration changes, worked out by `Tenants.prepare` before anything is swapped. */
export interface TenantsChange {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
  readonly unchanged: string[];
  /** @internal */
  readonly snapshot: Snapshot;
}

/**
 * Every tenant of one configuration, found by id or by the host a request names. A reload swaps the whole
 * snapshot at once (`prepare`, then `adopt`): a lookup sees the old tenants or the new ones, never a mix.
 */
export class Tenants {
  #snapshot: Snapshot;
  readonly #opts: { now?: () => number; keys: KeyRing };
  /** One provider client per issuer and trust settings, shared by the tenants that name it. */
  readonly #providers = new Providers();

  /** `keys` is the session key ring, for tenants without their own. */
  constructor(config: GatewayConfig, opts: { now?: () => number; keys: KeyRing }) {
    this.#opts = opts;
    this.#snapshot = this.prepare(config, { keep: false }).snapshot;
  }

  get all(): Tenant[] {
    return [...this.#snapshot.byId.values()];
  }

  /** The providers the current tenants use, each once however many tenants share it. */
  get providers(): Provider[] {
    return [...this.#snapshot.providers];
  }

  /** How many tenants use this provider now. */
  tenantsOf(provider: Provider): number {
    let count = 0;
    for (const tenant of this.#snapshot.byId.values()) if (tenant.idporten.provider === provider) count += 1;
    return count;
  }

  byId(id: string): Tenant | undefined {
    return this.#snapshot.byId.get(id);
  }

  forHost(host: string | undefined): Tenant | undefined {
    return host ? this.#snapshot.byHost.get(host.toLowerCase()) : undefined;
  }

  /** A tenant that an earlier configuration served on this host and the current one does not. */
  removedForHost(host: string | undefined): Tenant | undefined {
    return host ? this.#snapshot.removedByHost.get(host.toLowerCase()) : undefined;
  }

  /**
   * The tenants of `config`, next to the current ones: a tenant whose configuration is the same keeps its
   * Tenant, and one whose `idporten` is the same keeps its ID-porten client; a new one, or one with other
   * provider settings, gets a new client on the shared Provider of its issuer (ready at once when another tenant
   * has loaded it, else once discovery has run for it). Nothing changes until `adopt`.
   */
  prepare(config: GatewayConfig, opts: { keep?: boolean } = {}): TenantsChange {
    const current = opts.keep === false ? undefined : this.#snapshot;
    const byId = new Map<string, Tenant>();
    const byHost = new Map<string, Tenant>();
    const added: string[] = [];
    const changed: string[] = [];
    const unchanged: string[] = [];
    for (const tenantConfig of config.tenants) {
      const old = current?.byId.get(tenantConfig.id);
      const same = old !== undefined && isDeepStrictEqual(old.config, tenantConfig);
      // The ID-porten client reads only `idporten`: a tenant whose routes (say) changed keeps it, ready as it was.
      const sameProvider = old !== undefined && isDeepStrictEqual(old.config.idporten, tenantConfig.idporten);
      const tenant: Tenant = same ? old : {
        id: tenantConfig.id,
        config: tenantConfig,
        idporten: sameProvider ? old.idporten : new IdportenClient(tenantConfig, this.#providers.for(tenantConfig.idporten), this.#opts),
        cookies: cookiePolicy(tenantConfig.publicUrl, config.session.cookieName, config.session.sameSite),
        keys: tenantConfig.sessionKeys ? new KeyRing(tenantConfig.sessionKeys) : this.#opts.keys,
      };
      (old === undefined ? added : same ? unchanged : changed).push(tenant.id);
      byId.set(tenant.id, tenant);
      // Exact match on host and port (Host, or X-Forwarded-Host when the proxy in front is trusted).
      byHost.set(hostOf(tenantConfig), tenant);
    }
    const removedByHost = new Map(current?.removedByHost ?? []);
    const removed: string[] = [];
    for (const old of current?.byId.values() ?? []) {
      if (byId.has(old.id)) continue;
      removed.push(old.id);
      if (!byHost.has(hostOf(old.config))) removedByHost.set(hostOf(old.config), old);
    }
    for (const host of byHost.keys()) removedByHost.delete(host);
    const providers = new Set([...byId.values()].map((tenant) => tenant.idporten.provider));
    return { added, removed, changed, unchanged, snapshot: { byId, byHost, removedByHost, providers } };
  }

  /** Swaps in a prepared snapshot, at once. */
  adopt(change: TenantsChange): void {
    this.#snapshot = change.snapshot;
    this.#providers.keep(change.snapshot.providers);
  }
}

function hostOf(config: TenantConfig): string {
  return new URL(config.publicUrl).host.toLowerCase();
}
