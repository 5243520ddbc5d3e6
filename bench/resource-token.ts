/**
 * What a route with an RFC 8707 `resource` costs per proxied request next to a plain route: the same upstream (the
 * Skatteetaten echo, which verifies either token), one session, the two routes alternated so both see the same
 * machine noise. The resource token is obtained once in the warm-up; what is measured is picking it from the
 * session and sending it.
 */
import { runLoad, type LoadResult, type LoadTarget } from './load.js';
import { fixed, mean, ms, ratio, table, type Section } from './report.js';
import { ECHO_ROUTE, RESOURCE_ECHO_ROUTE, startBenchStack } from './stack.js';

export interface ResourceTokenOptions {
  connections: number;
  seconds: number;
  rounds: number;
}

const RESOURCE = 'https://echo.example.no/';
const WARM_UP_SECONDS = 3;

export async function resourceTokenCost(opts: ResourceTokenOptions): Promise<Section> {
  const stack = await startBenchStack({ accessTokenTtlSeconds: 3600, resource: RESOURCE });
  try {
    const cookie = await stack.login();
    const headers = { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' };
    const plain: LoadTarget = { label: 'plain route (session token)', url: `${stack.publicUrl}${ECHO_ROUTE}/x`, headers };
    const resource: LoadTarget = { label: 'route with resource', url: `${stack.publicUrl}${RESOURCE_ECHO_ROUTE}/x`, headers };
    await runLoad(plain, opts.connections, WARM_UP_SECONDS);
    await runLoad(resource, opts.connections, WARM_UP_SECONDS);
    const grantsBefore = (await stack.opStats()).refreshGrants;

    const rows: (string | number)[][] = [];
    const pairs: [LoadResult, LoadResult][] = [];
    for (let round = 1; round <= opts.rounds; round += 1) {
      const order = round % 2 === 1 ? [plain, resource] : [resource, plain];
      const results = new Map<LoadTarget, LoadResult>();
      for (const target of order) results.set(target, await runLoad(target, opts.connections, opts.seconds, stack.cpuMicros));
      const pair: [LoadResult, LoadResult] = [results.get(plain)!, results.get(resource)!];
      pairs.push(pair);
      for (const r of pair) rows.push([`${r.label} (round ${round})`, opts.connections, fixed(r.reqPerSec), ms(r.p50Ms), ms(r.p99Ms), fixed(r.cpuMsPerRequest!.gateway * 1000), r.failed]);
    }
    const grants = (await stack.opStats()).refreshGrants - grantsBefore;
    const gatewayMicros = (r: LoadResult): number => r.cpuMsPerRequest!.gateway * 1000;
    const failed = pairs.flat().reduce((n, r) => n + r.failed, 0);
    const markdown = [
      `GET ${ECHO_ROUTE}/x (the session's token) and GET ${RESOURCE_ECHO_ROUTE}/x (a token for resource ${RESOURCE}) through the`,
      `gateway to the same Skatteetaten echo, ${opts.connections} connections, ${opts.seconds} s per run after a ${WARM_UP_SECONDS} s warm-up each, alternating.`,
      '',
      table(['target', 'connections', 'req/s', 'p50 ms', 'p99 ms', 'gateway CPU µs/req', 'failed'], rows),
      '',
      table(
        ['plain gateway CPU µs/req', 'resource gateway CPU µs/req', 'resource / plain', 'refresh grants while measuring'],
        [[fixed(mean(pairs.map(([p]) => gatewayMicros(p)))), fixed(mean(pairs.map(([, r]) => gatewayMicros(r)))), ratio(mean(pairs.map(([p, r]) => gatewayMicros(r) / gatewayMicros(p)))), grants]],
      ),
    ].join('\n');
    return {
      title: 'Resource token next to the session token',
      markdown,
      checks: [
        { name: 'every request answered 2xx', pass: failed === 0, detail: `${failed} failed` },
        { name: 'no refresh grant while measuring (the resource token is reused)', pass: grants === 0, detail: `${grants} grants` },
      ],
    };
  } finally {
    await stack.close();
  }
}
