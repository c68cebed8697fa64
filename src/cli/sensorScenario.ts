/**
 * Deterministic generator of realistic sensor traffic for `outpost simulate`.
 *
 * Pure: no clock, no I/O. The caller supplies the timestamp of each tick; the same options (seed included)
 * and the same sequence of timestamps always yield the same messages, so tests and bug reports can replay
 * a run exactly.
 */
import { gaussian, mulberry32 } from '../common/index.js';

export interface SensorScenarioOptions {
  /** Number of simulated devices, named `<devicePrefix>1..N`. Positive integer; default 3. */
  devices?: number;
  /** Device name prefix; must not contain `/`, `+` or `#`. Default `'pump'`. */
  devicePrefix?: string;
  /**
   * Metric names per device. Known names (`temperature`/`temp`, `pressure`, `vibration`, `humidity`/`rh`,
   * `current`/`amps`; case-insensitive) get a physically plausible signal and unit; any other name gets a
   * generic 0-100 signal without unit. Non-empty, unique, no `/`, `+` or `#`.
   * Default `['temperature', 'pressure', 'vibration']`.
   */
  metrics?: readonly string[];
  /**
   * Probability (0..1) that a sample is an injected anomaly: a spike of 8-15 sigma, where sigma is the
   * noise standard deviation (but at least 1 % of the metric's typical span, so spikes stay visible when
   * `noise` is 0). Default 0.001.
   */
  anomalyRate?: number;
  /** Gaussian noise standard deviation as a fraction (>= 0) of the metric's typical span. Default 0.02. */
  noise?: number;
  /**
   * Payload shape:
   * - `'value'`: topic `sensors/<device>/<metric>`, payload `{"value":…,"unit":…,"ts":…}` (unit omitted for
   *   unknown metrics);
   * - `'number'`: same topic, payload is the bare number as text;
   * - `'object'`: topic `sensors/<device>`, payload `{"ts":…,"<metric>":…,…}` with all metrics of the device;
   * - `'mixed'`: rotates the three shapes across devices (device 1 `value`, 2 `number`, 3 `object`,
   *   4 `value`…), so each topic keeps one format as a real heterogeneous fleet would.
   *
   * Default `'value'`.
   */
  shape?: 'value' | 'number' | 'object' | 'mixed';
  /** Seed of the PRNG (any finite number; used as an unsigned 32-bit integer). Default 1. */
  seed?: number;
}

export interface SimulatedMessage {
  topic: string;
  payload: string;
  /** true when this message carries an injected anomaly */
  anomaly: boolean;
}

type Shape = 'value' | 'number' | 'object';

/** Physical model of one kind of metric. */
interface MetricProfile {
  unit: string | undefined;
  /** typical operating range; noise, drift and spikes are scaled by its span */
  low: number;
  high: number;
  /** where inside the typical range a device's baseline may sit (fractions of the span) */
  baselineFrom: number;
  baselineTo: number;
  /** amplitude of the daily sine as a fraction of the span */
  daily: number;
  /** hard physical limits; values are clamped so a sensor never reports the impossible */
  floor: number;
  ceiling: number;
  decimals: number;
}

const PROFILES: Record<string, MetricProfile> = {
  temperature: {
    unit: '°C',
    low: 20,
    high: 80,
    baselineFrom: 0.25,
    baselineTo: 0.75,
    daily: 0.08,
    floor: -50,
    ceiling: 250,
    decimals: 2,
  },
  pressure: {
    unit: 'bar',
    low: 1,
    high: 6,
    baselineFrom: 0.3,
    baselineTo: 0.7,
    daily: 0.03,
    floor: 0,
    ceiling: 100,
    decimals: 3,
  },
  // Healthy machinery sits in the lower part of the ISO 10816 range, which is what makes spikes meaningful.
  vibration: {
    unit: 'mm/s',
    low: 0,
    high: 10,
    baselineFrom: 0.1,
    baselineTo: 0.35,
    daily: 0.01,
    floor: 0,
    ceiling: 100,
    decimals: 3,
  },
  humidity: {
    unit: '%',
    low: 20,
    high: 90,
    baselineFrom: 0.3,
    baselineTo: 0.6,
    daily: 0.1,
    floor: 0,
    ceiling: 100,
    decimals: 1,
  },
  current: {
    unit: 'A',
    low: 2,
    high: 20,
    baselineFrom: 0.3,
    baselineTo: 0.7,
    daily: 0.05,
    floor: 0,
    ceiling: 1000,
    decimals: 2,
  },
};

const ALIASES: Record<string, string> = { temp: 'temperature', rh: 'humidity', amps: 'current' };

const GENERIC: MetricProfile = {
  unit: undefined,
  low: 0,
  high: 100,
  baselineFrom: 0.3,
  baselineTo: 0.7,
  daily: 0.05,
  floor: Number.NEGATIVE_INFINITY,
  ceiling: Number.POSITIVE_INFINITY,
  decimals: 2,
};

const DAY_MS = 86_400_000;
/** Random-walk drift: standard deviation per square root of a minute, as a fraction of the span. */
const DRIFT_PER_SQRT_MINUTE = 0.01;
/** The drift is reflected at ± this fraction of the span so a long run never wanders off the range. */
const DRIFT_BOUND = 0.05;
/** Caps the time step of the random walk so a large gap between ticks cannot throw the drift around. */
const MAX_DRIFT_STEP_MS = 3_600_000;
/** Floor for the spike unit, as a fraction of the span: with noise 0 a "15 sigma" spike would be nothing. */
const MIN_SPIKE_SIGMA = 0.01;
const SPIKE_MIN_SIGMAS = 8;
const SPIKE_MAX_SIGMAS = 15;

const DEFAULT_METRICS = ['temperature', 'pressure', 'vibration'] as const;
const SHAPE_ROTATION: readonly Shape[] = ['value', 'number', 'object'];
const TOPIC_FORBIDDEN = /[/+#]/;

/** Per device × metric state. */
interface Channel {
  metric: string;
  profile: MetricProfile;
  span: number;
  baseline: number;
  /** phase of the daily sine in radians, so devices do not peak in lockstep */
  phase: number;
  drift: number;
}

interface Device {
  name: string;
  shape: Shape;
  channels: Channel[];
}

interface Sample {
  channel: Channel;
  value: number;
  anomaly: boolean;
}

export class SensorScenario {
  readonly #devices: Device[];
  readonly #anomalyRate: number;
  readonly #noise: number;
  readonly #random: () => number;
  /** standard normal variates drawn from `#random` */
  readonly #gaussian: () => number;
  #lastTs: number | undefined;

  constructor(options: SensorScenarioOptions = {}) {
    const devices = options.devices ?? 3;
    const prefix = options.devicePrefix ?? 'pump';
    const metrics = options.metrics ?? DEFAULT_METRICS;
    const anomalyRate = options.anomalyRate ?? 0.001;
    const noise = options.noise ?? 0.02;
    const shape = options.shape ?? 'value';
    const seed = options.seed ?? 1;

    if (!Number.isInteger(devices) || devices < 1) {
      throw new RangeError(`devices must be a positive integer, got ${devices}`);
    }
    if (TOPIC_FORBIDDEN.test(prefix)) {
      throw new RangeError(`devicePrefix must not contain '/', '+' or '#', got '${prefix}'`);
    }
    if (metrics.length === 0) throw new RangeError('metrics must not be empty');
    for (const metric of metrics) {
      if (metric === '' || TOPIC_FORBIDDEN.test(metric)) {
        throw new RangeError(`metric names must be non-empty without '/', '+' or '#', got '${metric}'`);
      }
      // 'ts' would collide with the timestamp key of the object shape.
      if (metric === 'ts') throw new RangeError("'ts' is reserved and cannot be a metric name");
    }
    if (new Set(metrics).size !== metrics.length) throw new RangeError('metric names must be unique');
    if (!(anomalyRate >= 0 && anomalyRate <= 1)) {
      throw new RangeError(`anomalyRate must be between 0 and 1, got ${anomalyRate}`);
    }
    if (!(noise >= 0 && Number.isFinite(noise))) {
      throw new RangeError(`noise must be a finite number >= 0, got ${noise}`);
    }
    if (!SHAPE_ROTATION.includes(shape as Shape) && shape !== 'mixed') {
      throw new RangeError(`shape must be one of value, number, object, mixed; got '${shape}'`);
    }
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);

    this.#anomalyRate = anomalyRate;
    this.#noise = noise;
    this.#random = mulberry32(seed);
    this.#gaussian = gaussian(this.#random);
    this.#devices = [];
    for (let index = 0; index < devices; index++) {
      const channels = metrics.map((metric) => {
        const key = metric.toLowerCase();
        const profile = PROFILES[ALIASES[key] ?? key] ?? GENERIC;
        const span = profile.high - profile.low;
        const position = profile.baselineFrom + (profile.baselineTo - profile.baselineFrom) * this.#random();
        return {
          metric,
          profile,
          span,
          baseline: profile.low + span * position,
          phase: (this.#random() - 0.5) * (Math.PI / 2),
          drift: 0,
        };
      });
      const deviceShape =
        shape === 'mixed' ? (SHAPE_ROTATION[index % SHAPE_ROTATION.length] ?? 'value') : shape;
      this.#devices.push({ name: `${prefix}${index + 1}`, shape: deviceShape, channels });
    }
  }

  /**
   * The messages for one tick at time `ts` (epoch ms): one per device x metric (or one per device for
   * 'object'). Advances the drift random walk by the time since the previous tick.
   */
  tick(ts: number): SimulatedMessage[] {
    if (!Number.isFinite(ts)) throw new RangeError(`ts must be a finite epoch-ms number, got ${ts}`);
    // Time going backwards (clock step) freezes the drift instead of reversing it.
    const stepMs =
      this.#lastTs === undefined ? 0 : Math.min(Math.max(ts - this.#lastTs, 0), MAX_DRIFT_STEP_MS);
    this.#lastTs = ts;
    const driftScale = DRIFT_PER_SQRT_MINUTE * Math.sqrt(stepMs / 60_000);
    const dayAngle = (2 * Math.PI * (((ts % DAY_MS) + DAY_MS) % DAY_MS)) / DAY_MS;

    const messages: SimulatedMessage[] = [];
    for (const device of this.#devices) {
      const samples = device.channels.map((channel) => this.#sample(channel, dayAngle, driftScale));
      if (device.shape === 'object') {
        const body: Record<string, number> = { ts };
        for (const sample of samples) body[sample.channel.metric] = sample.value;
        messages.push({
          topic: `sensors/${device.name}`,
          payload: JSON.stringify(body),
          anomaly: samples.some((sample) => sample.anomaly),
        });
        continue;
      }
      for (const { channel, value, anomaly } of samples) {
        const topic = `sensors/${device.name}/${channel.metric}`;
        const payload =
          device.shape === 'number'
            ? String(value)
            : JSON.stringify({ value, unit: channel.profile.unit, ts }); // undefined unit is dropped
        messages.push({ topic, payload, anomaly });
      }
    }
    return messages;
  }

  #sample(channel: Channel, dayAngle: number, driftScale: number): Sample {
    const { profile, span } = channel;
    // Every draw happens unconditionally so the random stream (and thus the clean signal) is identical for
    // any anomalyRate: the same seed with and without anomalies differs only by the spikes.
    const driftStep = this.#gaussian() * driftScale * span;
    const noise = this.#gaussian() * this.#noise * span;
    const anomalyDraw = this.#random();
    const spikeSigmas = SPIKE_MIN_SIGMAS + (SPIKE_MAX_SIGMAS - SPIKE_MIN_SIGMAS) * this.#random();
    const spikeUp = this.#random() < 0.5;

    channel.drift = reflect(channel.drift + driftStep, DRIFT_BOUND * span);
    const clean = clamp(
      channel.baseline + profile.daily * span * Math.sin(dayAngle + channel.phase) + channel.drift + noise,
      profile.floor,
      profile.ceiling,
    );

    const anomaly = anomalyDraw < this.#anomalyRate;
    let value = clean;
    if (anomaly) {
      const spike = spikeSigmas * Math.max(this.#noise, MIN_SPIKE_SIGMA) * span;
      // A spike that would cross a physical limit goes the other way, so it keeps its full size.
      const up = spikeUp ? clean + spike <= profile.ceiling : clean - spike < profile.floor;
      value = clamp(up ? clean + spike : clean - spike, profile.floor, profile.ceiling);
    }
    return { channel, value: round(value, profile.decimals), anomaly };
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}

/** Folds a random walk back inside ±bound (a mirror, not a wall, so it does not stick to the edge). */
function reflect(value: number, bound: number): number {
  if (bound <= 0) return 0;
  let folded = value;
  while (folded > bound || folded < -bound) {
    folded = folded > bound ? 2 * bound - folded : -2 * bound - folded;
  }
  return folded;
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  // `+ 0` turns -0 into 0 so the payload never reads "-0".
  return Math.round(value * factor) / factor + 0;
}
