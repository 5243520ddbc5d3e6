/**
 * Refresh storm: one session whose access token has just expired, then N proxied requests at once.
 * The gateway must refresh once (single flight) and let every request through with the new token.
 * Two rounds, one per expiry: N fresh connections (a burst of new clients), then the same N requests
 * over a few kept-alive connections (as through a load balancer's connection pool). Each storm is followed at
 * once by the same burst on the token it brought, still fresh, so the refresh's cost reads as a ratio.
 *
 * That fresh burst finds the gateway's upstream connections open: the storm opened them. So that the storm
 * finds them open too, another session sends the same burst shortly before the expiry. Its own figure is the
 * cost of upstream connections closed by the idle wait (they outlive it by their keep-alive only), which
 * would otherwise be charged to the refresh.
 */
import { Agent, request } from 'undici';
import { fixed, ms, ratio, sleep, table, type Check, type Section } from './report.js';
import { ECHO_ROUTE, startBenchStack, type BenchStack } from './stack.js';

export interface RefreshStormOptions {
  requests: number;
  accessTokenTtlSeconds: number;
}

interface EchoAnswer {
  headers: { authorization?: string };
}

interface StormResult {
  sockets: number;
  totalMs: number;
  /** The first answer waited for the refresh: roughly the refresh's own duration. */
  firstMs: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  grants: number;
  grantErrors: number;
  bearers: number;
}

const POOLED_SOCKETS = 50;
/** The storm may take at most this multiple of the same burst on a fresh token. */
const STORM_OVER_FRESH_TARGET = 1.5;
const WARM_UP_STORMS = 2;
const AFTER_EXPIRY_MS = 250;
/** The priming session logs in this long before the storm session's token expires, and bursts a little later. */
const PRIME_LOGIN_BEFORE_EXPIRY_MS = 2_000;
const PRIME_BEFORE_EXPIRY_MS = 1_200;

export async function refreshStorm(opts: RefreshStormOptions): Promise<Section> {
  const stack = await startBenchStack({ accessTokenTtlSeconds: opts.accessTokenTtlSeconds });
  try {
    const cookie = await stack.login();
    // A gateway that has served only a login runs cold code at twice the CPU per request; a second
    // session warms it up, so the storm session's token is left alone until it expires.
    await warmUp(stack, await stack.login(), opts.requests * WARM_UP_STORMS);
    const primes: StormResult[] = [];
    const rounds: StormResult[] = [];
    const fresh: StormResult[] = [];
    for (const sockets of [opts.requests, POOLED_SOCKETS]) {
      // Every round starts right after the token it finds has expired: the login's, then the previous round's.
      const { expiresAt } = await stack.accessToken(cookie);
      await sleep(Math.max(0, expiresAt - PRIME_LOGIN_BEFORE_EXPIRY_MS - Date.now()));
      const priming = await stack.login();
      await sleep(Math.max(0, expiresAt - PRIME_BEFORE_EXPIRY_MS - Date.now()));
      primes.push(await storm(stack, priming, opts.requests, sockets));
      await sleep(Math.max(0, expiresAt + AFTER_EXPIRY_MS - Date.now()));
      rounds.push(await storm(stack, cookie, opts.requests, sockets));
      fresh.push(await storm(stack, cookie, opts.requests, sockets));
    }
    const markdown = [
      `${opts.requests} concurrent GET ${ECHO_ROUTE}/storm/<i> for one session, fired ${AFTER_EXPIRY_MS} ms after its ${opts.accessTokenTtlSeconds} s access token expired,`,
      `on a gateway warmed up by ${opts.requests * WARM_UP_STORMS} proxied requests of another session. The first round opens one connection per request, the second shares ${POOLED_SOCKETS} connections.`,
      `A storm that outlasts ${fixed(opts.accessTokenTtlSeconds * 750)} ms may rightly see a second refresh: the new token then enters its own refresh leeway (a quarter of its lifetime).`,
      `${PRIME_BEFORE_EXPIRY_MS} ms before the expiry another session sends the same burst on its fresh token, into upstream connections closed by the idle wait,`,
      'so that the storm finds them open, as the fresh burst after it does.',
      '',
      table(
        ['connections', 'token', 'upstream connections', 'all done ms', 'storm ÷ fresh', 'first answer ms', 'p50 ms', 'p99 ms', '200s', 'refresh grants at the OP', 'refresh errors', 'distinct bearers upstream'],
        rounds.flatMap((r, i) => [primes[i]!, r, fresh[i]!].map((x, j) => [
          x.sockets, j === 1 ? 'just expired' : 'fresh', j === 0 ? 'closed (idle)' : 'open', fixed(x.totalMs), j === 1 ? ratio(r.totalMs / fresh[i]!.totalMs) : '',
          ms(x.firstMs), ms(x.p50Ms), ms(x.p99Ms), `${x.ok}/${opts.requests}`, x.grants, x.grantErrors, x.bearers,
        ])),
      ),
    ].join('\n');
    const checks: Check[] = rounds.flatMap((r, i) => [
      { name: `${r.sockets} connections: exactly one refresh grant at the OP`, pass: r.grants === 1 && r.grantErrors === 0, detail: `${r.grants} grants, ${r.grantErrors} errors` },
      { name: `${r.sockets} connections: every request answered 200 with the same new token`, pass: r.ok === opts.requests && r.bearers === 1, detail: `${r.ok}/${opts.requests} ok, ${r.bearers} bearer(s)` },
      {
        name: `${r.sockets} connections: the storm takes at most ${STORM_OVER_FRESH_TARGET}× the same burst on a fresh token`,
        pass: r.totalMs <= STORM_OVER_FRESH_TARGET * fresh[i]!.totalMs && [fresh[i]!, primes[i]!].every((x) => x.grants === 0 && x.ok === opts.requests),
        detail: `${fixed(r.totalMs)} ms against ${fixed(fresh[i]!.totalMs)} ms (${ratio(r.totalMs / fresh[i]!.totalMs)}), ${fresh[i]!.grants + primes[i]!.grants} grants in the fresh bursts`,
      },
    ]);
    return { title: 'Refresh storm', markdown, checks };
  } finally {
    await stack.close();
  }
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
    const after = await stack.opStats();
    const latencies = answers.map((a) => a.ms).sort((a, b) => a - b);
    const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    return {
      sockets,
      totalMs,
      firstMs: latencies[0]!,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      ok: answers.filter((a) => a.status === 200).length,
      grants: after.refreshGrants - before.refreshGrants,
      grantErrors: after.refreshGrantErrors - before.refreshGrantErrors,
      bearers: new Set(answers.map((a) => a.bearer).filter(Boolean)).size,
    };
  } finally {
    await agent.close();
  }
}
