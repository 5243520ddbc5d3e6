/**
 * The connections to the upstreams, shared: one undici Agent per TLS trust and connect timeout, each keeping
 * one pool per upstream origin. Tenants that use the same upstream with the same trust share its pool; a tenant
 * with its own CA (`upstreamCaPem`) gets an Agent of its own that trusts that CA besides the public roots
 * (TLS's `ca` replaces the trust store, so the roots are listed too). Certificates are always verified.
 *
 * reply-from takes this object as its `undici` instance. Which Agent a request goes through is named in an
 * internal request header set by the proxy (DISPATCHER_HEADER), removed here before anything is sent.
 */
import { createHash } from 'node:crypto';
import { Agent, type Dispatcher } from 'undici';
import type { RouteConfig, TenantConfig } from '../config/types.js';
import { withDefaultCas } from '../net/fetch.js';

export const DISPATCHER_HEADER = 'x-idporten-bff-dispatcher';

/** Per upstream origin and Agent, as reply-from's own default had it per registration. */
const CONNECTIONS_PER_ORIGIN = 128;

export class UpstreamDispatchers {
  readonly #agents = new Map<string, Agent>();

  /** The key of the Agent for a tenant's route, made on first use. */
  keyFor(tenant: TenantConfig, route: RouteConfig): string {
    const ca = tenant.upstreamCaPem;
    const key = `${ca === undefined ? 'public' : createHash('sha256').update(ca).digest('hex').slice(0, 32)}/${route.timeoutMs}`;
    if (!this.#agents.has(key)) {
      this.#agents.set(key, new Agent({
        pipelining: 1,
        connections: CONNECTIONS_PER_ORIGIN,
        connect: { rejectUnauthorized: true, timeout: route.timeoutMs, ...(ca === undefined ? {} : { ca: withDefaultCas(ca) }) },
      }));
    }
    return key;
  }

  get size(): number {
    return this.#agents.size;
  }

  /** reply-from's side: undici's callback-style request, sent through the Agent the header names. */
  request(options: Dispatcher.RequestOptions, callback: (err: Error | null, data: Dispatcher.ResponseData) => void): void {
    const headers = options.headers as Record<string, string | string[] | undefined>;
    const key = headers[DISPATCHER_HEADER];
    delete headers[DISPATCHER_HEADER];
    const agent = typeof key === 'string' ? this.#agents.get(key) : undefined;
    if (!agent) return callback(new Error('no upstream dispatcher for this request'), undefined as never);
    agent.request(options, callback);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((agent) => agent.close()));
    this.#agents.clear();
  }
}
