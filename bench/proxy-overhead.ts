/**
 * Proxy overhead: the Skatteetaten echo called directly with a valid bearer against the same echo
 * through the gateway (session cookie + X-CSRF), alternated so both see the same machine noise.
 */
import { runLoad, type LoadResult, type LoadTarget } from './load.js';
import { fixed, mean, ms, ratio, table, type Section } from './report.js';
import { ECHO_ROUTE, startBenchStack } from './stack.js';

export interface ProxyOverheadOptions {
  connections: number[];
  seconds: number;
  rounds: number;
}

const WARM_UP_SECONDS = 3;

const cpuMs = (n: number): string => fixed(n, 2);
const serverCpu = (r: LoadResult): number => r.cpuMsPerRequest!.gateway + r.cpuMsPerRequest!.lookalikes;

export async function proxyOverhead(opts: ProxyOverheadOptions): Promise<Section> {
  // Long-lived access token: no refresh happens while measuring.
  const stack = await startBenchStack({ accessTokenTtlSeconds: 3600 });
  try {
    const cookie = await stack.login();
    const { token } = await stack.accessToken(cookie);
    const direct: LoadTarget = { label: 'direct', url: `${stack.echoUrl}/x`, headers: { authorization: `Bearer ${token}` } };
    const proxied: LoadTarget = {
      label: 'gateway',
      url: `${stack.publicUrl}${ECHO_ROUTE}/x`,
      headers: { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' },
    };

    const runs: LoadResult[] = [];
    const rows: (string | number)[][] = [];
    const summary: (string | number)[][] = [];
    // Once per target: until the JIT has seen a few thousand requests, a proxied request costs twice the CPU.
    await runLoad(direct, opts.connections[0]!, WARM_UP_SECONDS);
    await runLoad(proxied, opts.connections[0]!, WARM_UP_SECONDS);
    for (const connections of opts.connections) {
      const pairs: [LoadResult, LoadResult][] = [];
      for (let round = 1; round <= opts.rounds; round += 1) {
        // Alternating which goes first keeps a drift in machine load from favouring one side.
        const order = round % 2 === 1 ? [direct, proxied] : [proxied, direct];
        const results = new Map<LoadTarget, LoadResult>();
        for (const target of order) results.set(target, await runLoad(target, connections, opts.seconds, stack.cpuMicros));
        const a = results.get(direct)!;
        const b = results.get(proxied)!;
        pairs.push([a, b]);
        runs.push(a, b);
        for (const r of [a, b]) {
          const cpu = r.cpuMsPerRequest!;
          rows.push([`${r.label} (round ${round})`, connections, fixed(r.reqPerSec), ms(r.p50Ms), ms(r.p99Ms), cpuMs(cpu.gateway), cpuMs(cpu.lookalikes), r.failed]);
        }
      }
      const each = (f: (a: LoadResult, b: LoadResult) => number): number => mean(pairs.map(([a, b]) => f(a, b)));
      summary.push([
        connections,
        ratio(each((a, b) => b.reqPerSec / a.reqPerSec)),
        ratio(each((a, b) => b.p50Ms / a.p50Ms)),
        ratio(each((a, b) => b.p99Ms / a.p99Ms)),
        ms(each((a, b) => b.p50Ms - a.p50Ms)),
        cpuMs(each((_a, b) => b.cpuMsPerRequest!.gateway)),
        ratio(each((a, b) => serverCpu(b) / serverCpu(a))),
      ]);
    }

    const failed = runs.reduce((n, r) => n + r.failed, 0);
    const markdown = [
      `GET /echo/x on the Skatteetaten look-alike (verifies the ${token.length}-character RS256 access token, answers ~1 KB of JSON)`,
      `directly with the bearer, and GET ${ECHO_ROUTE}/x through the gateway with the session cookie and X-CSRF: 1.`,
      `Each run ${opts.seconds} s, after a ${WARM_UP_SECONDS} s warm-up per target; direct and gateway alternate, the first in each round switching. CPU columns: CPU ms per request spent by the gateway process and by the look-alikes process.`,
      '',
      table(['target', 'connections', 'req/s', 'p50 ms', 'p99 ms', 'gateway CPU ms/req', 'upstream CPU ms/req', 'failed'], rows),
      '',
      'Gateway relative to direct, per round then averaged (server CPU = gateway + upstream processes):',
      '',
      table(['connections', 'req/s ratio', 'p50 ratio', 'p99 ratio', 'p50 added ms', 'gateway CPU ms/req', 'server CPU/req ratio'], summary),
    ].join('\n');
    return {
      title: 'Proxy overhead',
      markdown,
      checks: [{ name: 'every proxied and direct request answered 2xx', pass: failed === 0, detail: `${failed} failed` }],
    };
  } finally {
    await stack.close();
  }
}
