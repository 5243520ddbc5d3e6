/**
 * N tenants on one ID-porten look-alike, the whole gateway: what start-up costs (time, memory per tenant, the
 * requests each tenant count makes to the provider), what a key rotation at the provider costs, and what a login
 * and a proxied request cost next to a 1-tenant gateway. One process per tenant count (its RSS is its own); the
 * look-alike and the login driver run in it too, started before the baseline is taken.
 *
 *   node --import tsx bench/tenant-scale.ts --provider                     # 1 and 5000 tenants
 *   node --import tsx bench/tenant-scale.ts --provider --tenants 1,500,5000 --requests 2000
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Agent, fetch as undiciFetch, setGlobalDispatcher } from 'undici';
import { freePort } from '../demo/free-port.js';
import { startIdportenLookalike } from '../demo/idporten-op.js';
import { TEST_USERS } from '../demo/test-users.js';
import { buildApp } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { loginSession } from './login.js';

export interface ProviderResult {
  tenants: number;
  startMs: number;
  rssMiB: number;
  heapMiB: number;
  discoveryAtStart: number;
  jwksAtStart: number;
  discoveryAfterRotation: number;
  jwksAfterRotation: number;
  loginMs: number;
  proxyCpuUs: number;
}

const CLIENT_SECRET = 'a-client-secret-that-is-long-enough-for-hs256-0123456789';
const LOGINS = 10;

/** `tN.localhost` names (RFC 6761 loopback) resolve to 127.0.0.1 in this process, as a browser does. */
const loopbackNames: LookupFunction = (hostname, options, callback) => {
  if (hostname.endsWith('.localhost')) {
    if ((options as { all?: boolean }).all) return (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
    return (callback as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4);
  }
  return dnsLookup(hostname, options, callback);
};

/** The login driver's fetch: the browser's, which finds `tN.localhost` on loopback. */
const browserAgent = new Agent({ connect: { lookup: loopbackNames } });
const browserFetch = ((url: URL, init: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: browserAgent })) as unknown as typeof fetch;

/** An upstream that answers every request with a small JSON body, keeping connections alive. */
export async function startPlainUpstream(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function measureProvider(tenantCount: number, requests: number): Promise<ProviderResult> {
  // Counts the gateway's requests to the provider as they leave this process (its provider fetch uses the global dispatcher).
  const counts = { discovery: 0, jwks: 0 };
  let jwksPath = '';
  setGlobalDispatcher(
    new Agent().compose((dispatch) => (opts, handler) => {
      if (opts.path === '/.well-known/openid-configuration') counts.discovery += 1;
      if (opts.path === jwksPath) counts.jwks += 1;
      return dispatch(opts, handler);
    }),
  );
  const { server: upstream, url: upstreamUrl } = await startPlainUpstream();
  const port = await freePort();
  const origin = (i: number) => `http://t${i}.localhost:${port}`;
  const op = await startIdportenLookalike({
    clients: Array.from({ length: tenantCount }, (_, i) => ({
      client_id: `client-${i}`, client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: [`${origin(i)}/auth/callback`], post_logout_redirect_uris: [`${origin(i)}/`],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    })) as never,
  });
  jwksPath = new URL(op.jwksUri).pathname;
  const config = normaliseConfig({
    server: { port, rateLimit: { login: { max: 100_000, window: '1m' } } },
    session: { keys: [{ id: 'k1', secret: Buffer.alloc(32, 1).toString('base64url') }] },
    tenants: Array.from({ length: tenantCount }, (_, i) => ({
      id: `t${i}`,
      publicUrl: origin(i),
      idporten: { issuer: op.issuer, clientId: `client-${i}`, clientAuth: { method: 'client_secret_post', secret: CLIENT_SECRET }, usePar: false },
      routes: [{ path: '/api/skatt', upstream: `${upstreamUrl}/skatt/t${i}`, token: 'idporten', methods: ['GET'] }],
    })),
  }, {});

  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage();
  const started = performance.now();
  const gateway = await buildApp(config, { logger: pino({ level: 'silent' }) });
  await gateway.app.listen({ host: '127.0.0.1', port });
  await gateway.warmUp();
  const startMs = Math.round(performance.now() - started);
  if (!gateway.core.tenants.all.every((tenant) => tenant.idporten.ready)) throw new Error('not every tenant is ready');
  gc?.();
  const after = process.memoryUsage();
  const atStart = { ...counts };

  // Logins spread over the tenants, each building its tenant's client on first use.
  const sample = Array.from({ length: LOGINS }, (_, k) => Math.floor((k * tenantCount) / LOGINS));
  const pid = TEST_USERS[0]!.pid;
  const loginTimes: number[] = [];
  let cookie = '';
  for (const i of sample) {
    const t0 = performance.now();
    cookie = await loginSession(origin(i), pid, 'bff', browserFetch);
    loginTimes.push(performance.now() - t0);
  }

  // The provider rotates its signing key: logins on other tenants meet the new kid.
  await op.rotateSigningKey({ dropOld: true });
  const beforeRotation = { ...counts };
  for (const i of sample.map((i) => Math.min(tenantCount - 1, i + 1))) await loginSession(origin(i), pid, 'bff', browserFetch);

  // A proxied request of the last login's tenant, with its session (through inject: the gateway's own cost).
  const last = Math.min(tenantCount - 1, sample.at(-1)! + 1);
  const call = () => gateway.app.inject({ method: 'GET', url: '/api/skatt/x', headers: { host: `t${last}.localhost:${port}`, 'x-csrf': '1', cookie: `bff=${cookie}` } });
  cookie = await loginSession(origin(last), pid, 'bff', browserFetch);
  for (let i = 0; i < 500; i += 1) await call();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < requests; i += 1) {
    const res = await call();
    if (res.statusCode !== 200) throw new Error(`proxy status ${res.statusCode}: ${res.body}`);
  }
  const cpu = process.cpuUsage(cpu0);

  await gateway.close();
  await op.close();
  upstream.close();
  loginTimes.sort((a, b) => a - b);
  return {
    tenants: tenantCount,
    startMs,
    rssMiB: Math.round(((after.rss - before.rss) / 2 ** 20) * 10) / 10,
    heapMiB: Math.round(((after.heapUsed - before.heapUsed) / 2 ** 20) * 10) / 10,
    discoveryAtStart: atStart.discovery,
    jwksAtStart: atStart.jwks,
    discoveryAfterRotation: counts.discovery - beforeRotation.discovery,
    jwksAfterRotation: counts.jwks - beforeRotation.jwks,
    loginMs: Math.round(loginTimes[Math.floor(loginTimes.length / 2)]!),
    proxyCpuUs: Math.round((cpu.user + cpu.system) / requests),
  };
}

export function providerTable(rows: ProviderResult[]): string {
  const one = rows.find((r) => r.tenants === 1);
  const perTenant = (r: ProviderResult, key: 'rssMiB' | 'heapMiB') =>
    one && r.tenants > 1 ? `${Math.round((((r[key] - one[key]) * 2 ** 20) / (r.tenants - 1) / 1024) * 10) / 10}` : '–';
  const lines = [
    '| tenants | start-up incl. discovery (ms) | RSS growth (MiB) | heap growth (MiB) | RSS / tenant (KiB) | heap / tenant (KiB) | discovery + JWKS requests at start | after a key rotation | login, median (ms) | proxy CPU/request (µs) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.tenants} | ${r.startMs} | ${r.rssMiB} | ${r.heapMiB} | ${perTenant(r, 'rssMiB')} | ${perTenant(r, 'heapMiB')} | ${r.discoveryAtStart} + ${r.jwksAtStart} | ${r.discoveryAfterRotation} + ${r.jwksAfterRotation} | ${r.loginMs} | ${r.proxyCpuUs} |`);
  }
  return `${lines.join('\n')}\n`;
}
