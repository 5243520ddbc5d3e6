/**
 * The baseline: a bare @fastify/http-proxy with its defaults, no authentication, in its own process. The client
 * sends the bearer itself; `/mva/echo/*` goes to the same upstream `/echo/*` the gateway's route does. It samples
 * its memory as the gateway child does, for the upload benchmark.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import proxy from '@fastify/http-proxy';
import { serveCalls } from '../ipc.js';
import { memoryCalls, stopMemoryTracking } from '../memory-tracker.js';

let app: FastifyInstance | undefined;

serveCalls({
  async start(opts: { upstreamOrigin: string }) {
    app = Fastify({ logger: false });
    await app.register(proxy, { upstream: opts.upstreamOrigin, prefix: '/mva', rewritePrefix: '' });
    await app.listen({ host: '127.0.0.1', port: 0, backlog: 2048 });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    return { url: `http://127.0.0.1:${address.port}`, pid: process.pid };
  },
  ...memoryCalls,
  async close() {
    stopMemoryTracking();
    await app?.close();
  },
});
