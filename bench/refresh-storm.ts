/**
 * Refresh storm: one session whose access token has just expired, then N proxied requests at once.
 * The gateway must refresh once (single flight) and let every request through with the new token.
 * Two kinds of round, one expiry each: N fresh connections (a burst of new clients), then the same N requests
 * over a few kept-alive connections (as through a load balancer's connection pool). Each storm is followed at
 * once by the same burst on the token it brought, still fresh, so the refresh's cost reads as a ratio; each
 * kind runs several rounds and the median ratio is reported, as single bursts move with the machine.
 *
 * That fresh burst finds the gateway's upstream connections open: the storm opened them. So that the storm
 * finds them open too, another session sends the same burst shortly before the expiry. Its own figure is the
 * cost of upstream connections closed by the idle wait (they outlive it by their keep-alive only), which
 * would otherwise be charged to the refresh.
 */
import { Agent, request } from 'undici';
import { fixed, median, ms, sleep, spread, sum, table, type Check, type Section } from './report.js';
import { ECHO_ROUTE, startBenchStack, type BenchStack } from './stack.js';

export interface RefreshStormOptions {
  requests: number;
  accessTokenTtlSeconds: number;
  /** Rounds (expiries) per kind of round. */
  rounds: number;
}

interface EchoAnswer {
  headers: { authorization?: string };
}

interface StormResult {
  totalMs: number;
  /** The first answer waited for the refresh: roughly the refresh's own duration. */
  firstMs: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  grants: number;
  grantErrors: number;
  bearers: number;
  /** CPU the gateway and the look-alikes (OP and upstream) spent on the burst, µs per request. */
  gatewayCpuUs: number;
  lookalikesCpuUs: number;
}

/** One expiry: the priming burst on cold upstream connections, the storm, and the fresh burst right after it. */
interface StormRound {
  sockets: number;
  primed: StormResult;
  expired: StormResult;
  fresh: StormResult;
}

const POOLED_SOCKETS = 50;
/** The storm may take at most this multiple of the same burst on a fresh token (the median over the rounds). */
const STORM_OVER_FRESH_TARGET = 1.5;
const WARM_UP_STORMS = 2;
const AFTER_EXPIRY_MS = 250;
/** The priming session logs in this long before the storm session's token expires, and bursts a little later. */
const PRIME_LOGIN_BEFORE_EXPIRY_MS = 2_000;
const PRIME_BEFORE_EXPIRY_MS = 1_200;

const BURSTS = [
  { key: 'primed', token: 'fresh', upstream: 'closed (idle)' },
  { key: 'expired', token: 'just expired', upstream: 'open' },
  { key: 'fresh', token: 'fresh', upstream: 'open' },
] as const;

export async function refreshStorm(opts: RefreshStormOptions): Promise<Section> {
  const stack = await startBenchStack({ accessTokenTtlSeconds: opts.accessTokenTtlSeconds });
  try {
    const cookie = await stack.login();
    // A gateway that has served only a login runs cold code at twice the CPU per request; a second
    // session warms it up, so the storm session's token is left alone until it expires.
    await warmUp(stack, await stack.login(), opts.requests * WARM_UP_STORMS);
    const rounds: StormRound[] = [];
    for (const sockets of [opts.requests, POOLED_SOCKETS]) {
      for (let i = 0; i < opts.rounds; i++) rounds.push(await stormRound(stack, cookie, opts.requests, sockets));
    }
    const kinds = [opts.requests, POOLED_SOCKETS].map((sockets) => ({ sockets, rounds: rounds.filter((r) => r.sockets === sockets) }));
    const ratiosOf = (of: StormRound[]): number[] => of.map((r) => r.expired.totalMs / r.fresh.totalMs);
    const markdown = [
      `${opts.requests} concurrent GET ${ECHO_ROUTE}/storm/<i> for one session, fired ${AFTER_EXPIRY_MS} ms after its ${opts.accessTokenTtlSeconds} s access token expired,`,
      `on a gateway warmed up by ${opts.requests * WARM_UP_STORMS} proxied requests of another session, then at once the same burst on the token the storm brought.`,
      `One kind of round opens one connection per request, the other shares ${POOLED_SOCKETS} connections; ${opts.rounds} rounds (expiries) of each.`,
      `A storm that outlasts ${fixed(opts.accessTokenTtlSeconds * 750)} ms may rightly see a second refresh: the new token then enters its own refresh leeway (a quarter of its lifetime).`,
      `${PRIME_BEFORE_EXPIRY_MS} ms before each expiry another session sends the same burst on its fresh token, into upstream connections closed by the idle wait,`,
      'so that the storm finds them open, as the fresh burst after it does.',
      'Times are the median over the rounds, with the range; storm ÷ fresh is the median of the ratios taken within each round.',
      '',
      table(
        ['connections', 'token', 'upstream connections', 'all done ms', 'storm ÷ fresh', 'first answer ms', 'p50 ms', 'p99 ms', 'gateway CPU µs/req', 'look-alikes CPU µs/req', '200s', 'refresh grants at the OP', 'refresh errors', 'distinct bearers upstream'],
        kinds.flatMap(({ sockets, rounds: of }) =>
          BURSTS.map(({ key, token, upstream }) => {
            const bursts = of.map((r) => r[key]);
            const times = bursts.map((b) => b.totalMs);
            return [
              sockets, token, upstream, `${fixed(median(times))} (${fixed(Math.min(...times))}–${fixed(Math.max(...times))})`, key === 'expired' ? spread(ratiosOf(of)) : '',
              ms(median(bursts.map((b) => b.firstMs))), ms(median(bursts.map((b) => b.p50Ms))), ms(median(bursts.map((b) => b.p99Ms))),
              fixed(median(bursts.map((b) => b.gatewayCpuUs))), fixed(median(bursts.map((b) => b.lookalikesCpuUs))),
              `${sum(bursts.map((b) => b.ok))}/${opts.requests * bursts.length}`, bursts.map((b) => b.grants).join(', '), sum(bursts.map((b) => b.grantErrors)), bursts.map((b) => b.bearers).join(', '),
            ];
          }),
        ),
      ),
    ].join('\n');
    const checks: Check[] = kinds.flatMap(({ sockets, rounds: of }) => {
      const storms = of.map((r) => r.expired);
      const others = of.flatMap((r) => [r.primed, r.fresh]);
      const ratios = ratiosOf(of);
      return [
        {
          name: `${sockets} connections: exactly one refresh grant at the OP in every storm`,
          pass: storms.every((x) => x.grants === 1 && x.grantErrors === 0),
          detail: `${storms.map((x) => x.grants).join(', ')} grants, ${sum(storms.map((x) => x.grantErrors))} errors`,
        },
        {
          name: `${sockets} connections: every storm request answered 200 with the same new token`,
          pass: storms.every((x) => x.ok === opts.requests && x.bearers === 1),
          detail: `${sum(storms.map((x) => x.ok))}/${opts.requests * storms.length} ok, ${storms.map((x) => x.bearers).join(', ')} bearer(s)`,
        },
        {
          name: `${sockets} connections: the storm takes at most ${STORM_OVER_FRESH_TARGET}× the same burst on a fresh token (median over the rounds)`,
          pass: median(ratios) <= STORM_OVER_FRESH_TARGET && others.every((x) => x.grants === 0 && x.ok === opts.requests),
          detail: `${spread(ratios)}, ${sum(others.map((x) => x.grants))} grants and ${sum(others.map((x) => opts.requests - x.ok))} failures in the fresh bursts`,
        },
      ];
    });
    return { title: 'Refresh storm', markdown, checks };
  } finally {
    await stack.close();
  }
}

/** Waits for the storm session's token to expire, priming the upstream connections shortly before. */
async function stormRound(stack: BenchStack, cookie: string, requests: number, sockets: number): Promise<StormRound> {
  // Every round starts right after the token it finds has expired: the login's, then the previous round's.
  const { expiresAt } = await stack.accessToken(cookie);
  await sleep(Math.max(0, expiresAt - PRIME_LOGIN_BEFORE_EXPIRY_MS - Date.now()));
  const priming = await stack.login();
  await sleep(Math.max(0, expiresAt - PRIME_BEFORE_EXPIRY_MS - Date.now()));
  const primed = await storm(stack, priming, requests, sockets);
  await sleep(Math.max(0, expiresAt + AFTER_EXPIRY_MS - Date.now()));
  const expired = await storm(stack, cookie, requests, sockets);
  const fresh = await storm(stack, cookie, requests, sockets);
  return { sockets, primed, expired, fresh };
}

async function warmUp(stack: BenchStack, cookie: string, requests: number): Promise<void> {
  const agent = new Agent({ connections: POOLED_SOCKETS });
  const headers = { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' };
  try {
    await Promise.all(
      Array.from({ length: requests }, async (_, i) => {
        const res = await request(`${stack.publicUrl}${ECHO_ROUTE}/warm/${i}`, { headers, dispatcher: agent });
        await res.body.dump();
      }),
    );
  } finally {
    await agent.close();
  }
}

async function storm(stack: BenchStack, cookie: string, requests: number, sockets: number): Promise<StormResult> {
  const agent = new Agent({ connections: sockets, pipelining: 1 });
  const headers = { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' };
  const url = `${stack.publicUrl}${ECHO_ROUTE}/storm`;
  try {
    const before = await stack.opStats();
    const cpuBefore = await stack.cpuMicros();
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: requests }, async (_, i) => {
        const t0 = performance.now();
        const res = await request(`${url}/${i}`, { headers, dispatcher: agent });
        const text = await res.body.text();
        const bearer = res.statusCode === 200 ? (JSON.parse(text) as EchoAnswer).headers.authorization : undefined;
        return { status: res.statusCode, bearer, ms: performance.now() - t0 };
      }),
    );
    const totalMs = performance.now() - started;
    const cpuAfter = await stack.cpuMicros();
    const after = await stack.opStats();
    const latencies = answers.map((a) => a.ms).sort((a, b) => a - b);
    const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    return {
      totalMs,
      firstMs: latencies[0]!,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      ok: answers.filter((a) => a.status === 200).length,
      grants: after.refreshGrants - before.refreshGrants,
      grantErrors: after.refreshGrantErrors - before.refreshGrantErrors,
      bearers: new Set(answers.map((a) => a.bearer).filter(Boolean)).size,
      gatewayCpuUs: (cpuAfter.gateway - cpuBefore.gateway) / requests,
      lookalikesCpuUs: (cpuAfter.lookalikes - cpuBefore.lookalikes) / requests,
    };
  } finally {
    await agent.close();
  }
}
