/**
 * Benchmark runner: `npm run bench` runs everything (about four minutes on two cores);
 * `npm run bench -- --only storm,upload` runs a selection. Prints Markdown and the targets checked;
 * exits 1 when a target is missed.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { peers } from './peers.js';
import { proxyOverhead } from './proxy-overhead.js';
import { resourceTokenCost } from './resource-token.js';
import { refreshStorm } from './refresh-storm.js';
import type { Section } from './report.js';
import { sessionMemory } from './session-memory.js';
import { sessionThroughput } from './session-throughput.js';
import { uploadMemory } from './upload-memory.js';

const USAGE = `Usage: npm run bench -- [options]
  --only LIST         comma-separated: peers, proxy, resource, session, storm, upload, sessions (default: all)
  --duration SEC      seconds per load run (default 10)
  --connections LIST  autocannon connections, comma-separated (default 10,50)
  --rounds N          alternations (direct/gateway, memory/Redis) per connection count (default 2)
  --storm N           concurrent requests in the refresh storm (default 1000)
  --storm-rounds N    expiries per kind of storm round (default 3)
  --upload-mb N       upload size in MiB (default 25)
  --sessions LIST     session counts for the memory store (default 10000,100000)
  --rate N            fixed request rate for the peers' latency runs (default 800)
  --json FILE         also write the sections and checks as JSON
  --help`;

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10,50' },
    rounds: { type: 'string', default: '2' },
    storm: { type: 'string', default: '1000' },
    'storm-rounds': { type: 'string', default: '3' },
    'upload-mb': { type: 'string', default: '25' },
    sessions: { type: 'string', default: '10000,100000' },
    rate: { type: 'string', default: '800' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const list = (text: string): number[] => text.split(',').map((n) => positive(n));
function positive(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`not a positive whole number: ${text}\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

const seconds = positive(values.duration);
const connections = list(values.connections);
const benchmarks: Record<string, () => Promise<Section>> = {
  peers: () => peers({ seconds, rounds: positive(values.rounds), connections: connections[0]!, rate: positive(values.rate) }),
  proxy: () => proxyOverhead({ connections, seconds, rounds: positive(values.rounds) }),
  resource: () => resourceTokenCost({ connections: connections[0]!, seconds, rounds: positive(values.rounds) }),
  session: () => sessionThroughput({ connections, seconds, rounds: positive(values.rounds) }),
  storm: () => refreshStorm({ requests: positive(values.storm), accessTokenTtlSeconds: 8, rounds: positive(values['storm-rounds']) }),
  upload: () => uploadMemory({ megabytes: positive(values['upload-mb']) }),
  sessions: () => sessionMemory({ counts: list(values.sessions), redisCount: 10_000 }),
};
const selected = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(benchmarks);
const unknown = selected.filter((name) => !(name in benchmarks));
if (unknown.length) {
  console.error(`unknown benchmark: ${unknown.join(', ')}\n\n${USAGE}`);
  process.exit(2);
}

const cpu = cpus();
const load = (): string => loadavg().map((n) => n.toFixed(1)).join(' ');
console.log(`# Benchmarks\n\nNode ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${new Date().toISOString()}, load average ${load()}\n`);
const started = performance.now();
const sections: Section[] = [];
for (const name of selected) {
  const t0 = performance.now();
  const section = await benchmarks[name]!();
  sections.push(section);
  console.log(`## ${section.title}\n\n${section.markdown}\n\n_${((performance.now() - t0) / 1000).toFixed(0)} s_\n`);
}

const checks = sections.flatMap((s) => s.checks);
console.log('## Targets\n');
for (const check of checks) console.log(`- ${check.pass ? 'PASS' : 'FAIL'} ${check.name} (${check.detail})`);
console.log(`\nTotal ${((performance.now() - started) / 1000).toFixed(0)} s, load average now ${load()}`);
if (values.json) writeFileSync(values.json, `${JSON.stringify({ sections, checks }, null, 2)}\n`);
process.exitCode = checks.every((c) => c.pass) ? 0 : 1;
