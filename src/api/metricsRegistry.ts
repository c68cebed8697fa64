import { OutpostError } from '../common/index.js';

/**
 * Metrics in the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format): a small registry of
 * counters, gauges and histograms the daemon feeds as things happen, and their rendering as one exposition.
 * The mapping of the /api/status snapshot to metric families is in gatewayMetrics.ts.
 */

/** What `/metrics` answers with. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Label name -> value of one series. */
export type Labels = Readonly<Record<string, string>>;

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricOptions {
  /** Metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`; a counter's ends in `_total` by convention. */
  name: string;
  /** The `# HELP` text: what is counted, and its unit. */
  help: string;
  /** Names of the labels every series carries, `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed. Default: none. */
  labelNames?: readonly string[];
}

export interface HistogramOptions extends MetricOptions {
  /**
   * Upper bounds of the buckets, increasing and finite; the `+Inf` bucket is always added.
   * Default: {@link DEFAULT_BUCKETS}.
   */
  buckets?: readonly number[];
}

/** A metric or label name is invalid or taken, or histogram buckets are not increasing. */
export class MetricDefinitionError extends OutpostError {
  override readonly name = 'MetricDefinitionError';
  readonly code = 'OUTPOST_METRIC_DEFINITION';
  constructor(
    readonly metric: string,
    readonly detail: string,
  ) {
    super(`metric ${JSON.stringify(metric)}: ${detail}`);
  }
}

/** A sample does not fit its metric: labels other than the declared ones, or an impossible value. */
export class MetricSampleError extends OutpostError {
  override readonly name = 'MetricSampleError';
  readonly code = 'OUTPOST_METRIC_SAMPLE';
  constructor(
    readonly metric: string,
    readonly detail: string,
  ) {
    super(`metric ${metric}: ${detail}`);
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The Prometheus client libraries' default buckets, seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Whole-job latency buckets, seconds: a Pi-class board takes seconds to minutes per generation. */
export const JOB_DURATION_BUCKETS: readonly number[] = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];

/** Generation speed buckets, tokens/s: a Pi decodes 6-8 tokens/s, a desktop GPU hundreds. */
export const TOKENS_PER_SECOND_BUCKETS: readonly number[] = [1, 2, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256];

/** A sample value as the format writes it. */
export function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return Number.isNaN(value) ? 'NaN' : String(value);
}

/** Label values escape backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
const escapeHelp = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

const compareValues = (a: readonly string[], b: readonly string[]) => {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
};

interface Series<S> {
  values: readonly string[];
  state: S;
}

/** What Counter, Gauge and Histogram share: name, help, labels, and their series in a stable order. */
abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricType;
  readonly #series = new Map<string, Series<S>>();

  constructor(options: MetricOptions, reservedLabels: readonly string[] = []) {
    const labelNames = options.labelNames ?? [];
    if (!METRIC_NAME.test(options.name)) throw new MetricDefinitionError(options.name, 'invalid name');
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__') || reservedLabels.includes(label)) {
        throw new MetricDefinitionError(options.name, `invalid label name ${JSON.stringify(label)}`);
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new MetricDefinitionError(options.name, 'a label name appears twice');
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...labelNames];
  }

  /** The names of the sample lines this metric writes (a histogram's `_bucket`, `_sum`, `_count`). */
  get sampleNames(): readonly string[] {
    return [this.name];
  }

  /** `# HELP`, `# TYPE` and the sample lines, each ending in a line feed. */
  render(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    const all = [...this.#series.values()].sort((a, b) => compareValues(a.values, b.values));
    for (const { values, state } of all) out += this.renderSeries(values, state);
    return out;
  }

  protected abstract initial(): S;
  protected abstract renderSeries(values: readonly string[], state: S): string;

  /** The state of the series `labels` name, created on first use; the labels must be the declared ones. */
  protected series(labels: Labels): S {
    const values = this.#values(labels);
    const key = JSON.stringify(values);
    let series = this.#series.get(key);
    if (!series) {
      series = { values, state: this.initial() };
      this.#series.set(key, series);
    }
    return series.state;
  }

  /** The state of the series `labels` name, if it has one; creates nothing. */
  protected find(labels: Labels): S | undefined {
    return this.#series.get(JSON.stringify(this.#values(labels)))?.state;
  }

  #values(labels: Labels): string[] {
    const names = Object.keys(labels);
    if (
      names.length !== this.labelNames.length ||
      !this.labelNames.every((n) => typeof labels[n] === 'string')
    ) {
      throw new MetricSampleError(
        this.name,
        `labels {${names.join(', ')}} are not the declared {${this.labelNames.join(', ')}}`,
      );
    }
    return this.labelNames.map((n) => labels[n]!);
  }

  /** An unlabelled metric shows 0 before its first sample, as the official clients do. */
  protected touchUnlabelled(): void {
    if (this.labelNames.length === 0) this.series({});
  }

  protected line(name: string, values: readonly string[], value: number, extra?: [string, string]): string {
    const pairs = this.labelNames.map((n, i) => `${n}="${escapeLabelValue(values[i]!)}"`);
    if (extra) pairs.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
    return `${name}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${formatValue(value)}\n`;
  }
}

/** Splits the `(value)` and `(labels, value)` call forms. */
const args = (a: Labels | number | undefined, b: number | undefined, fallback: number): [Labels, number] =>
  typeof a === 'object' ? [a, b ?? fallback] : [{}, a ?? fallback];

/** A total that only goes up. */
export class Counter extends Metric<{ value: number }> {
  override readonly type = 'counter';

  constructor(options: MetricOptions) {
    super(options);
    this.touchUnlabelled();
  }

  inc(by?: number): void;
  inc(labels: Labels, by?: number): void;
  inc(a?: Labels | number, b?: number): void {
    const [labels, by] = args(a, b, 1);
    if (!(by >= 0) || by === Number.POSITIVE_INFINITY) {
      throw new MetricSampleError(this.name, `a counter only goes up by a finite amount, not ${by}`);
    }
    this.series(labels).value += by;
  }

  /** The series' value; 0 for a series not yet seen. */
  get(labels: Labels = {}): number {
    return this.find(labels)?.value ?? 0;
  }

  protected override initial() {
    return { value: 0 };
  }

  protected override renderSeries(values: readonly string[], state: { value: number }): string {
    return this.line(this.name, values, state.value);
  }
}

/** A value that goes up and down. */
export class Gauge extends Metric<{ value: number }> {
  override readonly type = 'gauge';

  constructor(options: MetricOptions) {
    super(options);
    this.touchUnlabelled();
  }

  set(value: number): void;
  set(labels: Labels, value: number): void;
  set(a: Labels | number, b?: number): void {
    const [labels, value] = args(a, b, Number.NaN);
    if (Number.isNaN(value)) throw new MetricSampleError(this.name, 'a gauge needs a number, not NaN');
    this.series(labels).value = value;
  }

  inc(by?: number): void;
  inc(labels: Labels, by?: number): void;
  inc(a?: Labels | number, b?: number): void {
    const [labels, by] = args(a, b, 1);
    this.set(labels, this.get(labels) + by);
  }

  dec(by?: number): void;
  dec(labels: Labels, by?: number): void;
  dec(a?: Labels | number, b?: number): void {
    const [labels, by] = args(a, b, 1);
    this.set(labels, this.get(labels) - by);
  }

  /** The series' value; 0 for a series not yet seen. */
  get(labels: Labels = {}): number {
    return this.find(labels)?.value ?? 0;
  }

  protected override initial() {
    return { value: 0 };
  }

  protected override renderSeries(values: readonly string[], state: { value: number }): string {
    return this.line(this.name, values, state.value);
  }
}

interface HistogramState {
  /** observations per bucket (not cumulative), the last one `+Inf` */
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into buckets: cumulative `_bucket{le=...}`, `_sum` and `_count` series. */
export class Histogram extends Metric<HistogramState> {
  override readonly type = 'histogram';
  /** The finite upper bounds; the `+Inf` bucket follows them. */
  readonly buckets: readonly number[];

  constructor(options: HistogramOptions) {
    super(options, ['le']);
    const buckets = (options.buckets ?? DEFAULT_BUCKETS).filter((b) => b !== Number.POSITIVE_INFINITY);
    buckets.forEach((b, i) => {
      if (!Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!)) {
        throw new MetricDefinitionError(options.name, `buckets must be finite and increasing: ${buckets}`);
      }
    });
    this.buckets = buckets;
    this.touchUnlabelled();
  }

  override get sampleNames(): readonly string[] {
    return [`${this.name}_bucket`, `${this.name}_sum`, `${this.name}_count`];
  }

  observe(value: number): void;
  observe(labels: Labels, value: number): void;
  observe(a: Labels | number, b?: number): void {
    const [labels, value] = args(a, b, Number.NaN);
    if (Number.isNaN(value)) throw new MetricSampleError(this.name, 'an observation needs a number, not NaN');
    const state = this.series(labels);
    const index = this.buckets.findIndex((bound) => value <= bound);
    state.counts[index === -1 ? this.buckets.length : index]! += 1;
    state.sum += value;
    state.count += 1;
  }

  /** The series' count and sum; for tests and the daemon's own checks. */
  get(labels: Labels = {}): { count: number; sum: number } {
    const { count = 0, sum = 0 } = this.find(labels) ?? {};
    return { count, sum };
  }

  protected override initial(): HistogramState {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  protected override renderSeries(values: readonly string[], state: HistogramState): string {
    let out = '';
    let cumulative = 0;
    state.counts.forEach((n, i) => {
      cumulative += n;
      const le = formatValue(this.buckets[i] ?? Number.POSITIVE_INFINITY);
      out += this.line(`${this.name}_bucket`, values, cumulative, ['le', le]);
    });
    out += this.line(`${this.name}_sum`, values, state.sum);
    return out + this.line(`${this.name}_count`, values, state.count);
  }
}

export type AnyMetric = Counter | Gauge | Histogram;

/**
 * Renders metric families as one exposition, ordered by family name; throws MetricDefinitionError when
 * two of them would write lines of the same name.
 */
export function renderMetrics(metrics: readonly AnyMetric[]): string {
  const taken = new Set<string>();
  for (const metric of metrics) claim(taken, metric);
  return [...metrics]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((m) => m.render())
    .join('');
}

function claim(taken: Set<string>, metric: AnyMetric) {
  const names = new Set([metric.name, ...metric.sampleNames]);
  for (const name of names) {
    if (taken.has(name)) throw new MetricDefinitionError(metric.name, `${name} is written by another metric`);
  }
  for (const name of names) taken.add(name);
}

/** One finished job, as the job runner reports it. */
export interface JobObservation {
  /** The job kind (`frame`, `audio`, ...): the `kind` label. */
  kind: string;
  /** Wall time from start to result, seconds. */
  seconds: number;
  /** Tokens generated; absent when no generation finished. */
  tokens?: number | undefined;
  /** Time the runtime spent generating those tokens, ms. */
  generationMs?: number | undefined;
}

export interface MetricsRegistryOptions {
  /** Buckets of `outpost_job_duration_seconds`, seconds. Default: {@link JOB_DURATION_BUCKETS}. */
  jobDurationBuckets?: readonly number[];
  /** Buckets of `outpost_job_tokens_per_second`, tokens/s. Default: {@link TOKENS_PER_SECOND_BUCKETS}. */
  tokensPerSecondBuckets?: readonly number[];
}

/**
 * The metrics the daemon feeds as things happen. It holds the job metrics from the start:
 * - `outpost_job_duration_seconds{kind}` histogram of whole-job latency;
 * - `outpost_job_tokens_per_second{kind}` histogram of each job's generation speed. A histogram, not a
 *   last-job gauge: a scrape every 15-60 s sees several jobs or none, and a gauge would show one of them;
 * - `outpost_job_generated_tokens_total{kind}` and `outpost_job_generation_seconds_total{kind}`, whose
 *   ratio of rates is the token throughput weighted by length (the histogram's mean weights every job alike).
 */
export class MetricsRegistry {
  readonly #metrics: AnyMetric[] = [];
  readonly #taken = new Set<string>();
  readonly #jobDuration: Histogram;
  readonly #tokensPerSecond: Histogram;
  readonly #tokens: Counter;
  readonly #generationSeconds: Counter;

  constructor(options: MetricsRegistryOptions = {}) {
    const labelNames = ['kind'];
    this.#jobDuration = this.histogram({
      name: 'outpost_job_duration_seconds',
      help: 'Time from a job starting to its result, seconds, by job kind.',
      labelNames,
      buckets: options.jobDurationBuckets ?? JOB_DURATION_BUCKETS,
    });
    this.#tokensPerSecond = this.histogram({
      name: 'outpost_job_tokens_per_second',
      help: 'Generation speed of each finished job, tokens per second, by job kind.',
      labelNames,
      buckets: options.tokensPerSecondBuckets ?? TOKENS_PER_SECOND_BUCKETS,
    });
    this.#tokens = this.counter({
      name: 'outpost_job_generated_tokens_total',
      help: 'Tokens generated by finished jobs, by job kind.',
      labelNames,
    });
    this.#generationSeconds = this.counter({
      name: 'outpost_job_generation_seconds_total',
      help: 'Time the runtime spent generating for finished jobs, seconds, by job kind.',
      labelNames,
    });
  }

  get metrics(): readonly AnyMetric[] {
    return this.#metrics;
  }

  counter(options: MetricOptions): Counter {
    return this.#add(new Counter(options));
  }

  gauge(options: MetricOptions): Gauge {
    return this.#add(new Gauge(options));
  }

  histogram(options: HistogramOptions): Histogram {
    return this.#add(new Histogram(options));
  }

  /**
   * Records a finished job. Values that are not finite and non-negative are skipped rather than thrown:
   * a metric must never fail the job it describes.
   */
  observeJob(job: JobObservation): void {
    const labels = { kind: job.kind };
    const ok = (x: number | undefined): x is number => typeof x === 'number' && x >= 0 && Number.isFinite(x);
    if (ok(job.seconds)) this.#jobDuration.observe(labels, job.seconds);
    if (ok(job.tokens)) this.#tokens.inc(labels, job.tokens);
    if (ok(job.generationMs)) this.#generationSeconds.inc(labels, job.generationMs / 1000);
    if (ok(job.tokens) && ok(job.generationMs) && job.generationMs > 0) {
      this.#tokensPerSecond.observe(labels, job.tokens / (job.generationMs / 1000));
    }
  }

  render(): string {
    return renderMetrics(this.#metrics);
  }

  #add<M extends AnyMetric>(metric: M): M {
    claim(this.#taken, metric);
    this.#metrics.push(metric);
    return metric;
  }
}
