/**
 * Memory samples a server child takes of itself on a timer, for the upload benchmark: the gateway and
 * the bare proxy offer the same calls, so their figures compare. Children run with --expose-gc.
 */
export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface MemoryPeaks {
  idle: MemorySample;
  peak: MemorySample;
  samples: number;
}

const SAMPLE_EVERY_MS = 5;

interface Tracking {
  idle: MemorySample;
  peak: MemorySample;
  samples: number;
  timer?: NodeJS.Timeout;
}

let tracking: Tracking | undefined;

function sample(): MemorySample {
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external, arrayBuffers };
}

function collectGarbage(): void {
  // Twice: the first pass can leave objects that only the second one frees (weak references, finalisers).
  globalThis.gc?.();
  globalThis.gc?.();
}

/** The calls a child adds to its serveCalls table. */
export const memoryCalls = {
  /**
   * Starts sampling process.memoryUsage() on a timer, the idle sample first, after a full GC. With
   * `collectEveryMs` each sample follows a full GC, so it shows live memory rather than garbage not yet collected.
   */
  async trackMemory(opts: { collectEveryMs?: number } = {}): Promise<MemorySample> {
    collectGarbage();
    const idle = sample();
    const collect = opts.collectEveryMs !== undefined;
    const state: Tracking = { idle, peak: { ...idle }, samples: 0 };
    state.timer = setInterval(() => {
      if (collect) globalThis.gc?.();
      const now = sample();
      state.samples += 1;
      for (const key of Object.keys(now) as (keyof MemorySample)[]) state.peak[key] = Math.max(state.peak[key], now[key]);
    }, opts.collectEveryMs ?? SAMPLE_EVERY_MS);
    tracking = state;
    return idle;
  },

  async stopTracking(): Promise<MemoryPeaks> {
    if (!tracking) throw new Error('not tracking');
    clearInterval(tracking.timer);
    const { idle, peak, samples } = tracking;
    tracking = undefined;
    return { idle, peak, samples };
  },
};

export function stopMemoryTracking(): void {
  clearInterval(tracking?.timer);
}
