import type { FastifyInstance } from 'fastify';
import { enforceCsrf } from '../csrf.js';
import { sessionView } from '../session-view.js';

/** GET /auth/session and POST /auth/session/refresh. */
export async function sessionRoutes(app: FastifyInstance): Promise<void> {
  const { lifecycle, audit, config, now } = app.gateway;

  app.get('/auth/session', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    const session = await request.bff.requireSession();
    const view = sessionView(session, config.session, now(), { exposePid: tenant.config.exposePid === true });
    return reply.header('cache-control', 'no-store').send(view);
  });

  app.post('/auth/session/refresh', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    enforceCsrf(request, tenant, audit);
    const session = await request.bff.requireSession();
    const refreshed = await lifecycle.refreshNow(session, tenant);
    const view = sessionView(refreshed, config.session, now(), { exposePid: tenant.config.exposePid === true });
    return reply.header('cache-control', 'no-store').send(view);
  });
}
