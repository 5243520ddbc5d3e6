import type { Registry } from 'prom-client';

/**
 * The gateway's own counters and histograms, served by a prom-client Registry in the same text format as
 * prom-client's. These are counted on every request; prom-client's own validate the labels, sort and hash them
 * into a key, and look a bucket up by its bound as a property name on each observation, which cost more per
 * request than everything else the metrics do. Here a label set's cell is found by its values in label-name
 * order, one map per label, and a bucket by its index.
 */
type Labels<N extends string> = Readonly<Record<N, string>>;

interface MetricOptions<N extends string> {
  name: string;
  help: string;
  labelNames: readonly N[];
  registers: Registry[];
}

/** The value shape a prom-client Registry formats (`metricName` defaults to the metric's name). */
interface MetricValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
  exemplar?: null;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

/** Label sets and their cells, created on first use. */
abstract class LabelledMetric<N extends string, C extends { labels: Labels<N> }> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly N[];
  /** One level per label name, by value, down to the cell: the values' own strings are the keys, no key is built. */
  #tree = new Map<string, unknown>();
  /** Every cell, in the order they were made (the order they are served in). */
  protected cells: C[] = [];

  constructor(opts: MetricOptions<N>) {
    if (opts.labelNames.length === 0) throw new TypeError(`${opts.name}: a labelled metric needs label names`);
    this.name = opts.name;
    this.help = opts.help;
    this.#labelNames = opts.labelNames;
    for (const registry of opts.registers) registry.registerMetric(this as never);
  }

  protected cellFor(labels: Labels<N>): C {
    const names = this.#labelNames;
    const last = names.length - 1;
    let level = this.#tree;
    for (let i = 0; i < last; i++) {
      const value = labels[names[i]!];
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    let cell = level.get(labels[names[last]!]) as C | undefined;
    if (cell === undefined) {
      const own = {} as Record<N, string>;
      for (const name of names) own[name] = String(labels[name]);
      cell = this.newCell(own);
      level.set(labels[names[last]!], cell);
      this.cells.push(cell);
    }
    return cell;
  }

  protected abstract newCell(labels: Labels<N>): C;

  /** prom-client's JSON form (`registry.getMetricsAsJSON`): each value's labels with the shared ones spread in. */
  async get(): Promise<MetricData> {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })) };
  }

  abstract getForPromString(): Promise<MetricData>;

  reset(): void {
    this.#tree = new Map();
    this.cells = [];
  }
}

export class LabelledCounter<N extends string> extends LabelledMetric<N, { labels: Labels<N>; value: number }> {
  readonly type = 'counter';

  inc(labels: Labels<N>, by = 1): void {
    this.cellFor(labels).value += by;
  }

  protected newCell(labels: Labels<N>) {
    return { labels, value: 0 };
  }

  async getForPromString(): Promise<MetricData> {
    const values = this.cells.map(({ labels, value }) => ({ labels: { ...labels }, value }));
    return { help: this.help, name: this.name, type: this.type, values, aggregator: this.aggregator };
  }
}

interface HistogramCell<N extends string> {
  labels: Labels<N>;
  /** Observations per bucket (not cumulative); the last counts those above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

export class LabelledHistogram<N extends string> extends LabelledMetric<N, HistogramCell<N>> {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];

  constructor(opts: MetricOptions<N> & { buckets: readonly number[] }) {
    super(opts);
    this.#bounds = [...opts.buckets].sort((a, b) => a - b);
  }

  /** A value that is not a finite number is not recorded (a metric never fails a request). */
  observe(labels: Labels<N>, value: number): void {
    if (!Number.isFinite(value)) return;
    const cell = this.cellFor(labels);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    cell.counts[i]! += 1;
    cell.sum += value;
    cell.count += 1;
  }

  protected newCell(labels: Labels<N>): HistogramCell<N> {
    return { labels, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
  }

  /** As prom-client serves a histogram: the cell's labels shared, `le` first on each bucket line. */
  async getForPromString(): Promise<MetricData> {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, counts, sum, count } of this.cells) {
      const sharedLabels = { ...labels } as Record<string, string>;
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += counts[i]!;
        values.push({ labels: { le }, sharedLabels, value: cumulative, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels, value: count, metricName: bucket, exemplar: null });
      values.push({ labels: {}, sharedLabels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
