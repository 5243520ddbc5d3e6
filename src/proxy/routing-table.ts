/**
 * The API routes as data: for each tenant's host, its routes by path. Built once per configuration and
 * swapped whole (see ProxyRouting.update), so a request sees one configuration from start to end. Lookups
 * are two map reads: by host (exactly as Tenants does it: host and port, lower case), then by route path.
 */
import type { Dispatcher } from 'undici';
import type { RouteConfig, TenantConfig } from '../config/types.js';

/** One route of one tenant, with what the proxy needs per request worked out once. */
export interface ProxyTarget {
  readonly tenant: TenantConfig;
  readonly route: RouteConfig;
  readonly upstream: URL;
  /** The upstream dispatcher (TLS trust and connect timeout) its requests go through; see UpstreamDispatchers. */
  readonly dispatcher: Dispatcher;
}

export class RoutingTable {
  readonly #byHost = new Map<string, Map<string, ProxyTarget>>();
  /** Every route path of any tenant. */
  readonly paths: ReadonlySet<string>;

  constructor(tenants: readonly TenantConfig[], dispatcherFor: (tenant: TenantConfig, route: RouteConfig) => Dispatcher) {
    const paths = new Set<string>();
    for (const tenant of tenants) {
      const routes = new Map<string, ProxyTarget>();
      for (const route of tenant.routes) {
        routes.set(route.path, { tenant, route, upstream: new URL(route.upstream), dispatcher: dispatcherFor(tenant, route) });
        paths.add(route.path);
      }
      this.#byHost.set(hostOf(tenant.publicUrl), routes);
    }
    this.paths = paths;
  }

  /** The route at `path` of the tenant that `host` names, if it has one. */
  lookup(host: string | undefined, path: string): ProxyTarget | undefined {
    return host === undefined ? undefined : this.#byHost.get(host.toLowerCase())?.get(path);
  }
}

export function hostOf(publicUrl: string): string {
  return new URL(publicUrl).host.toLowerCase();
}
