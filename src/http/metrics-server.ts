import { createServer, type Server } from 'node:http';
import type { GatewayMetrics } from '../audit/metrics.js';

/** /metrics on its own port, so it can stay off the public listener. */
export async function startMetricsServer(metrics: GatewayMetrics, host: string, port: number): Promise<{ server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text))
      .catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { server, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
