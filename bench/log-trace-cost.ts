/**
 * What one log line and one request's trace context cost, measured side by side in one run:
 *
 *   node --import tsx bench/log-trace-cost.ts [--lines N] [--rounds N]
 *
 * Logging: the production logger (`createLogger`: redaction, the batching LogSink) writing into a real pipe
 * (a `cat > /dev/null` child), so the cost includes serialisation and the write(2) calls, as on stdout in a
 * container. Timed until the sink has drained. Trace context: parsing a browser's traceparent and tracestate,
 * starting a new trace, formatting the upstream's traceparent, entering the AsyncLocalStorage, and the request's
 * child logger with traceId/spanId. Each case runs once per round, the cases in a rotating order, so drifting
 * machine load hits all; the median of the rounds is reported.
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createAuditLog } from '../src/audit/audit-log.js';
import { outgoingTraceparent, runWithTrace, w3cTraceContext } from '../src/audit/trace-context.js';
import { LogSink, createLogger } from '../src/logging.js';
import { median } from './report.js';

const { values } = parseArgs({ options: { lines: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '7' } } });
const LINES = Number(values.lines);
const ROUNDS = Number(values.rounds);
const OPS = LINES * 5;

const cat = spawn('sh', ['-c', 'cat > /dev/null'], { stdio: ['pipe', 'ignore', 'inherit'] });
const sink = new LogSink({ stream: cat.stdin });
const logger = createLogger({ level: 'info', destination: sink });
const audit = createAuditLog(logger);
const headers = {
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
  accept: 'application/json',
};
const proxyFields = { tenant: 'mva', session: 'Hk3v2Xo9qLzA', sub: 'pl3GqQ7n2v0AbC', route: '/mva/echo', method: 'GET', status: 200, durationMs: 12 };
const ctx = w3cTraceContext.fromHeaders(headers);
const contexts = Array.from({ length: 8 }, () => w3cTraceContext.fromHeaders(headers));
let sinkHole = 0;

interface Case { name: string; group: 'logging' | 'trace'; ops: number; run(n: number): void | Promise<void> }

const cases: Case[] = [
  {
    name: 'process log line (`log.info({tenant, reason}, msg)`)',
    group: 'logging',
    ops: LINES,
    async run(n) {
      for (let i = 0; i < n; i++) logger.info({ tenant: 'mva', reason: 'timeout' }, 'provider metadata not loaded yet; retrying');
      await sink.drained();
    },
  },
  {
    name: 'audit `proxy` line, no request context',
    group: 'logging',
    ops: LINES,
    async run(n) {
      for (let i = 0; i < n; i++) audit.event('proxy', proxyFields);
      await sink.drained();
    },
  },
  {
    name: 'audit `proxy` line inside a request (traceId, span)',
    group: 'logging',
    ops: LINES,
    async run(n) {
      await runWithTrace(ctx, async () => {
        for (let i = 0; i < n; i++) audit.event('proxy', proxyFields);
        await sink.drained();
      });
    },
  },
  {
    name: 'continue a browser trace (parse traceparent + tracestate, new span id)',
    group: 'trace',
    ops: OPS,
    run(n) {
      for (let i = 0; i < n; i++) sinkHole += w3cTraceContext.fromHeaders(headers).spanId.length;
    },
  },
  {
    name: 'start a new trace (no traceparent)',
    group: 'trace',
    ops: OPS,
    run(n) {
      for (let i = 0; i < n; i++) sinkHole += w3cTraceContext.fromHeaders({}).traceId.length;
    },
  },
  {
    name: 'format the upstream traceparent',
    group: 'trace',
    ops: OPS,
    run(n) {
      // Indexed into the string so the concatenation is really made, not left as a rope.
      for (let i = 0; i < n; i++) sinkHole += outgoingTraceparent(contexts[i & 7]!).charCodeAt(40);
    },
  },
  {
    name: 'enter the context (`runWithTrace`) twice, as onRequest and preHandler do',
    group: 'trace',
    ops: OPS,
    run(n) {
      for (let i = 0; i < n; i++) sinkHole += runWithTrace(ctx, () => runWithTrace(ctx, () => 1));
    },
  },
  {
    name: "the request's child logger (`log.child({traceId, spanId})`)",
    group: 'trace',
    ops: OPS,
    run(n) {
      for (let i = 0; i < n; i++) sinkHole += logger.child({ traceId: ctx.traceId, spanId: ctx.spanId }) === logger ? 0 : 1;
    },
  },
];

async function timeCase(c: Case): Promise<{ wallNs: number; cpuNs: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await c.run(c.ops);
  const wall = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  return { wallNs: wall / c.ops, cpuNs: ((cpu.user + cpu.system) * 1000) / c.ops };
}

// Warm-up: JIT and the pipe.
for (const c of cases) await c.run(Math.min(c.ops, 20_000));
const results = new Map<Case, { wall: number[]; cpu: number[] }>(cases.map((c) => [c, { wall: [], cpu: [] }]));
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < cases.length; k++) {
    const c = cases[(k + round) % cases.length]!;
    const r = await timeCase(c);
    results.get(c)!.wall.push(r.wallNs);
    results.get(c)!.cpu.push(r.cpuNs);
  }
}
sink.close();
cat.stdin.end();

const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
console.log(`# Logging and trace-context cost\n`);
console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPU, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${ROUNDS} rounds, median per operation.\n`);
console.log('| | case | wall per op | CPU per op |');
console.log('|---|---|---|---|');
for (const c of cases) {
  const r = results.get(c)!;
  console.log(`| ${c.group} | ${c.name} | ${fmt(median(r.wall))} | ${fmt(median(r.cpu))} |`);
}
if (sinkHole === -1) console.log('');
