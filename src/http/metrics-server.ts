import { createServer, type Server } from 'node:http';
import { adminHandler } from './admin.js';
import type { GatewayCore } from './core.js';
import { readiness, readinessReply } from './routes/health.js';

/**
 * The internal listener (`server.metricsPort` on `server.metricsHost`, never the public listener's address), kept
 * off the public one: GET /metrics (Prometheus text),
 * GET /readyz with the detail the public /readyz leaves out (the store's state, each tenant's provider state),
 * and, when `server.admin` gives a credential, session administration under /admin/ (`admin.ts`).
 */
export async function startMetricsServer(core: Pick<GatewayCore, 'metrics' | 'tenants' | 'lifecycle' | 'config' | 'runtimeTenants' | 'integrations'>, host: string, port: number): Promise<{ server: Server; close(): Promise<void> }> {
  const { metrics } = core;
  const admin = core.config.server.admin ? adminHandler(core, core.config.server.admin.credential) : undefined;
  const server = createServer((req, res) => {
    if (admin?.(req, res)) return;
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text))
        .catch(() => res.writeHead(500).end());
      return;
    }
    if (req.method === 'GET' && req.url === '/readyz') {
      readiness(core)
        .then((detail) => {
          const { code, headers } = readinessReply(detail.status);
          res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(detail));
        })
        .catch(() => res.writeHead(500).end());
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { server, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
