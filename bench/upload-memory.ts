/**
 * Upload memory: bodies streamed through the gateway to the echo upstream while the gateway process
 * samples its own memory. Three views: what the OS sees (peak RSS, garbage included), what is live
 * (a full GC before each sample), and a body four times larger to show the peak does not follow the size.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { MemoryPeaks } from './gateway-child.js';
import { fixed, mib, table, type Section } from './report.js';
import { ECHO_ROUTE, startBenchStack } from './stack.js';

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
}

interface UploadOutcome {
  run: UploadRun;
  peaks: MemoryPeaks;
  mibPerSecond: number;
  intact: boolean;
}

const CHUNK = 64 * 1024;
const SCALE = 4;
const LIVE_SAMPLE_EVERY_MS = 50;

export async function uploadMemory(opts: UploadMemoryOptions): Promise<Section> {
  const { megabytes } = opts;
  const stack = await startBenchStack({ accessTokenTtlSeconds: 3600, bodyLimit: `${megabytes * SCALE + 1}MiB` });
  try {
    const cookie = await stack.login();
    const url = `${stack.publicUrl}${ECHO_ROUTE}/upload`;
    const headers = { cookie: `${stack.cookieName}=${cookie}`, 'x-csrf': '1' };
    const block = randomBytes(1024 * 1024);
    // A small upload first, so first-use allocations are not counted as upload cost.
    await upload(url, headers, block, 1024 * 1024);

    const runs: UploadRun[] = [
      { label: 'as the OS sees it', megabytes },
      { label: 'as the OS sees it', megabytes },
      { label: `live (full GC every ${LIVE_SAMPLE_EVERY_MS} ms)`, megabytes, collectEveryMs: LIVE_SAMPLE_EVERY_MS },
      { label: `as the OS sees it, ${SCALE}× the body`, megabytes: megabytes * SCALE },
    ];
    const outcomes: UploadOutcome[] = [];
    for (const run of runs) {
      const size = run.megabytes * 1024 * 1024;
      await stack.trackGatewayMemory(run.collectEveryMs === undefined ? {} : { collectEveryMs: run.collectEveryMs });
      const started = performance.now();
      const echoed = await upload(url, headers, block, size);
      const seconds = (performance.now() - started) / 1000;
      const peaks = await stack.stopTrackingGatewayMemory();
      outcomes.push({ run, peaks, mibPerSecond: run.megabytes / seconds, intact: echoed.length === size && echoed.sha256 === digestOf(block, size) });
    }

    // RSS does not shrink back after a GC (the allocator keeps its pages), so RSS growth is counted
    // from the idle process before the first large upload; heap and Buffers from each run's own idle.
    const firstIdleRss = outcomes[0]!.peaks.idle.rss;
    const rssGrowth = (o: UploadOutcome): number => o.peaks.peak.rss - firstIdleRss;
    const rows = outcomes.map((o) => {
      const g = grown(o.peaks);
      return [o.run.label, o.run.megabytes, mib(o.peaks.peak.rss), mib(rssGrowth(o)), mib(g.heapUsed), mib(g.buffers), fixed(o.mibPerSecond), o.peaks.samples, o.intact ? 'yes' : 'NO'];
    });
    const size = megabytes * 1024 * 1024;
    const live = outcomes.find((o) => o.run.collectEveryMs !== undefined)!;
    const scaled = outcomes.at(-1)!;
    const markdown = [
      `POST ${ECHO_ROUTE}/upload streamed in ${CHUNK / 1024} KiB chunks with Content-Length; the upstream hashes what arrives. The gateway samples`,
      `process.memoryUsage() on a timer. Idle gateway RSS before the first upload: ${mib(firstIdleRss)} MiB. RSS growth is counted from there (RSS does not`,
      'shrink back after a GC); heap and Buffer growth from an idle sample taken right after a full GC before each run. Buffers = arrayBuffers, where bodies live.',
      '',
      table(['run', 'MiB', 'peak RSS MiB', 'RSS growth MiB', 'heap growth MiB', 'Buffer growth MiB', 'MiB/s', 'samples', 'upstream got every byte'], rows),
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
  } finally {
    await stack.close();
  }
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

async function upload(url: string, headers: Record<string, string>, block: Buffer, size: number): Promise<EchoAnswer['body']> {
  const res = await request(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: Readable.from(chunks(block, size)),
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`upload answered ${res.statusCode}: ${text.slice(0, 200)}`);
  return (JSON.parse(text) as EchoAnswer).body;
}
