/**
 * What DPoP costs: the gateway's CPU per proxied request with DPoP on (a proof signed per request, the upstream
 * checking it) next to the same session's token sent as Bearer, in one run with the two alternating; and the cost
 * of one proof by algorithm (ES256, EdDSA, RS256) and implementation (node:crypto directly, jose's SignJWT), measured
 * in this process, to choose by.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { SignJWT, type CryptoKey as JoseKey } from 'jose';
import { dpopProof, newDpopKey, signerFor } from '../src/net/dpop.js';
import { UpstreamNonces } from '../src/net/dpop-nonces.js';
import { withDpop } from '../src/proxy/dpop-upstream.js';
import type { UpstreamRequest } from '../src/proxy/forward.js';
import { runLoad, type LoadResult, type LoadTarget } from './load.js';
import { fixed, median, ratio, table, type Section } from './report.js';
import { BEARER_ECHO_ROUTE, ECHO_ROUTE, startBenchStack } from './stack.js';

export interface DpopCostOptions {
  connections: number;
  seconds: number;
  rounds: number;
}

const WARM_UP_SECONDS = 3;
const PROOFS_PER_RUN = 2_000;
const PROOF_RUNS = 5;
const TOKEN = randomBytes(600).toString('base64url');
const HTU = 'https://idporten-api-sbstest.sits.no/api/mva/grensesnittstoette/mva-melding/valider';

export async function dpopCost(opts: DpopCostOptions): Promise<Section> {
  const proofs = await proofCosts();
  const stack = await startBenchStack({ accessTokenTtlSeconds: 3600, dpop: true });
  try {
    const cookie = await stack.login();
    const headers = { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' };
    const bearer: LoadTarget = { label: 'Bearer (routes[].dpop: false)', url: `${stack.publicUrl}${BEARER_ECHO_ROUTE}/x`, headers };
    const dpop: LoadTarget = { label: 'DPoP (proof per request)', url: `${stack.publicUrl}${ECHO_ROUTE}/x`, headers };
    await runLoad(bearer, opts.connections, WARM_UP_SECONDS);
    await runLoad(dpop, opts.connections, WARM_UP_SECONDS);
    const rows: (string | number)[][] = [];
    const ratios: number[] = [];
    let failed = 0;
    for (let round = 1; round <= opts.rounds; round += 1) {
      const order = round % 2 === 1 ? [bearer, dpop] : [dpop, bearer];
      const results = new Map<LoadTarget, LoadResult>();
      for (const target of order) results.set(target, await runLoad(target, opts.connections, opts.seconds, stack.cpuMicros));
      for (const target of [bearer, dpop]) {
        const r = results.get(target)!;
        failed += r.failed;
        rows.push([`${r.label}, round ${round}`, fixed(r.reqPerSec), fixed(r.p50Ms, 2), fixed(r.cpuMsPerRequest!.gateway * 1000), r.failed]);
      }
      ratios.push(results.get(dpop)!.cpuMsPerRequest!.gateway / results.get(bearer)!.cpuMsPerRequest!.gateway);
    }
    const markdown = [
      `GET through the gateway, one session, ${opts.connections} connections, ${opts.seconds} s per run after a ${WARM_UP_SECONDS} s warm-up each; the two alternate, the first switching per round.`,
      'The DPoP route signs an ES256 proof per request (node:crypto) and its echo checks it; the Bearer route sends the same token to the echo\'s DPoP-unaware twin.',
      '',
      table(['route', 'req/s', 'p50 ms', 'gateway CPU µs/req', 'failed'], rows),
      '',
      `Gateway CPU per request, DPoP relative to Bearer: median ${ratio(median(ratios))} (rounds: ${ratios.map((r) => ratio(r)).join(', ')}).`,
      '',
      `One proof (htm, htu, ath of a ${TOKEN.length}-character token, jti, iat, nonce), signed in this process: the median of ${PROOF_RUNS} runs of ${PROOFS_PER_RUN}, the variants interleaved.`,
      '',
      table(['algorithm', 'implementation', 'CPU µs per proof', 'wall µs per proof', 'proof bytes'], proofs),
    ].join('\n');
    return { title: 'DPoP cost', markdown, checks: [{ name: 'every DPoP and Bearer request answered 2xx', pass: failed === 0, detail: `${failed} failed` }] };
  } finally {
    await stack.close();
  }
}

interface Variant {
  algorithm: string;
  implementation: string;
  make(): () => string | Promise<string>;
}

async function proofCosts(): Promise<(string | number)[][]> {
  const variants: Variant[] = [
    {
      algorithm: 'ES256',
      implementation: "the proxy's whole DPoP step (withDpop: proof, headers, retry hook)",
      make: () => {
        const signer = signerFor(newDpopKey());
        const nonces = new UpstreamNonces({ getShared: async () => undefined, putShared: async () => undefined }, { now: () => 0 });
        nonces.learn('https://upstream.example', 'n-1');
        const upstream = { origin: 'https://upstream.example', path: '/api/mva/valider?x=1', headers: { accept: '*/*' }, body: null, timeoutMs: 1000 } as unknown as UpstreamRequest;
        return () => {
          const ready = withDpop(upstream, { signer, accessToken: TOKEN, method: 'POST', nonces }) as UpstreamRequest;
          return ready.headers.dpop as string;
        };
      },
    },
    {
      algorithm: 'ES256',
      implementation: "node:crypto (the gateway's, src/net/dpop.ts)",
      make: () => {
        const signer = signerFor(newDpopKey());
        return () => dpopProof(signer, { htm: 'POST', htu: HTU, accessToken: TOKEN, nonce: 'n-1' });
      },
    },
    { algorithm: 'ES256', implementation: 'jose SignJWT', make: () => joseProof('ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' })) },
    { algorithm: 'EdDSA (Ed25519)', implementation: 'node:crypto', make: () => rawProof('EdDSA', null, generateKeyPairSync('ed25519')) },
    { algorithm: 'EdDSA (Ed25519)', implementation: 'jose SignJWT', make: () => joseProof('EdDSA', generateKeyPairSync('ed25519')) },
    { algorithm: 'RS256 (2048)', implementation: 'node:crypto', make: () => rawProof('RS256', 'sha256', generateKeyPairSync('rsa', { modulusLength: 2048 })) },
    { algorithm: 'RS256 (2048)', implementation: 'jose SignJWT', make: () => joseProof('RS256', generateKeyPairSync('rsa', { modulusLength: 2048 })) },
  ];
  const made = variants.map((v) => ({ ...v, proof: v.make(), wall: [] as number[], cpu: [] as number[], bytes: 0 }));
  // Interleaved runs, each proof awaited (jose signs asynchronously, on WebCrypto): wall time per proof, and CPU time
  // (this process, every thread) per proof, which counts work handed to the thread pool too.
  for (let run = 0; run < PROOF_RUNS; run += 1) {
    for (const v of made) {
      const cpu0 = process.cpuUsage();
      const started = performance.now();
      let last = '';
      for (let i = 0; i < PROOFS_PER_RUN; i += 1) last = await v.proof();
      const cpu = process.cpuUsage(cpu0);
      v.wall.push(((performance.now() - started) * 1000) / PROOFS_PER_RUN);
      v.cpu.push((cpu.user + cpu.system) / PROOFS_PER_RUN);
      v.bytes = last.length;
    }
  }
  return made.map((v) => [v.algorithm, v.implementation, fixed(median(v.cpu), 1), fixed(median(v.wall), 1), v.bytes]);
}

/** A proof signed with node:crypto directly: the header (with the public JWK) encoded once. */
function rawProof(alg: string, digest: string | null, pair: { privateKey: KeyObject; publicKey: KeyObject }): () => string {
  const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg, jwk: pair.publicKey.export({ format: 'jwk' }) })).toString('base64url');
  return () => {
    const payload = Buffer.from(JSON.stringify(claims())).toString('base64url');
    const input = `${header}.${payload}`;
    return `${input}.${sign(digest, Buffer.from(input), pair.privateKey).toString('base64url')}`;
  };
}

/** A proof as jose's SignJWT makes it (asynchronous). */
function joseProof(alg: string, pair: { privateKey: KeyObject; publicKey: KeyObject }): () => Promise<string> {
  const jwk = pair.publicKey.export({ format: 'jwk' });
  return () => new SignJWT(claims()).setProtectedHeader({ typ: 'dpop+jwt', alg, jwk }).sign(pair.privateKey as unknown as JoseKey);
}

function claims(): Record<string, unknown> {
  return { jti: randomBytes(16).toString('base64url'), htm: 'POST', htu: HTU, iat: Math.floor(Date.now() / 1000), ath: 'x'.repeat(43), nonce: 'n-1' };
}
