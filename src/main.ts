import { buildApp } from './app.js';
import { loadConfigFromProcess } from './config/cli.js';
import { ConfigError } from './config/errors.js';
import type { GatewayConfig } from './config/types.js';
import { createLogger } from './logging.js';
import { startMetricsServer } from './http/metrics-server.js';

/** Process entry: config → app → listen; SIGTERM stops accepting, lets in-flight requests finish (bounded), exits 0. */
async function main(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfigFromProcess(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`idporten-bff: invalid configuration\n${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ level: config.server.logLevel });
  const gateway = await buildApp(config, { logger });
  const metricsServer = config.server.metricsPort !== undefined ? await startMetricsServer(gateway.core.metrics, config.server.host, config.server.metricsPort) : undefined;
  // A deeper accept queue than Node's 511: a burst of new connections (say, a thousand SPA tabs after a deploy)
  // otherwise overflows it and clients wait for TCP retransmits.
  await gateway.app.listen({ host: config.server.host, port: config.server.port, backlog: 2048 });
  await gateway.warmUp();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.warn('in-flight requests did not finish in time; exiting');
      process.exit(0);
    }, config.server.shutdownTimeoutMs);
    timer.unref();
    Promise.all([gateway.close(), metricsServer?.close()])
      .then(() => process.exit(0))
      .catch((err: Error) => {
        logger.error({ reason: err.message }, 'error during shutdown');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: Error) => {
  process.stderr.write(`idporten-bff: failed to start: ${err.message}\n`);
  process.exit(1);
});
