#!/usr/bin/env node
import { AUDIT_USAGE, INTEGRATIONS_USAGE, USAGE, parseCommand } from './cli/args.js';
import { loadConfig } from './config/cli.js';
import { ConfigError } from './config/errors.js';
import { DEFAULT_METRICS_HOST } from './config/server.js';
import type { GatewayConfig } from './config/types.js';

/**
 * Process entry. `idporten-bff [--config FILE]` runs the gateway; `--check`, `--help`, `--version` and
 * `audit trace` answer and exit without starting anything (the server's modules are not even loaded).
 *
 * Exit status: 0 success, 1 failure while running, 2 invalid configuration or usage.
 */
async function main(argv: string[]): Promise<void> {
  const command = parseCommand(argv);
  switch (command.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return;
    case 'audit-help':
      process.stdout.write(AUDIT_USAGE);
      return;
    case 'integrations-help':
      process.stdout.write(INTEGRATIONS_USAGE);
      return;
    case 'version': {
      const { packageVersion } = await import('./cli/version.js');
      process.stdout.write(`${packageVersion()}\n`);
      return;
    }
    case 'usage-error':
      process.stderr.write(`idporten-bff: ${command.message}\n\n${command.usage}`);
      process.exitCode = 2;
      return;
    case 'audit-trace': {
      const { runAuditTrace } = await import('./cli/audit-trace.js');
      process.exitCode = await runAuditTrace(command, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
      return;
    }
    case 'integrations': {
      const loaded = load(command.configPath);
      if (!loaded) return;
      const { runIntegrations } = await import('./cli/integrations.js');
      process.exitCode = await runIntegrations(command, loaded.config, { stdout: process.stdout, stderr: process.stderr });
      return;
    }
    case 'check': {
      const loaded = load(command.configPath);
      if (!loaded) return;
      const { maskConfig } = await import('./cli/mask-config.js');
      process.stdout.write(`${JSON.stringify(maskConfig(loaded.config), null, 2)}\n`);
      const tenants = loaded.config.tenants.length;
      process.stderr.write(`idporten-bff: configuration ${loaded.file} is valid (${tenants} ${tenants === 1 ? 'tenant' : 'tenants'})\n`);
      return;
    }
    case 'serve': {
      const loaded = load(command.configPath);
      if (loaded) await serve(loaded.config, loaded.file);
      return;
    }
  }
}

/** Loads the configuration, or explains what is wrong with it and sets exit status 2. */
function load(path: string | undefined): { config: GatewayConfig; file: string } | undefined {
  try {
    return loadConfig(path, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`idporten-bff: invalid configuration\n${err.message}\n`);
      process.exitCode = 2;
      return undefined;
    }
    throw err;
  }
}

/**
 * config → app → listen. SIGTERM (or SIGINT) stops accepting, lets in-flight requests finish, writes out the
 * buffered log lines and exits 0 — and whatever is still running when `server.shutdownTimeout` has passed
 * since the signal, the process exits then: the deadline does not depend on the server, the store or stdout.
 */
async function serve(config: GatewayConfig, configFile: string): Promise<void> {
  const [{ buildApp }, { createLogger, LogSink }, { startMetricsServer }, { startTelemetry }, { validated, ReloadRefused }] = await Promise.all([
    import('./app.js'),
    import('./logging.js'),
    import('./http/metrics-server.js'),
    import('./audit/otel.js'),
    import('./plugin.js'),
  ]);
  const sink = new LogSink();
  const logger = createLogger({ level: config.server.logLevel, destination: sink });
  const exit = (code: number): never => {
    sink.flushNow();
    process.exit(code);
  };

  type Started = { close(): Promise<unknown> };
  const running: Started[] = [];
  // OpenTelemetry when the OTEL_* variables switch it on (nothing of it is loaded otherwise); its last spans are
  // flushed once the server has closed.
  let otel: Started | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, shutdownTimeoutMs: config.server.shutdownTimeoutMs }, 'shutting down');
    // The hard deadline: a plain timer, kept referenced, that nothing awaits. Writes to stdout never block
    // the event loop (see LogSink), so it fires on time even when stdout is closed or full.
    // It fires a little before shutdownTimeout (a fifth of it, at most 500 ms) so that the last log write
    // and the process teardown also fit inside the timeout an orchestrator is told about.
    const timeoutMs = config.server.shutdownTimeoutMs;
    setTimeout(() => {
      logger.warn('shutdown deadline reached; exiting with requests or log lines still pending');
      exit(0);
    }, timeoutMs - Math.min(500, timeoutMs / 5));
    Promise.all(running.map((r) => r.close()))
      .then(() => otel?.close())
      .then(async () => {
        logger.info('stopped');
        await sink.drained();
        exit(0);
      })
      .catch(async (err: Error) => {
        logger.error({ reason: err.message }, 'error during shutdown');
        await sink.drained();
        exit(1);
      });
  };
  // Installed before anything starts: a SIGTERM during start-up is a shutdown too, not a kill.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // SIGHUP reads the configuration file again and applies it (see Gateway.reload); a refused one is logged and
  // the running configuration keeps serving. Before the server is up there is nothing to reload.
  let reloadable: { reload(config: ReturnType<typeof validated>): Promise<unknown> } | undefined;
  process.on('SIGHUP', () => {
    if (stopping || !reloadable) return;
    logger.info({ file: configFile }, 'reloading the configuration');
    let next: GatewayConfig;
    try {
      next = loadConfig(configFile, process.env).config;
    } catch (err) {
      logger.error({ reason: (err as Error).message }, 'configuration reload refused; the running configuration keeps serving');
      return;
    }
    // The gateway logs what it applied or why it refused (and gives tenants that await a client the applied one);
    // anything else that stops a reload is logged here.
    reloadable.reload(validated(next)).catch((err: Error) => {
      if (!(err instanceof ReloadRefused)) logger.error({ reason: err.message }, 'configuration reload refused; the running configuration keeps serving');
    });
  });

  try {
    const started = await startTelemetry();
    if (started !== undefined) {
      otel = { close: () => started.shutdown() };
      logger.info('OpenTelemetry tracing on');
    }
    const gateway = await buildApp(config, { logger });
    running.push(gateway);
    reloadable = gateway;
    if (stopping) return void gateway.close();
    if (config.server.metricsPort !== undefined) {
      const metricsServer = await startMetricsServer(gateway.core, config.server.metricsHost ?? DEFAULT_METRICS_HOST, config.server.metricsPort);
      running.push(metricsServer);
    }
    // A deeper accept queue than Node's 511: a burst of new connections (say, a thousand SPA tabs after a deploy)
    // otherwise overflows it and clients wait for TCP retransmits.
    if (!stopping) await gateway.app.listen({ host: config.server.host, port: config.server.port, backlog: 2048 });
    if (!stopping) await gateway.warmUp();
  } catch (err) {
    if (stopping) return;
    logger.fatal({ reason: (err as Error).message }, 'failed to start');
    process.stderr.write(`idporten-bff: failed to start: ${(err as Error).message}\n`);
    await Promise.race([sink.drained(), new Promise((r) => setTimeout(r, 1000).unref())]);
    exit(1);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`idporten-bff: ${err.message}\n`);
  process.exitCode = 1;
});
