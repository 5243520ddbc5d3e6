import type { FastifyInstance } from 'fastify';

/** GET /healthz (the process answers) and GET /readyz (every tenant's provider metadata loaded, store reachable). */
export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const { tenants, lifecycle } = app.gateway;
  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const states = Object.fromEntries(tenants.all.map((t) => [t.id, { idporten: t.idporten.ready ? 'ready' : 'not_ready' }]));
    let store: 'ready' | 'unreachable' = 'ready';
    try {
      await lifecycle.sessions.ping();
    } catch {
      store = 'unreachable';
    }
    const ready = store === 'ready' && Object.values(states).every((t) => t.idporten === 'ready');
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'not_ready', store, tenants: states });
  });
}
