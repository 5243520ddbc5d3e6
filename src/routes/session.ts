import type { FastifyInstance } from 'fastify';
import { requireSession, requireTenant, type GatewayContext } from '../http/context.js';
import { enforceCsrf, sessionView } from './auth-common.js';

/** GET /auth/session and POST /auth/session/refresh. */
export async function sessionRoutes(app: FastifyInstance, { ctx }: { ctx: GatewayContext }): Promise<void> {
  app.get('/auth/session', async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    const session = await requireSession(ctx, request, tenant);
    return reply.header('cache-control', 'no-store').send(sessionView(ctx, session));
  });

  app.post('/auth/session/refresh', async (request, reply) => {
    const tenant = requireTenant(ctx, request);
    enforceCsrf(ctx, request, tenant);
    const session = await requireSession(ctx, request, tenant);
    const refreshed = await ctx.tokens.refreshNow(session, tenant);
    return reply.header('cache-control', 'no-store').send(sessionView(ctx, refreshed));
  });
}
