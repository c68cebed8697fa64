import { OutpostError } from '../common/index.js';

/**
 * Metrics in the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format): a small registry of
 * counters, gauges and histograms the daemon feeds as things happen, and a mapping of the /api/status
 * snapshot (totals the stages already keep) to metric families at scrape time.
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

type Count = number | null | undefined;
type Counts = Readonly<Record<string, Count>>;

/** The parts of the daemon's /api/status object the metrics read; every part may be missing. */
export interface GatewayStatusSnapshot {
  gatewayId?: string;
  version?: string;
  /** ISO 8601 */
  startedAt?: string;
  state?: string;
  broker?: { connected?: boolean; reconnects?: Count };
  ingest?: { accepted?: Counts; rejected?: Counts; duplicates?: Count; bytes?: Count };
  pipeline?: {
    processed?: Count;
    readings?: Count;
    anomalies?: Count;
    late?: Count;
    commitFailures?: Count;
  };
  /** rejections by code */
  rejects?: Counts;
  queues?: {
    journalPending?: Count;
    outbox?: {
      messages?: Count;
      bytes?: Count;
      /** ISO 8601 (or epoch ms) of the oldest waiting message; null when empty */
      oldestAt?: string | number | null;
      inflight?: Count;
      published?: Count;
      dropped?: Count;
    };
  };
  memory?: { rssBytes?: Count; heapUsedBytes?: Count };
  media?: { files?: Count; bytes?: Count; maxBytes?: Count };
  frames?: {
    cameras?: Readonly<Record<string, { decisions?: Counts; rejected?: Count } | undefined>>;
    decoded?: Count;
    superseded?: Count;
  };
  audio?: {
    sources?: Readonly<
      Record<
        string,
        | { clips?: Count; rejected?: Count; seconds?: Count; voicedSeconds?: Count; droppedSeconds?: Count }
        | undefined
      >
    >;
    realTimeFactor?: Count;
    /** audio jobs dropped before they ran */
    dropped?: Count;
  };
  model?: {
    state?: string;
    variant?: string | null;
    runtime?: string | null;
    contextSize?: Count;
    capabilities?: Readonly<Record<string, boolean>> | null;
    worker?: { crashes?: Count } | null;
    governor?: { budgetBytes?: Count; workerRssBytes?: Count; memAvailableBytes?: Count } | null;
  };
  /** job counts by state, next to `waiting` and `runner` */
  jobs?: {
    waiting?: readonly { state?: string; kind?: string; jobs?: Count }[];
    runner?: { done?: Count; failed?: Count; retried?: Count } | null;
    [state: string]: unknown;
  };
}

type Pick = (s: GatewayStatusSnapshot) => unknown;

/** Unlabelled counters read from one snapshot field each: name, help, field. */
const COUNTERS: readonly (readonly [string, string, Pick])[] = [
  ['outpost_broker_reconnects_total', 'MQTT reconnections since start.', (s) => s.broker?.reconnects],
  [
    'outpost_ingest_duplicates_total',
    'MQTT redeliveries acknowledged without a second journal row.',
    (s) => s.ingest?.duplicates,
  ],
  ['outpost_ingest_bytes_total', 'Payload bytes received.', (s) => s.ingest?.bytes],
  ['outpost_pipeline_processed_total', 'Journal entries processed.', (s) => s.pipeline?.processed],
  ['outpost_pipeline_readings_total', 'Sensor readings stored.', (s) => s.pipeline?.readings],
  ['outpost_pipeline_anomalies_total', 'Sensor anomalies found.', (s) => s.pipeline?.anomalies],
  ['outpost_pipeline_late_total', 'Readings that came after their window closed.', (s) => s.pipeline?.late],
  [
    'outpost_pipeline_commit_failures_total',
    'Failed batch commits (retried).',
    (s) => s.pipeline?.commitFailures,
  ],
  ['outpost_frames_decoded_total', 'Frames decoded and resized.', (s) => s.frames?.decoded],
  [
    'outpost_frames_superseded_total',
    'Frame jobs dropped before they ran for a newer frame of their camera.',
    (s) => s.frames?.superseded,
  ],
  [
    'outpost_audio_jobs_dropped_total',
    'Audio jobs dropped before they ran: too many of their source waited.',
    (s) => s.audio?.dropped,
  ],
  ['outpost_jobs_retried_total', 'Job attempts retried after a failure.', (s) => s.jobs?.runner?.retried],
  ['outpost_outbox_published_total', 'Outbox messages published.', (s) => s.queues?.outbox?.published],
  [
    'outpost_outbox_dropped_total',
    'Outbox messages dropped over its limits.',
    (s) => s.queues?.outbox?.dropped,
  ],
  ['outpost_model_worker_crashes_total', 'Inference worker crashes.', (s) => s.model?.worker?.crashes],
];

/** Unlabelled gauges read from one snapshot field each: name, help, field. */
const GAUGES: readonly (readonly [string, string, Pick])[] = [
  [
    'outpost_start_time_seconds',
    'Daemon start, Unix time, seconds.',
    (s) => Date.parse(s.startedAt ?? '') / 1000,
  ],
  ['outpost_broker_connected', '1 while the MQTT session is connected, else 0.', (s) => s.broker?.connected],
  [
    'outpost_audio_real_time_factor',
    'Mean audio processing time per second of audio (under 1 keeps up).',
    (s) => s.audio?.realTimeFactor,
  ],
  ['outpost_journal_pending', 'Journal entries not yet processed.', (s) => s.queues?.journalPending],
  ['outpost_outbox_messages', 'Messages waiting in the outbox.', (s) => s.queues?.outbox?.messages],
  ['outpost_outbox_bytes', 'Payload bytes waiting in the outbox.', (s) => s.queues?.outbox?.bytes],
  [
    'outpost_outbox_inflight',
    'Outbox messages published, not yet acknowledged.',
    (s) => s.queues?.outbox?.inflight,
  ],
  [
    'outpost_process_resident_memory_bytes',
    'Resident memory of the daemon, bytes.',
    (s) => s.memory?.rssBytes,
  ],
  ['outpost_process_heap_used_bytes', 'V8 heap in use by the daemon, bytes.', (s) => s.memory?.heapUsedBytes],
  ['outpost_media_files', 'Stored media files.', (s) => s.media?.files],
  ['outpost_media_bytes', 'Stored media, bytes.', (s) => s.media?.bytes],
  ['outpost_media_max_bytes', 'Media retention limit, bytes.', (s) => s.media?.maxBytes],
  [
    'outpost_model_context_tokens',
    'Context size of the resident model, tokens.',
    (s) => s.model?.contextSize,
  ],
  [
    'outpost_model_memory_budget_bytes',
    'Memory the governor allows the model worker, bytes.',
    (s) => s.model?.governor?.budgetBytes,
  ],
  [
    'outpost_model_worker_resident_memory_bytes',
    'Resident memory of the model worker, bytes.',
    (s) => s.model?.governor?.workerRssBytes,
  ],
  [
    'outpost_memory_available_bytes',
    'Memory available on the board, bytes.',
    (s) => s.model?.governor?.memAvailableBytes,
  ],
];

/** Audio source counters: name, help, field of the source's stats. */
const AUDIO: readonly (readonly [
  string,
  string,
  'clips' | 'rejected' | 'seconds' | 'voicedSeconds' | 'droppedSeconds',
])[] = [
  ['outpost_audio_clips_total', 'Audio clips received, by source.', 'clips'],
  ['outpost_audio_clips_rejected_total', 'Audio clips rejected, by source.', 'rejected'],
  ['outpost_audio_received_seconds_total', 'Audio received, seconds, by source.', 'seconds'],
  [
    'outpost_audio_voiced_seconds_total',
    'Audio kept as voiced segments, seconds, by source.',
    'voicedSeconds',
  ],
  ['outpost_audio_dropped_seconds_total', 'Silence dropped, seconds, by source.', 'droppedSeconds'],
];

/** Frame gate reasons that let a frame through; every other reason is a drop. */
const GATE_PASSES = new Set(['first', 'changed', 'forced', 'ungated']);

const finite = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

const entries = <T>(record: Readonly<Record<string, T>> | null | undefined): [string, T][] =>
  record && typeof record === 'object' ? Object.entries(record) : [];

/**
 * One scrape's families from the snapshot. A family appears once it has a value: a part missing from the
 * snapshot (no model, no cameras yet) leaves its families out rather than showing zeros.
 */
class SnapshotFamilies {
  readonly metrics: (Counter | Gauge)[] = [];
  readonly #byName = new Map<string, Counter | Gauge>();

  put(type: 'counter' | 'gauge', name: string, help: string, value: unknown, labels: Labels = {}): void {
    const n = typeof value === 'boolean' ? Number(value) : finite(value);
    if (n === undefined || (type === 'counter' && n < 0)) return;
    let family = this.#byName.get(name);
    if (!family) {
      const options = { name, help, labelNames: Object.keys(labels) };
      family = type === 'counter' ? new Counter(options) : new Gauge(options);
      this.#byName.set(name, family);
      this.metrics.push(family);
    }
    if (family instanceof Counter) family.inc(labels, n);
    else family.set(labels, n);
  }
}

/**
 * The gateway's metrics: families mapped from the /api/status snapshot, then the registry's own, in one
 * exposition ordered by name. `now` (epoch ms) dates the outbox's oldest message.
 */
export function renderGatewayMetrics(
  status: GatewayStatusSnapshot,
  registry: MetricsRegistry,
  now: number = Date.now(),
): string {
  const f = new SnapshotFamilies();
  const { ingest, frames, audio, model, jobs } = status;
  for (const [name, help, pick] of COUNTERS) f.put('counter', name, help, pick(status));
  for (const [name, help, pick] of GAUGES) f.put('gauge', name, help, pick(status));

  if (status.version !== undefined || status.gatewayId !== undefined) {
    f.put('gauge', 'outpost_gateway_info', 'Constant 1; gateway id, version and run state as labels.', 1, {
      gateway_id: status.gatewayId ?? '',
      version: status.version ?? '',
      state: status.state ?? '',
    });
  }
  for (const [route, n] of entries(ingest?.accepted)) {
    f.put('counter', 'outpost_ingest_messages_total', 'Messages committed to the journal, by route.', n, {
      route,
    });
  }
  for (const [route, n] of entries(ingest?.rejected)) {
    const help = 'Messages turned away before the journal (over the size limit), by route.';
    f.put('counter', 'outpost_ingest_rejected_total', help, n, { route });
  }
  for (const [code, n] of entries(status.rejects)) {
    const help = 'Rejections at every stage (ingest, pipeline, model), by reject code.';
    f.put('counter', 'outpost_rejects_total', help, n, { code });
  }

  for (const [camera, stats] of entries(frames?.cameras)) {
    for (const [reason, n] of entries(stats?.decisions)) {
      const [name, help] = GATE_PASSES.has(reason)
        ? ['outpost_frame_gate_passed_total', 'Frames the change gate let through, by camera and reason.']
        : ['outpost_frame_gate_drops_total', 'Frames the change gate dropped, by camera and reason.'];
      f.put('counter', name, help, n, { camera, reason });
    }
    const help = 'Frames whose payload failed its checks, by camera.';
    f.put('counter', 'outpost_frames_rejected_total', help, stats?.rejected, { camera });
  }
  for (const [source, stats] of entries(audio?.sources)) {
    for (const [name, help, field] of AUDIO) f.put('counter', name, help, stats?.[field], { source });
  }

  for (const [state, n] of entries(jobs)) {
    if (state === 'waiting' || state === 'runner') continue;
    const help = 'Jobs in the store by state (done, failed and dropped until pruned).';
    f.put('gauge', 'outpost_jobs', help, n, { state });
  }
  // status lists waiting jobs by state, kind and reason; the reason is free text, so it is summed away.
  const waiting = new Map<string, { state: string; kind: string; n: number }>();
  for (const w of Array.isArray(jobs?.waiting) ? jobs.waiting : []) {
    const n = finite(w?.jobs);
    if (n === undefined || typeof w.state !== 'string' || typeof w.kind !== 'string') continue;
    const key = JSON.stringify([w.state, w.kind]);
    waiting.set(key, { state: w.state, kind: w.kind, n: (waiting.get(key)?.n ?? 0) + n });
  }
  for (const { state, kind, n } of waiting.values()) {
    f.put('gauge', 'outpost_jobs_waiting', 'Unfinished jobs by state and job kind.', n, { state, kind });
  }
  for (const result of ['done', 'failed'] as const) {
    const help = 'Jobs the runner finished, by result.';
    f.put('counter', 'outpost_jobs_finished_total', help, jobs?.runner?.[result], { result });
  }

  const oldestAt = status.queues?.outbox?.oldestAt;
  if (oldestAt !== undefined) {
    const at = typeof oldestAt === 'string' ? Date.parse(oldestAt) : oldestAt;
    // An empty outbox has nothing waiting: age 0, so `age > threshold` alerts resolve.
    const help = 'Age of the oldest waiting outbox message, seconds; 0 when empty.';
    f.put(
      'gauge',
      'outpost_outbox_oldest_age_seconds',
      help,
      at === null ? 0 : Math.max(0, (now - at) / 1000),
    );
  }

  if (typeof model?.state === 'string') {
    const help = 'Constant 1; resident model variant, runtime and engine state as labels.';
    f.put('gauge', 'outpost_model_info', help, 1, {
      variant: model.variant ?? '',
      runtime: model.runtime ?? '',
      state: model.state,
    });
  }
  for (const [capability, able] of entries(model?.capabilities)) {
    const help = '1 if the resident model takes this kind of input, else 0.';
    f.put('gauge', 'outpost_model_capability', help, able, { capability });
  }

  return renderMetrics([...f.metrics, ...registry.metrics]);
}
