/**
 * What the proxy costs per tenant: N tenants with two API routes each, on one plain Fastify with the proxy
 * layer only (no ID-porten, no sessions: the bearer is a constant). Each tenant count runs in its own process
 * so that RSS is its own. Reports the time to `ready`, RSS and heap after ready, the routes Fastify holds,
 * the upstream dispatchers the proxy keeps, and the CPU per proxied request (through `inject`, to one local
 * upstream, the last tenant's host).
 *
 *   node --import tsx bench/tenant-scale.ts                 # 1 and 500 tenants
 *   node --import tsx bench/tenant-scale.ts --tenants 1,100,500,1000 --requests 4000
 *   node --import tsx bench/tenant-scale.ts --distinct-paths     # each tenant under paths of its own
 *   node --import tsx bench/tenant-scale.ts --gateway            # the whole gateway (buildApp), not the proxy alone
 *   node --import tsx bench/tenant-scale.ts --provider           # 1 and 5000 tenants on one ID-porten look-alike
 *                                                                 # (start-up, provider requests, login; tenant-provider.ts)
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createAuditLog } from '../src/audit/audit-log.js';
import { buildApp } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import type { RouteConfig, TenantConfig } from '../src/config/types.js';
import * as proxy from '../src/proxy/register.js';
import { measureProvider, providerTable, startPlainUpstream, type ProviderResult } from './tenant-provider.js';

interface Result {
  tenants: number;
  routes: number;
  readyMs: number;
  rssMiB: number;
  heapMiB: number;
  dispatchers: number | string;
  cpuUsPerRequest: number;
  reqPerSec: number;
}

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};

if (args.includes('--provider')) {
  if (args.includes('--child')) {
    process.stdout.write(`${JSON.stringify(await measureProvider(Number(arg('tenants', '1')), Number(arg('requests', '2000'))))}\n`);
    process.exit(0);
  }
  const rows = arg('tenants', '1,5000').split(',').map((n) => JSON.parse(execFileSync(process.execPath, [
    '--import', 'tsx', '--expose-gc', fileURLToPath(import.meta.url), '--provider', '--child', '--tenants', n, '--requests', arg('requests', '2000'),
  ], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)!) as ProviderResult);
  process.stdout.write(providerTable(rows));
} else if (args.includes('--child')) {
  process.stdout.write(`${JSON.stringify(await measure(Number(arg('tenants', '1')), Number(arg('requests', '3000')), args.includes('--distinct-paths'), args.includes('--gateway')))}\n`);
} else {
  const counts = arg('tenants', '1,500').split(',').map(Number);
  const requests = arg('requests', '3000');
  const rows: Result[] = counts.map((n) => JSON.parse(execFileSync(process.execPath, [
    '--import', 'tsx', '--expose-gc', fileURLToPath(import.meta.url), '--child', '--tenants', String(n), '--requests', requests,
    ...(args.includes('--distinct-paths') ? ['--distinct-paths'] : []),
    ...(args.includes('--gateway') ? ['--gateway'] : []),
  ], { encoding: 'utf8' })) as Result);
  process.stdout.write('| tenants | routes in Fastify | ready (ms) | RSS (MiB) | heap (MiB) | upstream dispatchers | CPU/request (µs) | req/s (inject) |\n');
  process.stdout.write('|---:|---:|---:|---:|---:|---:|---:|---:|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.tenants} | ${r.routes} | ${r.readyMs} | ${r.rssMiB} | ${r.heapMiB} | ${r.dispatchers} | ${r.cpuUsPerRequest} | ${r.reqPerSec} |\n`);
  }
}

async function measure(tenantCount: number, requests: number, distinct: boolean, whole: boolean): Promise<Result> {
  const { server: upstream, url: origin } = await startPlainUpstream();

  const route = (path: string, upstreamPath: string): RouteConfig => ({
    path, upstream: `${origin}${upstreamPath}`, token: 'none', methods: ['GET', 'POST'], timeoutMs: 10_000, bodyLimitBytes: 1024 * 1024, forwardHeaders: [],
  });
  const tenants: TenantConfig[] = Array.from({ length: tenantCount }, (_, i) => ({
    id: `t${i}`,
    publicUrl: `https://t${i}.example.test`,
    idporten: {
      issuer: 'https://op.invalid', clientId: `t${i}`, clientAuth: { method: 'client_secret_post', secret: 'unused' },
      scopes: ['openid'], acrValues: 'idporten-loa-substantial', allowedAcrValues: ['idporten-loa-substantial'],
      uiLocales: 'nb', allowedLocales: ['nb'], postLogoutRedirectUri: `https://t${i}.example.test/`, logoutHint: 'id_token', usePar: false, httpTimeoutMs: 5000,
    },
    // Shared paths (every tenant has /api/skatt and /api/altinn), or, with --distinct-paths, paths of its own.
    routes: distinct
      ? [route(`/api/t${i}/skatt`, `/skatt/t${i}`), route(`/api/t${i}/altinn`, `/altinn/t${i}`)]
      : [route('/api/skatt', `/skatt/t${i}`), route('/api/altinn', `/altinn/t${i}`)],
  }));

  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const started = performance.now();
  let routes = 0;
  let routing: unknown;
  let app: FastifyInstance;
  if (whole) {
    // The whole gateway (Tenants, ID-porten clients, cookie policies, all routes), provider discovery left out.
    const config = normaliseConfig({ server: { port: 0 }, session: { keys: [{ id: 'k1', secret: Buffer.alloc(32, 1).toString('base64url') }] }, tenants: tenants.map((t) => ({ id: t.id, publicUrl: t.publicUrl, idporten: { issuer: t.idporten.issuer, clientId: t.idporten.clientId, clientAuth: t.idporten.clientAuth, acrValues: t.idporten.acrValues }, routes: t.routes.map((r) => ({ path: r.path, upstream: r.upstream, token: r.token, methods: r.methods })) })) }, {});
    const gateway = await buildApp(config, { logger: pino({ level: 'silent' }), onRoute: () => void (routes += 1) });
    app = gateway.app;
    app.gateway.tenants.all.forEach((t) => Object.defineProperty(t.idporten, 'ready', { value: true }));
  } else {
    app = Fastify({ logger: false });
    app.addHook('onRoute', () => void (routes += 1));
    routing = await proxy.registerProxyRoutes(app, {
      tenants,
      trustProxy: false,
      audit: createAuditLog(pino({ level: 'silent' })),
      auditContext: () => ({}),
      loginUrl: () => '/auth/login',
      bearerFor: async () => undefined,
      hasSession: async () => false,
    });
  }
  await app.ready();
  const readyMs = Math.round(performance.now() - started);
  gc?.();
  const memory = process.memoryUsage();

  const host = `t${tenantCount - 1}.example.test`;
  const path = distinct ? `/api/t${tenantCount - 1}/skatt` : '/api/skatt';
  const call = () => app.inject({ method: 'GET', url: `${path}/x?y=1`, headers: { host, 'x-csrf': '1' } });
  for (let i = 0; i < 2000; i += 1) await call();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < requests; i += 1) {
    const res = await call();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${res.body}`);
  }
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // Before the routing table, every registration had an Agent of its own (two router entries each).
  const dispatchers = whole ? 'n/a' : (routing as { dispatchers?: number } | undefined)?.dispatchers ?? `${routes / 2} (one per registration)`;
  await app.close();
  upstream.close();
  return {
    tenants: tenantCount,
    routes,
    readyMs,
    rssMiB: Math.round(memory.rss / 2 ** 20),
    heapMiB: Math.round(memory.heapUsed / 2 ** 20),
    dispatchers,
    // Both processes, this one does the gateway and the upstream: the difference between rows is the gateway's.
    cpuUsPerRequest: Math.round((cpu.user + cpu.system) / requests),
    reqPerSec: Math.round(requests / (wallMs / 1000)),
  };
}
