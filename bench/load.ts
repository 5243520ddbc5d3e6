/** Runs autocannon for a fixed time and summarises it; latencies are kept at sub-millisecond resolution. */
import autocannon from 'autocannon';
import type { CpuMicros } from './stack.js';

export interface LoadTarget {
  label: string;
  url: string;
  headers: Record<string, string>;
}

export interface LoadResult {
  label: string;
  connections: number;
  seconds: number;
  /** Successful (2xx) responses per second. */
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  /** Non-2xx answers, socket errors and timeouts together: anything but 0 makes the run suspect. */
  failed: number;
  /**
   * CPU milliseconds each process spent per successful request. Steadier than req/s on a shared
   * machine: other load steals wall-clock time from the run, much less so CPU time per request.
   */
  cpuMsPerRequest?: { gateway: number; lookalikes: number; runner: number };
}

export async function runLoad(target: LoadTarget, connections: number, seconds: number, cpu?: () => Promise<CpuMicros>): Promise<LoadResult> {
  const latencies: number[] = [];
  const cpuBefore = await cpu?.();
  const instance = autocannon({ url: target.url, headers: target.headers, connections, duration: seconds, timeout: 10 });
  // autocannon's own histogram has 1 ms buckets, too coarse for loopback; keep the raw response times.
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTimeMs: number) => {
    if (status >= 200 && status < 300) latencies.push(responseTimeMs);
  });
  const result = await instance;
  const cpuAfter = await cpu?.();
  latencies.sort((a, b) => a - b);
  const perRequest = (key: keyof CpuMicros): number => (cpuAfter![key] - cpuBefore![key]) / 1000 / Math.max(1, result['2xx']);
  return {
    label: target.label,
    connections,
    seconds: result.duration,
    reqPerSec: result['2xx'] / result.duration,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    ok: result['2xx'],
    failed: result.non2xx + result.errors + result.timeouts,
    ...(cpuBefore && cpuAfter ? { cpuMsPerRequest: { gateway: perRequest('gateway'), lookalikes: perRequest('lookalikes'), runner: perRequest('runner') } } : {}),
  };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
