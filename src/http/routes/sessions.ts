import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors.js';
import { enforceCsrf } from '../csrf.js';
import { clearSessionCookie } from '../replies.js';
import { userAgentSummary } from '../user-agent.js';

/** What GET /auth/sessions lists for each session: never a session id, store key, cookie value or token. */
export interface SessionListEntry {
  handle: string;
  createdAt: string;
  lastSeenAt: string;
  userAgent: string;
  current: boolean;
}

/**
 * The user's own sessions (OWASP ASVS 5.0 7.4.5 and 7.5.2): GET /auth/sessions lists them,
 * DELETE /auth/sessions/{handle} ends one, POST /auth/logout/all ends them all. Only sessions of the
 * requesting session's user in the requesting tenant are ever seen or ended.
 */
export async function userSessionRoutes(app: FastifyInstance): Promise<void> {
  const { lifecycle, audit } = app.gateway;

  app.get('/auth/sessions', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    const session = await request.bff.requireSession();
    const sessions = await lifecycle.listSessions(tenant, session.data.user.sub);
    const list: SessionListEntry[] = sessions.map((s) => ({
      handle: s.handle,
      createdAt: new Date(s.createdAt).toISOString(),
      lastSeenAt: new Date(s.lastSeenAt).toISOString(),
      userAgent: userAgentSummary(s.userAgent),
      current: s.session.id === session.id,
    }));
    return reply.header('cache-control', 'no-store').send(list);
  });

  app.delete<{ Params: { handle: string } }>('/auth/sessions/:handle', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    enforceCsrf(request, tenant, audit);
    const session = await request.bff.requireSession();
    const ended = await lifecycle.endByHandle(tenant, session.data.user.sub, request.params.handle, 'user');
    // The same answer for a handle that never existed, one already ended, and one of another user or tenant.
    if (!ended) throw new GatewayError('route_not_found', 'There is no such session among yours.');
    if (ended.id === session.id) clearSessionCookie(reply, tenant);
    return reply.header('cache-control', 'no-store').code(204).send();
  });

  app.post('/auth/logout/all', async (request, reply) => {
    const tenant = request.bff.requireTenant();
    enforceCsrf(request, tenant, audit);
    const session = await request.bff.requireSession();
    const ended = await lifecycle.endAll(tenant, session.data.user.sub, 'all');
    clearSessionCookie(reply, tenant);
    return reply.header('cache-control', 'no-store').send({ ended });
  });
}
