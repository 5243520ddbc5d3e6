/**
 * The internal listener (`server.metricsPort`: /metrics, the detailed /readyz, /admin/) binds an address of its
 * own, `server.metricsHost`, loopback unless the file names another, and never `server.host`.
 *
 * Finding "edge hygiene": it bound `server.host`, so with the `0.0.0.0` every container needs for its public
 * port, /admin/ and /metrics answered on every address the public port did, for anyone who could reach the pod.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { freePort } from '../demo/free-port.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { spawnCli } from './helpers/cli.js';
import { SESSION_KEY } from './helpers/stack.js';

/** One address of this machine that is not loopback, if it has one. */
const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry !== undefined && !entry.internal && entry.family === 'IPv4')?.address;

const TENANT = { id: 'one', publicUrl: 'http://localhost:3000', idporten: { issuer: 'http://127.0.0.1:9', clientId: 'c', clientAuth: { method: 'client_secret_post', secret: 'x' } }, routes: [] };

/** Whether a TCP connection to address:port is accepted. */
function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function until(check: () => Promise<boolean>, gaveUp: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gaveUp()) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

/** Starts the gateway process with `server` merged into a minimal configuration; stopped at teardown. */
async function startGateway(t: Test, server: Record<string, unknown>): Promise<{ port: number; metricsPort: number }> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'bff-internal-'));
  const file = join(dir, 'gateway.json');
  writeFileSync(
    file,
    JSON.stringify({
      server: { host: '0.0.0.0', port, metricsPort, ...server },
      session: { keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: [{ ...TENANT, publicUrl: `http://localhost:${port}` }],
    }),
  );
  const proc = spawnCli(['--config', file]);
  t.teardown(async () => {
    proc.child.kill('SIGTERM');
    await proc.done;
    rmSync(dir, { recursive: true, force: true });
  });
  const answers = await until(() => fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.ok, () => false), () => proc.child.exitCode !== null);
  t.ok(answers, 'the internal listener answers on loopback', { output: proc.output() });
  return { port, metricsPort };
}

t.test('server.metricsHost defaults to loopback, is kept when given, and needs server.metricsPort', async (t) => {
  const config = (server: Record<string, unknown>) => normaliseConfig({ server, session: { keys: [{ id: 'k1', secret: SESSION_KEY }] }, tenants: [TENANT] }, {});
  t.equal(config({ host: '0.0.0.0', metricsPort: 9464 }).server.metricsHost, '127.0.0.1', 'not server.host');
  t.equal(config({ host: '0.0.0.0', metricsPort: 9464, metricsHost: '0.0.0.0' }).server.metricsHost, '0.0.0.0');
  t.equal(config({ host: '0.0.0.0' }).server.metricsHost, undefined, 'no internal listener, no address');
  t.throws(() => config({ metricsHost: '10.1.2.3' }), /server\.metricsHost: needs server\.metricsPort/);
});

t.test('with server.host 0.0.0.0, the internal listener answers on loopback only', { skip: outsideAddress ? false : 'this machine has no address besides loopback' }, async (t) => {
  const { port, metricsPort } = await startGateway(t, {});
  t.ok(await accepts(outsideAddress!, port), `the public port answers on ${outsideAddress}`);
  t.notOk(await accepts(outsideAddress!, metricsPort), `the internal listener does not answer on ${outsideAddress}`);
});

t.test('server.metricsHost 0.0.0.0 (a pod scraped by Prometheus) puts the internal listener on every address', { skip: outsideAddress ? false : 'this machine has no address besides loopback' }, async (t) => {
  const { metricsPort } = await startGateway(t, { metricsHost: '0.0.0.0' });
  t.ok(await accepts(outsideAddress!, metricsPort), `the internal listener answers on ${outsideAddress}`);
});

// Finding "edge hygiene": config/app-static.yaml and app-upstream.yaml, the setups the README hands an SPA team,
// listen on 0.0.0.0 without server.metricsPort, so /metrics was served on the public port.
t.test('no shipped configuration that listens beyond loopback serves /metrics on its public port', async (t) => {
  const dir = new URL('../config/', import.meta.url);
  const files = readdirSync(dir).filter((name) => name.endsWith('.yaml'));
  t.ok(files.includes('app-static.yaml') && files.includes('app-upstream.yaml'));
  for (const name of files) {
    const server = (parse(readFileSync(new URL(name, dir), 'utf8')) as { server?: { host?: string; metricsPort?: number } }).server ?? {};
    const loopback = ['127.0.0.1', '::1', 'localhost', undefined].includes(server.host);
    t.ok(loopback || server.metricsPort !== undefined, `${name}: server.host ${server.host} with ${server.metricsPort === undefined ? 'no server.metricsPort' : `server.metricsPort ${server.metricsPort}`}`);
  }
});
