/**
 * The gateway's own counters and histograms (src/audit/labelled-metrics.ts) against prom-client's: the same
 * observations, each into one registry, must give the same Prometheus text and the same JSON, byte for byte, for
 * any label values (quotes, backslashes, newlines and non-ASCII included) and any values, bucket bounds included.
 */
import t from 'tap';
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { LabelledCounter, LabelledHistogram } from '../src/audit/labelled-metrics.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const LABELS = ['tenant', 'route', 'method'] as const;
type Label = (typeof LABELS)[number];

const labelValue = fc.oneof(fc.constantFrom('demo', '/mva/echo/*', 'GET', 'a"b', 'c\\d', 'line\nbreak', 'ø', ''), fc.string({ maxLength: 6 }));
const labels = fc.record({ tenant: labelValue, route: labelValue, method: labelValue });
const value = fc.oneof(fc.constantFrom(...BUCKETS, 0, 3, 1e9), fc.double({ min: 0, max: 5, noNaN: true }));
const observations = fc.array(fc.record({ labels, value, by: fc.integer({ min: 1, max: 5 }) }), { maxLength: 40 });

function registries() {
  const theirs = new Registry();
  const ours = new Registry();
  const spec = (kind: string) => ({ name: `bff_${kind}`, help: `The ${kind}.`, labelNames: [...LABELS] as Label[] });
  return {
    theirs,
    ours,
    theirCounter: new Counter({ ...spec('things_total'), registers: [theirs] }),
    ourCounter: new LabelledCounter({ ...spec('things_total'), registers: [ours] }),
    theirHistogram: new Histogram({ ...spec('duration_seconds'), buckets: BUCKETS, registers: [theirs] }),
    ourHistogram: new LabelledHistogram({ ...spec('duration_seconds'), buckets: BUCKETS, registers: [ours] }),
  };
}

t.test('the same observations give the same text and JSON as prom-client', async (t) => {
  await fc.assert(
    fc.asyncProperty(observations, async (seen) => {
      const r = registries();
      for (const o of seen) {
        r.theirCounter.inc(o.labels, o.by);
        r.ourCounter.inc(o.labels, o.by);
        r.theirHistogram.observe(o.labels, o.value);
        r.ourHistogram.observe(o.labels, o.value);
      }
      t.equal(await r.ours.metrics(), await r.theirs.metrics());
      t.same(plain(await r.ours.getMetricsAsJSON()), plain(await r.theirs.getMetricsAsJSON()));
    }),
    { numRuns: 100 },
  );
});

t.test('one label set counts into one cell whatever object carries it; a reset empties every cell', async (t) => {
  const { ours, ourCounter, ourHistogram } = registries();
  const a = { tenant: 'demo', route: '/x', method: 'GET' };
  ourCounter.inc(a);
  ourCounter.inc({ method: 'GET', route: '/x', tenant: 'demo' }, 2);
  ourHistogram.observe(a, 0.001);
  ourHistogram.observe({ ...a }, 0.0011);
  const text = await ours.metrics();
  t.match(text, /^bff_things_total\{tenant="demo",route="\/x",method="GET"\} 3$/m);
  t.match(text, /^bff_duration_seconds_bucket\{le="0.001",tenant="demo",route="\/x",method="GET"\} 1$/m, 'the bound itself is in its bucket');
  t.match(text, /^bff_duration_seconds_bucket\{le="0.0025",tenant="demo",route="\/x",method="GET"\} 2$/m);
  t.match(text, /^bff_duration_seconds_count\{tenant="demo",route="\/x",method="GET"\} 2$/m);
  ours.resetMetrics();
  t.notMatch(await ours.metrics(), /tenant=/, 'nothing left after a reset');
});

t.test('a value that is not a finite number is not recorded and never throws', async (t) => {
  const { ours, ourHistogram } = registries();
  const a = { tenant: 'demo', route: '/x', method: 'GET' };
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) t.doesNotThrow(() => ourHistogram.observe(a, bad));
  ourHistogram.observe(a, 0.2);
  t.match(await ours.metrics(), /^bff_duration_seconds_count\{tenant="demo",route="\/x",method="GET"\} 1$/m);
});

/** JSON as a client of `getMetricsAsJSON` would see it: no prototypes, no undefined fields. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}
