import type { JournalEntry, NewReading, NewWindow, Severity } from '../store/index.js';
import { type DetectorOptions, RobustDetector } from './sensor/detector.js';
import { parseSensorMessage, type TimestampLimits } from './sensor/parse.js';
import { WindowAggregator, type WindowStats } from './sensor/window.js';
import type { StageBatch } from './types.js';

export interface SensorStageOptions {
  /** Tumbling window length, ms. */
  windowMs: number;
  timestamps: TimestampLimits;
  detector: Required<DetectorOptions>;
  /** Series tracked at most; readings of further new series are rejected. */
  maxSeries: number;
  /** The latest values of a series, oldest first, to seed its detector after a restart. */
  history: (device: string, metric: string, n: number) => number[];
}

/** A series' value that left its robust baseline. */
export interface SensorAnomaly {
  /** the route the reading came in on */
  route: string;
  device: string;
  metric: string;
  unit?: string | undefined;
  /** epoch ms of the reading */
  ts: number;
  value: number;
  /** robust z-score */
  score: number;
  median: number;
  scale: number;
  threshold: number;
  severity: Severity;
}

interface SeriesState {
  detector: RobustDetector;
  unit?: string | undefined;
}

/**
 * Sensor readings: parse (both payload shapes), then per series a tumbling window and a robust
 * median/MAD anomaly detector. State is in memory; detectors are re-seeded from stored readings after a
 * restart so a series does not warm up again.
 */
export class SensorStage {
  readonly #series = new Map<string, SeriesState>();
  readonly #windows: WindowAggregator;
  /** readings older than their series' open window (not aggregated, still stored) */
  late = 0;

  constructor(private readonly options: SensorStageOptions) {
    // Windows close one window-length after their end, so a device with a slow clock still fills them.
    this.#windows = new WindowAggregator({ windowMs: options.windowMs, graceMs: options.windowMs });
  }

  /** Processes one journal entry into `batch`; `captures` are the route's wildcard values. */
  process(entry: JournalEntry, captures: readonly string[], batch: StageBatch): void {
    const parsed = parseSensorMessage(
      {
        captures,
        payload: entry.payload,
        contentType: entry.contentType ?? undefined,
        receivedAt: entry.receivedAt,
      },
      this.options.timestamps,
    );
    if (!parsed.ok) {
      batch.rejected.push({ journalId: entry.id, code: parsed.code, reason: parsed.reason });
      return;
    }
    const fresh = parsed.readings.filter((r) => !this.#series.has(key(r.device, r.metric)));
    if (
      this.#series.size + new Set(fresh.map((r) => key(r.device, r.metric))).size >
      this.options.maxSeries
    ) {
      batch.rejected.push({
        journalId: entry.id,
        code: 'too-many-series',
        reason: `already tracking ${this.#series.size} series (sensors.maxSeries ${this.options.maxSeries})`,
      });
      return;
    }
    for (const reading of parsed.readings) {
      const series = this.#state(reading.device, reading.metric);
      if (reading.unit !== undefined) series.unit = reading.unit;
      const stored: NewReading = { ...reading, journalId: entry.id };
      batch.readings.push(stored);
      const seriesKey = key(reading.device, reading.metric);
      const { closed, late } = this.#windows.add(seriesKey, reading.ts, reading.value);
      if (late) this.late += 1;
      for (const window of closed) batch.windows.push(this.#toWindow(window));
      const verdict = series.detector.observe(reading.ts, reading.value);
      if (verdict?.raise) {
        const threshold = this.options.detector.threshold;
        batch.anomalies.push({
          route: entry.route,
          device: reading.device,
          metric: reading.metric,
          unit: series.unit,
          ts: reading.ts,
          value: reading.value,
          score: verdict.score,
          median: verdict.median,
          scale: verdict.scale,
          threshold,
          severity: verdict.score >= 2 * threshold ? 'critical' : 'warning',
        });
      }
    }
    batch.processed.push(entry.id);
  }

  /** Windows whose time is up (series that went quiet); `all` closes every open one (shutdown). */
  closeWindows(now: number, all = false): NewWindow[] {
    return (all ? this.#windows.closeAll() : this.#windows.closeDue(now)).map((w) => this.#toWindow(w));
  }

  get seriesCount(): number {
    return this.#series.size;
  }

  #state(device: string, metric: string): SeriesState {
    const k = key(device, metric);
    let state = this.#series.get(k);
    if (!state) {
      const detector = new RobustDetector(this.options.detector);
      const history = this.options.history(device, metric, this.options.detector.window);
      if (history.length > 0) detector.seed(history);
      state = { detector };
      this.#series.set(k, state);
    }
    return state;
  }

  #toWindow(window: WindowStats): NewWindow {
    const split = window.series.indexOf('\0');
    return {
      device: window.series.slice(0, split),
      metric: window.series.slice(split + 1),
      start: window.start,
      end: window.end,
      count: window.count,
      min: window.min,
      max: window.max,
      mean: window.mean,
      std: window.std,
    };
  }
}

const key = (device: string, metric: string) => `${device}\0${metric}`;
