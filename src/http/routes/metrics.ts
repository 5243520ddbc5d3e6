import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors.js';

/** GET /metrics on the main listener, unless `server.metricsPort` moves it to its own. */
export async function metricsRoute(app: FastifyInstance): Promise<void> {
  const { config, metrics } = app.gateway;
  app.get('/metrics', async (_request, reply) => {
    if (config.server.metricsPort !== undefined) throw new GatewayError('route_not_found', 'Metrics are served on a separate port.');
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
