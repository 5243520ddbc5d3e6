import type { FastifyInstance } from 'fastify';
import { RETRY_AFTER_SECONDS } from '../../errors.js';
import type { GatewayCore } from '../core.js';

/** What the internal listener's /readyz answers; the public one answers only `status`. */
export interface ReadinessDetail {
  status: 'ready' | 'not_ready';
  store: 'ready' | 'unreachable';
  tenants: Record<string, { idporten: 'ready' | 'not_ready' }>;
}

/**
 * Ready when the session store answers and at least half of the tenants have their provider metadata (with
 * one tenant: that one). A vendor's gateway keeps serving its other customers while one customer's provider
 * is down; the internal listener's detail names the tenants that are not ready.
 */
export async function readiness(core: Pick<GatewayCore, 'tenants' | 'lifecycle'>): Promise<ReadinessDetail> {
  const tenants = Object.fromEntries(core.tenants.all.map((t) => [t.id, { idporten: t.idporten.ready ? ('ready' as const) : ('not_ready' as const) }]));
  let store: ReadinessDetail['store'] = 'ready';
  try {
    await core.lifecycle.sessions.ping();
  } catch {
    store = 'unreachable';
  }
  const readyTenants = Object.values(tenants).filter((t) => t.idporten === 'ready').length;
  const ready = store === 'ready' && readyTenants > 0 && readyTenants * 2 >= core.tenants.all.length;
  return { status: ready ? 'ready' : 'not_ready', store, tenants };
}

/** The status and headers of a /readyz answer, on either listener: 503 with Retry-After while not ready. */
export function readinessReply(status: ReadinessDetail['status']): { code: 200 | 503; headers: Record<string, string> } {
  if (status === 'ready') return { code: 200, headers: { 'cache-control': 'no-store' } };
  return { code: 503, headers: { 'cache-control': 'no-store', 'retry-after': String(RETRY_AFTER_SECONDS.notReady) } };
}

/**
 * GET /healthz (the process answers) and GET /readyz (ready or not, 200 or 503 with Retry-After). The public /readyz
 * names neither the store's state nor the tenants: that detail is served on the internal listener (metrics-server.ts).
 */
export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const { status } = await readiness(app.gateway);
    const { code, headers } = readinessReply(status);
    return reply.code(code).headers(headers).send({ status });
  });
}
