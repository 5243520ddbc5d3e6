import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../http/context.js';

/** GET /healthz (the process answers) and GET /readyz (every tenant's provider metadata loaded, store reachable). */
export async function healthRoutes(app: FastifyInstance, { ctx }: { ctx: GatewayContext }): Promise<void> {
  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const tenants = Object.fromEntries(ctx.config.tenants.map((t) => [t.id, { idporten: ctx.clients.get(t.id)?.ready ? 'ready' : 'not_ready' }]));
    let store: 'ready' | 'unreachable' = 'ready';
    try {
      await ctx.sessions.ping();
    } catch {
      store = 'unreachable';
    }
    const ready = store === 'ready' && Object.values(tenants).every((t) => t.idporten === 'ready');
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'not_ready', store, tenants });
  });
}
