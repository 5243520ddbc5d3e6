/**
 * The connections to the upstreams, shared: one undici Agent per TLS trust and connect timeout, each keeping
 * one pool per upstream origin. Tenants that use the same upstream with the same trust share its pool; a tenant
 * with its own CA (`upstreamCaPem`) gets an Agent of its own that trusts that CA besides the public roots
 * (TLS's `ca` replaces the trust store, so the roots are listed too). Certificates are always verified.
 */
import { createHash } from 'node:crypto';
import { Agent, type Dispatcher } from 'undici';
import type { RouteConfig, TenantConfig } from '../config/types.js';
import { withDefaultCas } from '../net/fetch.js';

/** Connections per upstream origin and Agent. */
const CONNECTIONS_PER_ORIGIN = 128;

export class UpstreamDispatchers {
  readonly #agents = new Map<string, Agent>();

  /** The Agent for a tenant's route, made on first use. */
  for(tenant: TenantConfig, route: RouteConfig): Dispatcher {
    const ca = tenant.upstreamCaPem;
    const key = `${ca === undefined ? 'public' : createHash('sha256').update(ca).digest('hex').slice(0, 32)}/${route.timeoutMs}`;
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      agent = new Agent({
        pipelining: 1,
        connections: CONNECTIONS_PER_ORIGIN,
        connect: { rejectUnauthorized: true, timeout: route.timeoutMs, ...(ca === undefined ? {} : { ca: withDefaultCas(ca) }) },
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  get size(): number {
    return this.#agents.size;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((agent) => agent.close()));
    this.#agents.clear();
  }
}
