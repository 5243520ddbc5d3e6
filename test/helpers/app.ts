/**
 * Helpers for tests of the app on the gateway's origin (`tenants[].app`): a copy of the fixture SPA, a
 * gateway with one tenant per host and no provider traffic, and a raw HTTP request that puts its path on
 * the wire byte for byte.
 */
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import pino from 'pino';
import { WebSocketServer } from 'ws';
import { buildApp } from '../../src/app.js';
import { normaliseConfig } from '../../src/config/normalise.js';
import { CLIENT_SECRET, SESSION_KEY } from './stack.js';

export const SPA_FIXTURE = fileURLToPath(new URL('../fixtures/spa', import.meta.url));
export const HASHED_ASSET = '/assets/app-7c1e4b9a.js';

/** The request headers of a browser's top-level page load. */
export const NAV = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'sec-fetch-site': 'none' };

/** A copy of the fixture SPA in a temp folder, next to a file outside it and a symlink pointing there. */
export function spaCopy(t: Test, marker = 'fixture'): { dir: string; outsideText: string } {
  const base = mkdtempSync(join(tmpdir(), 'bff-app-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const dir = join(base, 'dist');
  cpSync(SPA_FIXTURE, dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), `<!doctype html><title>${marker}</title><main id="view"></main>`);
  const outsideText = `outside-the-app-${marker}`;
  writeFileSync(join(base, 'secret.txt'), outsideText);
  symlinkSync(join(base, 'secret.txt'), join(dir, 'assets', 'leak.txt'));
  symlinkSync(base, join(dir, 'up'));
  return { dir, outsideText };
}

/**
 * A gateway with no provider traffic (nothing here logs in), one tenant per host with the given app
 * (`undefined`: none). `tenant` adds raw settings to every tenant (or to each, by its host); a host may
 * name its scheme (`https://a.example`), plain http otherwise.
 */
export async function staticGateway(
  t: Test,
  apps: Record<string, Record<string, unknown> | undefined>,
  tenant: Record<string, unknown> | ((host: string) => Record<string, unknown>) = {},
) {
  const config = normaliseConfig(
    {
      server: { host: '127.0.0.1', port: 0 },
      session: { store: { type: 'memory', maxSessions: 100 }, keys: [{ id: 'k1', secret: SESSION_KEY }] },
      tenants: Object.entries(apps).map(([host, app]) => {
        const publicUrl = host.includes('://') ? host : `http://${host}`;
        const name = new URL(publicUrl).hostname;
        return {
          id: name.split('.')[0],
          publicUrl,
          idporten: { environment: 'test', clientId: `${name}-client`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET } },
          routes: [{ path: '/api', upstream: 'http://127.0.0.1:9/api', token: 'none' }],
          ...(app ? { app } : {}),
          ...(typeof tenant === 'function' ? tenant(host) : tenant),
        };
      }),
    },
    {},
  );
  const gateway = await buildApp(config, { logger: pino({ level: 'silent' }) });
  t.teardown(() => gateway.close());
  await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (gateway.app.server.address() as AddressInfo).port;
  return { gateway, port };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A raw request: the path goes on the wire byte for byte (no client-side dot-segment removal). */
export function raw(port: number, host: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers: { host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * A stand-in app server (a dev server, a frontend container): `handler` on a free port of 127.0.0.1, with a
 * WebSocket server on the same port. Both are closed, connections and all, at the test's teardown.
 */
export async function startAppServer(t: Test, handler: RequestListener): Promise<{ url: string; wss: WebSocketServer }> {
  const server = createServer(handler);
  const wss = new WebSocketServer({ server });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, wss };
}
