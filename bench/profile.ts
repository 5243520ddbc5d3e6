/**
 * CPU profile of the gateway under a proxied load: `node --import tsx bench/profile.ts [--seconds 20]
 * [--connections 10] [--rate N] [--store memory|redis] [--target gateway|bare] [--top 10] [--keep DIR]`. `--target bare` profiles
 * the bare @fastify/http-proxy peer instead (bench/peers/bare-child.ts, the client sending the bearer), the
 * baseline the gateway's costs are read against. The profiled server runs with `node --cpu-prof`, pinned
 * to core 0 (the runner and the upstream, bench/light-echo.ts as in the peers benchmark, on core 1); after the
 * load the gateway exits, writes its profile and this prints the self time per request by function and by module
 * (src file, package, or Node internals), counting only the samples taken during the measured run (the monotonic
 * clock is the machine's, so the runner's window is the profile's). `--rate N` measures at a fixed N req/s instead of
 * as fast as the server answers: what each request costs when it comes alone, wake-ups included.
 * Not part of `npm run bench`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { canPin, pin } from './cpu.js';
import { forkChild, type Child } from './ipc.js';
import { startPrivateRedis } from './redis.js';
import { fixed, table } from './report.js';
import { ECHO_ROUTE, startBenchStack } from './stack.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  /** Microseconds on the monotonic clock, which every process on the machine shares. */
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '10' },
    store: { type: 'string', default: 'memory' },
    target: { type: 'string', default: 'gateway' },
    top: { type: 'string', default: '10' },
    rate: { type: 'string' },
    keep: { type: 'string' },
  },
});

const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'bench-prof-'));
const redis = values.store === 'redis' ? await startPrivateRedis() : undefined;
if (values.store === 'redis' && !redis) throw new Error('redis-server is not installed');
const profileArgs = ['--cpu-prof', '--cpu-prof-dir', dir];
const bare = values.target === 'bare';
const stack = await startBenchStack({
  accessTokenTtlSeconds: 3600,
  upstream: 'light-echo',
  ...(bare ? {} : { gatewayExecArgv: profileArgs }),
  ...(redis ? { store: { type: 'redis' as const, url: redis.url, keyPrefix: 'bench:' } } : {}),
});
let peer: Child | undefined;
let requests = 0;
/** The measured load's window on the monotonic clock (µs): only the samples taken in it are counted. */
let window = { from: 0, to: 0 };
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
try {
  const cookie = await stack.login();
  let target: { url: string; headers: Record<string, string> };
  let serverPid = stack.gatewayPid;
  if (bare) {
    const { token } = await stack.accessToken(cookie);
    peer = await forkChild(new URL('./peers/bare-child.ts', import.meta.url), { execArgv: profileArgs });
    const started = await peer.call<{ url: string; pid: number }>('start', { upstreamOrigin: new URL(stack.echoUrl).origin });
    serverPid = started.pid;
    target = { url: `${started.url}${ECHO_ROUTE}/x`, headers: { authorization: `Bearer ${token}` } };
  } else {
    target = { url: `${stack.publicUrl}${ECHO_ROUTE}/x`, headers: { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' } };
  }
  if (canPin()) {
    pin(serverPid, '0');
    pin(stack.lookalikesPid, '1');
    pin(process.pid, '1');
    if (redis) pin(redis.pid, '1');
  }
  // A warm-up at full speed, then the measured run (at a fixed rate with --rate).
  await autocannon({ ...target, connections: Number(values.connections), duration: 3, timeout: 10 });
  const from = monotonicUs();
  const r = await autocannon({ ...target, connections: Number(values.connections), duration: Number(values.seconds), timeout: 10, ...(values.rate ? { overallRate: Number(values.rate) } : {}) });
  window = { from, to: monotonicUs() };
  requests = r['2xx'];
  if (r.non2xx + r.errors + r.timeouts) console.error(`${r.non2xx + r.errors + r.timeouts} failed`);
} finally {
  await peer?.stop();
  await stack.close();
  await redis?.stop();
}

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error(`no profile in ${dir}`);
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
if (!values.keep) rmSync(dir, { recursive: true, force: true });

// Each sample's time is the profile's start plus the deltas so far; start-up, login and warm-up fall outside the window.
const selfUs = new Map<number, number>();
let at = profile.startTime;
for (let i = 0; i < profile.samples.length; i += 1) {
  const delta = profile.timeDeltas[i] ?? 0;
  at += delta;
  if (at >= window.from && at <= window.to) selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + delta);
}
const root = process.cwd();
function moduleOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const path = url.replace(/^file:\/\//, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  if (path.startsWith('node:')) return `node:${path.slice(5).split('/').slice(0, 2).join('/')}`;
  return path.startsWith(root) ? path.slice(root.length + 1) : path;
}
const byFunction = new Map<string, number>();
const byModule = new Map<string, number>();
let total = 0;
let busy = 0;
for (const node of profile.nodes) {
  const us = selfUs.get(node.id) ?? 0;
  if (!us) continue;
  total += us;
  const { functionName, url, lineNumber } = node.callFrame;
  if (functionName === '(idle)') continue;
  busy += us;
  const mod = moduleOf(url, functionName);
  const fn = `${functionName || '(anonymous)'} ${url ? `${mod}:${lineNumber + 1}` : ''}`.trim();
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  byModule.set(mod, (byModule.get(mod) ?? 0) + us);
}
const top = Number(values.top);
const rows = (m: Map<string, number>): string[][] =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => [k, fixed(us / requests, 1), `${fixed((100 * us) / busy, 1)} %`]);
console.log(`${requests} proxied requests (${bare ? 'bare @fastify/http-proxy' : `gateway, ${values.store} store`}, ${values.connections} connections${values.rate ? `, ${values.rate} req/s` : ''}); busy ${fixed(busy / requests, 1)} µs of profiled CPU per request (of ${fixed(total / 1000)} ms sampled in the ${fixed((window.to - window.from) / 1000)} ms of the measured run, idle excluded)\n`);
console.log(`Self time by function, top ${top}:\n\n${table(['function', 'µs/req', 'share of busy'], rows(byFunction))}\n`);
console.log(`Self time by module, top ${top}:\n\n${table(['module', 'µs/req', 'share of busy'], rows(byModule))}`);
