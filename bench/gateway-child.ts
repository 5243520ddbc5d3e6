/**
 * The gateway under measurement, in its own process: built with buildApp from the config the runner
 * sends, plus calls only the bench has (memory samples, CPU time, a session's access token).
 */
import { buildApp, type Gateway } from '../src/app.js';
import { normaliseConfig } from '../src/config/normalise.js';
import { serveCalls } from './ipc.js';
import { memoryCalls, stopMemoryTracking } from './memory-tracker.js';

export interface SessionToken {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
}

const LISTEN_BACKLOG = 2048;

let gateway: Gateway | undefined;

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

  ...memoryCalls,

  async cpuMicros() {
    const { user, system } = process.cpuUsage();
    return user + system;
  },

  async close() {
    stopMemoryTracking();
    await gateway?.close();
  },
});
