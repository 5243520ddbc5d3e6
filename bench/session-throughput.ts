/**
 * GET /auth/session throughput: cookie → store lookup → decrypt → JSON view. Memory store and, when
 * redis-server is installed, a private Redis, alternated on the same machine.
 */
import { runLoad, type LoadResult, type LoadTarget } from './load.js';
import { startPrivateRedis } from './redis.js';
import { fixed, mean, ms, ratio, table, type Section } from './report.js';
import { startBenchStack, type BenchStack } from './stack.js';

export interface SessionThroughputOptions {
  connections: number[];
  seconds: number;
  rounds: number;
}

const WARM_UP_SECONDS = 3;

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
    for (const { target } of targets) await runLoad(target, opts.connections[0]!, WARM_UP_SECONDS);
    for (const connections of opts.connections) {
      const byStore = new Map<string, LoadResult[]>();
      for (let round = 1; round <= opts.rounds; round += 1) {
        // Alternating which store goes first keeps a drift in machine load from favouring one.
        const order = round % 2 === 1 ? targets : [...targets].reverse();
        for (const { target, stack } of order) {
          const r = await runLoad(target, connections, opts.seconds, stack.cpuMicros);
          byStore.set(r.label, [...(byStore.get(r.label) ?? []), r]);
        }
      }
      for (const { target } of targets) {
        for (const [i, r] of byStore.get(target.label)!.entries()) {
          rows.push([`${r.label} (round ${i + 1})`, connections, fixed(r.reqPerSec), ms(r.p50Ms), ms(r.p99Ms), fixed(r.cpuMsPerRequest!.gateway, 2), r.failed]);
          failed += r.failed;
        }
      }
      const [mem, red] = targets.map(({ target }) => byStore.get(target.label)!);
      if (mem && red) {
        const each = (f: (m: LoadResult, r: LoadResult) => number): number => mean(mem.map((m, i) => f(m, red[i]!)));
        ratios.push([
          connections,
          ratio(each((m, r) => r.reqPerSec / m.reqPerSec)),
          ratio(each((m, r) => r.p50Ms / m.p50Ms)),
          ratio(each((m, r) => r.cpuMsPerRequest!.gateway / m.cpuMsPerRequest!.gateway)),
        ]);
      }
    }

    const parts = [
      `Each run ${opts.seconds} s, after a ${WARM_UP_SECONDS} s warm-up per store; one session for all connections; the stores alternate, the first in each round switching.`,
      '',
      table(['store', 'connections', 'req/s', 'p50 ms', 'p99 ms', 'gateway CPU ms/req', 'failed'], rows),
    ];
    if (ratios.length) parts.push('', 'Redis relative to memory, per round then averaged:', '', table(['connections', 'req/s ratio', 'p50 ratio', 'gateway CPU/req ratio'], ratios));
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
