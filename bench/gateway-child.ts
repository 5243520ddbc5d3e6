/**
 * The gateway under measurement, in its own process: built with buildApp from the config the runner
 * sends, plus calls only the bench has (memory samples, CPU time, a session's access token).
 */
import { buildApp, type Gateway } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { serveCalls } from './ipc.js';

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface SessionToken {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
}

export interface MemoryPeaks {
  idle: MemorySample;
  peak: MemorySample;
  samples: number;
}

const SAMPLE_EVERY_MS = 5;
const LISTEN_BACKLOG = 2048;

let gateway: Gateway | undefined;
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

function running(): Gateway {
  if (!gateway) throw new Error('gateway not started');
  return gateway;
}

serveCalls({
  async start(raw: unknown) {
    const config = normaliseConfig(raw, {});
    gateway = await buildApp(config);
    // Node's default accept queue (511) overflows when a storm opens 1000 connections at once; the kernel
    // then drops SYNs that are retried after 1 s, 3 s, ... and the run would measure TCP back-off instead.
    await gateway.app.listen({ host: config.server.host, port: config.server.port, backlog: LISTEN_BACKLOG });
    await gateway.warmUp();
    return { pid: process.pid };
  },

  async accessToken(cookieValue: string): Promise<SessionToken> {
    const loaded = await running().core.lifecycle.sessions.load(cookieValue);
    if (loaded.state !== 'live') throw new Error(`session is ${loaded.state}`);
    const { accessToken, accessTokenExpiresAt } = loaded.session.data.tokens;
    return { token: accessToken, expiresAt: accessTokenExpiresAt };
  },

  /**
   * Starts sampling process.memoryUsage() on a timer, the idle sample first, after a full GC. With
   * `collectEveryMs` each sample follows a full GC, so it shows live memory rather than garbage not yet collected.
   */
  async trackMemory(opts: { collectEveryMs?: number } = {}) {
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

  async cpuMicros() {
    const { user, system } = process.cpuUsage();
    return user + system;
  },

  async close() {
    clearInterval(tracking?.timer);
    await gateway?.close();
  },
});
