/**
 * Upload memory: bodies streamed through the gateway to the echo upstream while the gateway process
 * samples its own memory. Three views: what the OS sees (peak RSS, garbage included), what is live
 * (a full GC before each sample), and a body four times larger to show the peak does not follow the size.
 * The same uploads through a bare @fastify/http-proxy to the same upstream show what Node itself holds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { forkChild, type Child } from './ipc.js';
import type { MemoryPeaks, MemorySample } from './memory-tracker.js';
import { fixed, mib, sleep, table, type Section } from './report.js';
import { ECHO_ROUTE, startBenchStack, type BenchStack } from './stack.js';

export interface UploadMemoryOptions {
  megabytes: number;
}

interface EchoAnswer {
  body: { sha256: string; length: number };
}

interface UploadRun {
  label: string;
  megabytes: number;
  /** Full GC before every sample (live memory only); otherwise plain samples every 5 ms. */
  collectEveryMs?: number;
  /** Send no faster than this, so that the GC-paced samples are many enough to catch the peak. */
  mibPerSecond?: number;
}

/** A server under measurement: where to upload, and its memory samples. */
interface UploadTarget {
  label: string;
  url: string;
  headers: Record<string, string>;
  trackMemory(opts: { collectEveryMs?: number }): Promise<MemorySample>;
  stopTracking(): Promise<MemoryPeaks>;
}

interface UploadOutcome {
  target: UploadTarget;
  run: UploadRun;
  peaks: MemoryPeaks;
  mibPerSecond: number;
  intact: boolean;
}

const CHUNK = 64 * 1024;
const SCALE = 4;
const LIVE_SAMPLE_EVERY_MS = 50;
const LIVE_MIB_PER_SECOND = 25;

export async function uploadMemory(opts: UploadMemoryOptions): Promise<Section> {
  const { megabytes } = opts;
  const stack = await startBenchStack({ accessTokenTtlSeconds: 3600, bodyLimit: `${megabytes * SCALE + 1}MiB` });
  try {
    const bare = await forkChild(new URL('./peers/bare-child.ts', import.meta.url));
    try {
      return await measure(stack, bare, megabytes);
    } finally {
      await bare.stop();
    }
  } finally {
    await stack.close();
  }
}

/** The uploads through both servers, and what they show. */
async function measure(stack: BenchStack, bare: Child, megabytes: number): Promise<Section> {
  const cookie = await stack.login();
  const { token } = await stack.accessToken(cookie);
  const { url: bareUrl } = await bare.call<{ url: string }>('start', { upstreamOrigin: new URL(stack.echoUrl).origin });
  const gateway: UploadTarget = {
    label: 'gateway',
    url: `${stack.publicUrl}${ECHO_ROUTE}/upload`,
    headers: { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' },
    trackMemory: (o) => stack.trackGatewayMemory(o),
    stopTracking: () => stack.stopTrackingGatewayMemory(),
  };
  const bareProxy: UploadTarget = {
    label: 'bare @fastify/http-proxy',
    url: `${bareUrl}${ECHO_ROUTE}/upload`,
    headers: { authorization: `Bearer ${token}` },
    trackMemory: (o) => bare.call<MemorySample>('trackMemory', o),
    stopTracking: () => bare.call<MemoryPeaks>('stopTracking'),
  };
  const block = randomBytes(1024 * 1024);
  // What the upstream must report for each body size, worked out once per size.
  const digests = new Map<number, string>();
  const digestFor = (size: number): string => {
    let digest = digests.get(size);
    if (digest === undefined) digests.set(size, (digest = digestOf(block, size)));
    return digest;
  };
  const runs: UploadRun[] = [
    { label: 'as the OS sees it', megabytes },
    { label: 'as the OS sees it', megabytes },
    { label: `live (full GC every ${LIVE_SAMPLE_EVERY_MS} ms, sent at ${LIVE_MIB_PER_SECOND} MiB/s)`, megabytes, collectEveryMs: LIVE_SAMPLE_EVERY_MS, mibPerSecond: LIVE_MIB_PER_SECOND },
    { label: `as the OS sees it, ${SCALE}× the body`, megabytes: megabytes * SCALE },
  ];
  const outcomes: UploadOutcome[] = [];
  for (const target of [gateway, bareProxy]) {
    // A small upload first, so first-use allocations are not counted as upload cost.
    await upload(target, block, 1024 * 1024);
    for (const run of runs) {
      const size = run.megabytes * 1024 * 1024;
      await target.trackMemory(run.collectEveryMs === undefined ? {} : { collectEveryMs: run.collectEveryMs });
      const started = performance.now();
      const echoed = await upload(target, block, size, run.mibPerSecond);
      const seconds = (performance.now() - started) / 1000;
      const peaks = await target.stopTracking();
      outcomes.push({ target, run, peaks, mibPerSecond: run.megabytes / seconds, intact: echoed.length === size && echoed.sha256 === digestFor(size) });
    }
  }

  // RSS does not shrink back after a GC (the allocator keeps its pages), so RSS growth is counted
  // from each process's idle sample before its first large upload; heap and Buffers from each run's own idle.
  const firstIdleRss = (target: UploadTarget): number => outcomes.find((o) => o.target === target)!.peaks.idle.rss;
  const rssGrowth = (o: UploadOutcome): number => o.peaks.peak.rss - firstIdleRss(o.target);
  const rows = outcomes.map((o) => {
    const g = grown(o.peaks);
    return [o.target.label, o.run.label, o.run.megabytes, mib(o.peaks.peak.rss), mib(rssGrowth(o)), mib(g.heapUsed), mib(g.buffers), fixed(o.mibPerSecond), o.peaks.samples, o.intact ? 'yes' : 'NO'];
  });
  const size = megabytes * 1024 * 1024;
  const ofGateway = outcomes.filter((o) => o.target === gateway);
  const live = ofGateway.find((o) => o.run.collectEveryMs !== undefined)!;
  const scaled = ofGateway.at(-1)!;
  const markdown = [
    `POST ${ECHO_ROUTE}/upload streamed in ${CHUNK / 1024} KiB chunks with Content-Length; the upstream hashes what arrives. Each server samples`,
    `process.memoryUsage() on a timer. Idle RSS before the first large upload: gateway ${mib(firstIdleRss(gateway))} MiB, bare proxy ${mib(firstIdleRss(bareProxy))} MiB.`,
    'RSS growth is counted from there (RSS does not shrink back after a GC); heap and Buffer growth from an idle sample taken right after a full GC',
    'before each run. Buffers = arrayBuffers, where bodies live. The bare proxy gets the same uploads with the bearer from the client.',
    '',
    table(['server', 'run', 'MiB', 'peak RSS MiB', 'RSS growth MiB', 'heap growth MiB', 'Buffer growth MiB', 'MiB/s', 'samples', 'upstream got every byte'], rows),
  ].join('\n');
  const allIntact = outcomes.every((o) => o.intact);
  return {
    title: `Upload memory (${megabytes} MiB through the proxy)`,
    markdown,
    checks: [
      { name: 'uploaded bodies arrive intact (length and SHA-256)', pass: allIntact, detail: allIntact ? 'all intact' : 'mismatch' },
      {
        name: 'live Buffer memory during an upload stays under a quarter of the body (it streams)',
        pass: grown(live.peaks).buffers < size / 4,
        detail: `${mib(grown(live.peaks).buffers)} MiB for ${megabytes} MiB`,
      },
      {
        name: `RSS growth stays under half the body for a ${megabytes * SCALE} MiB upload (does not follow the size)`,
        pass: rssGrowth(scaled) < (SCALE * size) / 2,
        detail: `${mib(rssGrowth(scaled))} MiB for ${megabytes * SCALE} MiB`,
      },
    ],
  };
}

function grown(peaks: MemoryPeaks): { heapUsed: number; buffers: number } {
  return {
    heapUsed: peaks.peak.heapUsed - peaks.idle.heapUsed,
    buffers: peaks.peak.arrayBuffers - peaks.idle.arrayBuffers,
  };
}

function* chunks(block: Buffer, size: number): Generator<Buffer> {
  for (let sent = 0; sent < size; sent += CHUNK) {
    const offset = sent % block.length;
    yield block.subarray(offset, offset + Math.min(CHUNK, size - sent, block.length - offset));
  }
}

function digestOf(block: Buffer, size: number): string {
  const hash = createHash('sha256');
  for (const chunk of chunks(block, size)) hash.update(chunk);
  return hash.digest('hex');
}

/** The chunks no faster than `mibPerSecond`: each waits until its share of the time has passed. */
async function* paced(block: Buffer, size: number, mibPerSecond: number): AsyncGenerator<Buffer> {
  const started = performance.now();
  let sent = 0;
  for (const chunk of chunks(block, size)) {
    const due = started + (sent / (mibPerSecond * 1024 * 1024)) * 1000;
    if (due > performance.now()) await sleep(due - performance.now());
    sent += chunk.length;
    yield chunk;
  }
}

async function upload(target: UploadTarget, block: Buffer, size: number, mibPerSecond?: number): Promise<EchoAnswer['body']> {
  const res = await request(target.url, {
    method: 'POST',
    headers: { ...target.headers, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: Readable.from(mibPerSecond === undefined ? chunks(block, size) : paced(block, size, mibPerSecond)),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`upload answered ${res.statusCode}: ${text.slice(0, 200)}`);
  return (JSON.parse(text) as EchoAnswer).body;
}
