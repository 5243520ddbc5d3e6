/**
 * A gateway instance in a process of its own, for tests that must kill one for real (SIGKILL): forked with
 * bench/ipc.ts's forkChild, built with buildApp from the raw configuration the test sends, listening on a
 * free port of 127.0.0.1 (`start`) or on the port the configuration names (`startOnConfiguredPort`: to take
 * over the address of an instance the test closed). Its log goes to stdout, which forkChild discards. With
 * BFF_TEST_BROKEN=lock|cas|lock+cas in its environment it runs that broken variant of broken-variant.ts.
 */
import type { AddressInfo } from 'node:net';
import { buildApp, type Gateway } from '../../src/app.js';
import { normaliseConfig } from '../../src/config/normalise.js';
import { serveCalls } from '../../bench/ipc.js';
import { brokenDeps } from './broken-variant.js';

let gateway: Gateway | undefined;

async function start(raw: unknown, port?: number): Promise<{ port: number; pid: number }> {
  const config = normaliseConfig(raw, {});
  gateway = await buildApp(config, await brokenDeps(config));
  await gateway.app.listen({ host: '127.0.0.1', port: port ?? config.server.port });
  await gateway.warmUp();
  return { port: (gateway.app.server.address() as AddressInfo).port, pid: process.pid };
}

serveCalls({
  start: (raw: unknown) => start(raw, 0),

  startOnConfiguredPort: (raw: unknown) => start(raw),

  async close() {
    await gateway?.close();
  },
});
