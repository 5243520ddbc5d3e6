/**
 * Per-request cost of the trace hooks with OpenTelemetry off (hand-made trace context) and on (a server span per
 * request, batched to an exporter that drops them): `node --import tsx bench/otel-cost.ts`.
 * Fastify's inject, no network, so the figure is the tracing work plus Fastify's own per-request work.
 */
import Fastify from 'fastify';
import { traceRequests } from '../src/http/trace.js';
import { startTelemetry } from '../src/audit/otel.js';

const N = 20_000;
const headers = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };

async function measure(label: string): Promise<number> {
  const app = Fastify({ logger: false });
  traceRequests(app);
  app.get('/x', async () => 'ok');
  await app.ready();
  for (let i = 0; i < 2000; i++) await app.inject({ url: '/x', headers });
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await app.inject({ url: '/x', headers });
  const us = Number(process.hrtime.bigint() - start) / 1000 / N;
  await app.close();
  process.stdout.write(`${label}: ${us.toFixed(1)} µs per request\n`);
  return us;
}

const off = await measure('tracing off');
const dropping = { export: (_spans: unknown[], done: (r: { code: number }) => void) => done({ code: 0 }), shutdown: async () => {} };
const otel = await startTelemetry({ env: {}, exporter: dropping });
const on = await measure('tracing on ');
await otel!.shutdown();
process.stdout.write(`difference: ${(on - off).toFixed(1)} µs per request\n`);
