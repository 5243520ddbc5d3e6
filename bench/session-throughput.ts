/**
 * GET /auth/session throughput: cookie → store lookup → decrypt → JSON view. Memory store and, when
 * redis-server is installed, a private Redis, alternated on the same machine.
 */
import { runLoad, type LoadResult, type LoadTarget } from './load.js';
import { startPrivateRedis } from './redis.js';
import { fixed, ms, ratio, table, type Section } from './report.js';
import { startBenchStack, type BenchStack } from './stack.js';

export interface SessionThroughputOptions {
  connections: number[];
  seconds: number;
}

const WARM_UP_SECONDS = 2;

export async function sessionThroughput(opts: SessionThroughputOptions): Promise<Section> {
  const stacks: BenchStack[] = [];
  const redis = await startPrivateRedis();
  try {
    const targets: { target: LoadTarget; stack: BenchStack }[] = [];
    const memory = await startBenchStack({ accessTokenTtlSeconds: 3600, store: { type: 'memory' } });
    stacks.push(memory);
    targets.push({ target: await sessionTarget('memory store', memory), stack: memory });
    if (redis) {
      const shared = await startBenchStack({ accessTokenTtlSeconds: 3600, store: { type: 'redis', url: redis.url, keyPrefix: 'bench:' } });
      stacks.push(shared);
      targets.push({ target: await sessionTarget('redis store', shared), stack: shared });
    }

    const rows: (string | number)[][] = [];
    const ratios: (string | number)[][] = [];
    let failed = 0;
    for (const connections of opts.connections) {
      for (const { target } of targets) await runLoad(target, connections, WARM_UP_SECONDS);
      const results: LoadResult[] = [];
      for (const { target, stack } of targets) results.push(await runLoad(target, connections, opts.seconds, stack.cpuMicros));
      for (const r of results) {
        rows.push([r.label, connections, fixed(r.reqPerSec), ms(r.p50Ms), ms(r.p99Ms), fixed(r.cpuMsPerRequest!.gateway, 2), r.failed]);
        failed += r.failed;
      }
      const [mem, red] = results;
      if (mem && red) ratios.push([connections, ratio(red.reqPerSec / mem.reqPerSec), ratio(red.p50Ms / mem.p50Ms), ratio(red.cpuMsPerRequest!.gateway / mem.cpuMsPerRequest!.gateway)]);
    }

    const parts = [
      `Each run ${opts.seconds} s after a ${WARM_UP_SECONDS} s warm-up, one session for all connections; stores alternate.`,
      '',
      table(['store', 'connections', 'req/s', 'p50 ms', 'p99 ms', 'gateway CPU ms/req', 'failed'], rows),
    ];
    if (ratios.length) parts.push('', 'Redis relative to memory, measured back to back:', '', table(['connections', 'req/s ratio', 'p50 ratio', 'gateway CPU/req ratio'], ratios));
    else parts.push('', '_redis-server is not installed: the Redis store was skipped._');
    return {
      title: 'Session lookup (GET /auth/session)',
      markdown: parts.join('\n'),
      checks: [{ name: 'every /auth/session request answered 200', pass: failed === 0, detail: `${failed} failed` }],
    };
  } finally {
    for (const stack of stacks) await stack.close();
    await redis?.stop();
  }
}

async function sessionTarget(label: string, stack: BenchStack): Promise<LoadTarget> {
  const cookie = await stack.login();
  return { label, url: `${stack.publicUrl}/auth/session`, headers: { cookie: `${stack.cookieName}=${cookie}` } };
}
