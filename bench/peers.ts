/**
 * The gateway next to its peers, one core each: a bare @fastify/http-proxy (defaults, no authentication) and
 * an Express peer (express-session, a CSRF header check, the bearer from the session, http-proxy-middleware),
 * against the gateway with the memory store and with Redis. All proxy `GET /mva/echo/x` to the same upstream
 * echo. Each server is in its own process pinned to core 0 with taskset; the load generator, the upstream and
 * Redis run on core 1. CPU per request is the server process's utime + stime from /proc over the measured run.
 */
import autocannon from 'autocannon';
import { canPin, pin, procCpuMicros } from './cpu.js';
import { forkChild, type Child } from './ipc.js';
import { startPrivateRedis } from './redis.js';
import { fixed, mean, median, ms, percent, spread, table, type Section } from './report.js';
import { ECHO_ROUTE, startBenchStack, type BenchStack } from './stack.js';

export interface PeersOptions {
  seconds: number;
  rounds: number;
  /** Connections for the saturating run (req/s and CPU per request). */
  connections: number;
  /** The fixed request rate for the latency run. */
  rate: number;
}

interface Target {
  label: string;
  url: string;
  headers: Record<string, string>;
  pid: number;
}

interface Run {
  reqPerSec: number;
  cpuUsPerRequest: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

const WARM_UP_SECONDS = 3;
const SERVER_CORE = '0';
const OTHER_CORE = '1';
/** Per target in the all-at-once runs: together well under one core for every server here (about a third of it). */
const TOGETHER_RATE = 500;

async function load(target: Target, connections: number, seconds: number, overallRate?: number): Promise<Run> {
  const latencies: number[] = [];
  const before = procCpuMicros(target.pid);
  const instance = autocannon({ url: target.url, headers: target.headers, connections, duration: seconds, timeout: 10, ...(overallRate ? { overallRate } : {}) });
  instance.on('response', (_c: unknown, status: number, _b: number, responseTimeMs: number) => {
    if (status >= 200 && status < 300) latencies.push(responseTimeMs);
  });
  const result = await instance;
  const cpu = procCpuMicros(target.pid) - before;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! : Number.NaN);
  return {
    reqPerSec: result['2xx'] / result.duration,
    cpuUsPerRequest: cpu / Math.max(1, result['2xx']),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    failed: result.non2xx + result.errors + result.timeouts,
  };
}

async function expressLogin(url: string, token: string): Promise<string> {
  const res = await fetch(`${url}/bench/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
  const cookie = res.headers.get('set-cookie')?.split(';')[0];
  if (res.status !== 204 || !cookie) throw new Error(`express peer login failed: ${res.status}`);
  return cookie;
}

export async function peers(opts: PeersOptions): Promise<Section> {
  const stacks: BenchStack[] = [];
  const children: Child[] = [];
  const redis = await startPrivateRedis();
  const pinning = canPin();
  try {
    const memory = await startBenchStack({ accessTokenTtlSeconds: 3600, upstream: 'light-echo' });
    stacks.push(memory);
    const cookie = await memory.login();
    const { token } = await memory.accessToken(cookie);
    const upstreamOrigin = new URL(memory.echoUrl).origin;
    const targets: Target[] = [];

    const bare = await forkChild(new URL('./peers/bare-child.ts', import.meta.url));
    children.push(bare);
    const b = await bare.call<{ url: string; pid: number }>('start', { upstreamOrigin });
    targets.push({ label: 'bare @fastify/http-proxy', url: `${b.url}${ECHO_ROUTE}/x`, headers: { authorization: `Bearer ${token}` }, pid: b.pid });

    const peer = await forkChild(new URL('./peers/express-child.ts', import.meta.url));
    children.push(peer);
    const e = await peer.call<{ url: string; pid: number }>('start', { upstreamOrigin });
    targets.push({ label: 'Express peer', url: `${e.url}${ECHO_ROUTE}/x`, headers: { cookie: await expressLogin(e.url, token), 'x-csrf': '1' }, pid: e.pid });

    targets.push({ label: 'gateway, memory store', url: `${memory.publicUrl}${ECHO_ROUTE}/x`, headers: { cookie: `${memory.cookieName}=${cookie}`, 'x-csrf': '1' }, pid: memory.gatewayPid });
    if (redis) {
      const shared = await startBenchStack({ accessTokenTtlSeconds: 3600, upstream: 'light-echo', store: { type: 'redis', url: redis.url, keyPrefix: 'bench:' } });
      stacks.push(shared);
      const c = await shared.login();
      targets.push({ label: 'gateway, Redis store', url: `${shared.publicUrl}${ECHO_ROUTE}/x`, headers: { cookie: `${shared.cookieName}=${c}`, 'x-csrf': '1' }, pid: shared.gatewayPid });
    }

    if (pinning) {
      for (const t of targets) pin(t.pid, SERVER_CORE);
      for (const s of stacks) pin(s.lookalikesPid, OTHER_CORE);
      pin(process.pid, OTHER_CORE);
      if (redis?.pid) pin(redis.pid, OTHER_CORE);
    }

    for (const t of targets) await load(t, opts.connections, WARM_UP_SECONDS);
    const runs = new Map<string, Run[]>();
    const fixedRate = new Map<string, Run[]>();
    const atOnce = new Map<string, Run[]>();
    for (let round = 0; round < opts.rounds; round += 1) {
      // Each round starts with the next target and alternates direction, so machine drift favours none.
      const rotated = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)];
      const order = round % 2 === 0 ? rotated : rotated.reverse();
      for (const t of order) runs.set(t.label, [...(runs.get(t.label) ?? []), await load(t, opts.connections, opts.seconds)]);
      for (const t of order) fixedRate.set(t.label, [...(fixedRate.get(t.label) ?? []), await load(t, opts.connections, opts.seconds, opts.rate)]);
      // Then every target at once, at a rate none of them is near its limit: the same seconds of the machine for all.
      const together = await Promise.all(targets.map((t) => load(t, opts.connections, opts.seconds, TOGETHER_RATE)));
      targets.forEach((t, i) => atOnce.set(t.label, [...(atOnce.get(t.label) ?? []), together[i]!]));
    }

    const base = targets[0]!.label;
    const avg = (label: string, f: (r: Run) => number, from = runs): number => mean(from.get(label)!.map(f));
    // A ratio is taken within each round (the two runs minutes apart at most) and the median of the rounds is shown:
    // the machine's speed drifts between rounds by more than the differences measured here.
    const perRound = (label: string, other: string, f: (r: Run) => number, from = runs): number[] => from.get(label)!.map((r, i) => f(r) / f(from.get(other)![i]!));
    const p99OverBare = (label: string, from: Map<string, Run[]>): number[] => from.get(label)!.map((r, i) => r.p99Ms - from.get(base)![i]!.p99Ms);
    const failuresOf = (label: string): number => [runs, fixedRate, atOnce].flatMap((m) => m.get(label)!).reduce((n, r) => n + r.failed, 0);
    const expressLabel = targets[1]!.label;
    const rows = targets.map((t) => [
      t.label,
      fixed(avg(t.label, (r) => r.reqPerSec)),
      fixed(avg(t.label, (r) => r.cpuUsPerRequest)),
      spread(perRound(t.label, base, (r) => r.cpuUsPerRequest)),
      spread(perRound(t.label, expressLabel, (r) => r.reqPerSec)),
      percent(avg(t.label, (r) => (r.reqPerSec * r.cpuUsPerRequest) / 1e6)),
      ms(avg(t.label, (r) => r.p50Ms, fixedRate)),
      ms(avg(t.label, (r) => r.p99Ms, fixedRate)),
      spreadMs(p99OverBare(t.label, fixedRate)),
      failuresOf(t.label),
    ]);
    const atOnceRows = targets.map((t) => [
      t.label,
      fixed(avg(t.label, (r) => r.cpuUsPerRequest, atOnce)),
      spread(perRound(t.label, base, (r) => r.cpuUsPerRequest, atOnce)),
      atOnce.get(t.label)!.map((r) => fixed(r.cpuUsPerRequest)).join(', '),
      ms(avg(t.label, (r) => r.p99Ms, atOnce)),
      spreadMs(p99OverBare(t.label, atOnce)),
    ]);
    const roundRows = targets.map((t) => [t.label, ...runs.get(t.label)!.map((r) => `${fixed(r.reqPerSec)} / ${fixed(r.cpuUsPerRequest)}`)]);
    const failed = targets.reduce((n, t) => n + failuresOf(t.label), 0);
    const markdown = [
      `GET ${ECHO_ROUTE}/x through each server to the same upstream echo (bench/light-echo.ts: verifies each distinct ${token.length}-character RS256 bearer once, then knows it).`,
      pinning ? `Each server process pinned to core ${SERVER_CORE} (taskset -a); the load generator, the upstream and Redis on core ${OTHER_CORE}.` : '_taskset not available: nothing pinned._',
      `${opts.rounds} rounds, each target ${opts.seconds} s at ${opts.connections} connections as fast as it answers (req/s, CPU), then ${opts.seconds} s at a fixed ${opts.rate} req/s (p50/p99); order rotated and reversed per round; ${WARM_UP_SECONDS} s warm-up each.`,
      'CPU vs bare and req/s vs Express: the median of the ratios taken within each round, with the lowest and highest in brackets; p99 − bare likewise, the median of the differences within each round.',
      'CPU µs/req: CPU time of the server process (all threads, from /proc) over the run, divided by the 2xx answers. Core busy: req/s × CPU per request, the share of its core the server used while answering as fast as it could (near 100 %: the server, not the load generator, set the pace).',
      '',
      table(['target', 'req/s', 'CPU µs/req', 'CPU vs bare', 'req/s vs Express', 'core busy', `p50 ms @${opts.rate}/s`, `p99 ms @${opts.rate}/s`, 'p99 − bare ms', 'failed'], rows),
      '',
      'Per round (req/s / CPU µs per request):',
      '',
      table(['target', ...runs.get(base)!.map((_, i) => `round ${i + 1}`)], roundRows),
      '',
      `All targets at once, ${TOGETHER_RATE} req/s each for ${opts.seconds} s per round (every server on core ${SERVER_CORE}, none near its limit): CPU per request and p99 latency measured over the same seconds for all, so a change in the machine's speed or a pause of the VM cannot fall between them.`,
      '',
      table(['target', 'CPU µs/req', 'CPU vs bare', 'per round', `p99 ms @${TOGETHER_RATE}/s`, 'p99 − bare ms'], atOnceRows),
    ].join('\n');
    return { title: 'Gateway next to its peers (one core)', markdown, checks: [{ name: 'every request to every peer answered 2xx', pass: failed === 0, detail: `${failed} failed` }] };
  } finally {
    if (pinning) pin(process.pid, `${SERVER_CORE},${OTHER_CORE}`);
    for (const c of children) await c.stop();
    for (const s of stacks) await s.close();
    await redis?.stop();
  }
}

/** The median difference in milliseconds, and the range when there is more than one. */
function spreadMs(diffs: number[]): string {
  if (diffs.length === 1) return ms(diffs[0]!);
  return `${ms(median(diffs))} (${ms(Math.min(...diffs))} to ${ms(Math.max(...diffs))})`;
}

