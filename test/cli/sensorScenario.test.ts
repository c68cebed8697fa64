import { describe, expect, it } from 'vitest';
import {
  SensorScenario,
  type SensorScenarioOptions,
  type SimulatedMessage,
} from '../../src/cli/sensorScenario.js';

const T0 = Date.UTC(2025, 0, 1, 12);

function run(options: SensorScenarioOptions, ticks: number, stepMs = 1000): SimulatedMessage[] {
  const scenario = new SensorScenario(options);
  const out: SimulatedMessage[] = [];
  for (let i = 0; i < ticks; i++) out.push(...scenario.tick(T0 + i * stepMs));
  return out;
}

function sampleValue(message: SimulatedMessage): number {
  const parsed: unknown = JSON.parse(message.payload);
  if (typeof parsed === 'number') return parsed;
  if (
    typeof parsed === 'object' &&
    parsed !== null &&
    'value' in parsed &&
    typeof parsed.value === 'number'
  ) {
    return parsed.value;
  }
  throw new Error(`no value in ${message.payload}`);
}

describe('SensorScenario', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    expect(run({ seed: 42 }, 50)).toEqual(run({ seed: 42 }, 50));
    expect(run({ seed: 42 }, 50)).not.toEqual(run({ seed: 43 }, 50));
  });

  it("'value' shape: sensors/<device>/<metric> with value, unit and ts", () => {
    const messages = new SensorScenario().tick(T0);
    expect(messages.map((m) => m.topic)).toEqual([
      'sensors/pump1/temperature',
      'sensors/pump1/pressure',
      'sensors/pump1/vibration',
      'sensors/pump2/temperature',
      'sensors/pump2/pressure',
      'sensors/pump2/vibration',
      'sensors/pump3/temperature',
      'sensors/pump3/pressure',
      'sensors/pump3/vibration',
    ]);
    const units = messages.map((m) => JSON.parse(m.payload).unit);
    expect(units.slice(0, 3)).toEqual(['°C', 'bar', 'mm/s']);
    for (const message of messages) {
      const body = JSON.parse(message.payload);
      expect(Object.keys(body).sort()).toEqual(['ts', 'unit', 'value']);
      expect(body.ts).toBe(T0);
      expect(Number.isFinite(body.value)).toBe(true);
    }
  });

  it("'number' shape: bare number text on per-metric topics", () => {
    const messages = new SensorScenario({ shape: 'number', devices: 2, devicePrefix: 'tank' }).tick(T0);
    expect(messages).toHaveLength(6);
    expect(messages[0]?.topic).toBe('sensors/tank1/temperature');
    for (const message of messages) {
      expect(message.payload).toMatch(/^-?\d+(\.\d+)?$/);
      expect(Number.isFinite(Number(message.payload))).toBe(true);
    }
  });

  it("'object' shape: one message per device with all metrics and ts", () => {
    const messages = new SensorScenario({
      shape: 'object',
      metrics: ['temperature', 'humidity', 'flux'],
    }).tick(T0);
    expect(messages.map((m) => m.topic)).toEqual(['sensors/pump1', 'sensors/pump2', 'sensors/pump3']);
    for (const message of messages) {
      const body = JSON.parse(message.payload);
      expect(Object.keys(body).sort()).toEqual(['flux', 'humidity', 'temperature', 'ts']);
      expect(body.ts).toBe(T0);
    }
  });

  it("'mixed' shape rotates the shapes across devices", () => {
    const messages = new SensorScenario({
      shape: 'mixed',
      devices: 4,
      metrics: ['pressure', 'current'],
    }).tick(T0);
    expect(messages.map((m) => m.topic)).toEqual([
      'sensors/pump1/pressure',
      'sensors/pump1/current',
      'sensors/pump2/pressure',
      'sensors/pump2/current',
      'sensors/pump3',
      'sensors/pump4/pressure',
      'sensors/pump4/current',
    ]);
    expect(JSON.parse(messages[0]?.payload ?? '')).toMatchObject({ unit: 'bar', ts: T0 });
    expect(JSON.parse(messages[3]?.payload ?? '')).toBeTypeOf('number');
    expect(Object.keys(JSON.parse(messages[4]?.payload ?? '')).sort()).toEqual(['current', 'pressure', 'ts']);
  });

  it('omits the unit of unknown metrics and keeps them in a generic 0-100 range', () => {
    const messages = run({ metrics: ['widgets'], anomalyRate: 0 }, 500);
    for (const message of messages) {
      const body = JSON.parse(message.payload);
      expect(body).not.toHaveProperty('unit');
      expect(body.value).toBeGreaterThan(-10);
      expect(body.value).toBeLessThan(110);
    }
  });

  it('injects anomalies at roughly the requested rate over 100k samples', () => {
    const scenario = new SensorScenario({ anomalyRate: 0.01, seed: 3 });
    let samples = 0;
    let anomalies = 0;
    for (let i = 0; samples < 100_000; i++) {
      for (const message of scenario.tick(T0 + i * 100)) {
        samples++;
        if (message.anomaly) anomalies++;
      }
    }
    // Binomial sd is about 31 around 1000: ±15 % is more than 4 sd.
    expect(anomalies).toBeGreaterThan(850);
    expect(anomalies).toBeLessThan(1150);
  });

  it('makes anomalies spikes of 8-15 sigma on top of the same clean signal', () => {
    const noise = 0.02;
    const clean = run({ anomalyRate: 0, noise, seed: 9 }, 200);
    const spiky = run({ anomalyRate: 1, noise, seed: 9 }, 200);
    const spans: Record<string, number> = { temperature: 60, pressure: 5, vibration: 10 };
    expect(spiky.every((m) => m.anomaly)).toBe(true);
    expect(clean.some((m) => m.anomaly)).toBe(false);
    spiky.forEach((message, i) => {
      const reference = clean[i];
      if (reference === undefined) throw new Error('length mismatch');
      const sigma = noise * (spans[message.topic.split('/')[2] ?? ''] ?? Number.NaN);
      const jump = Math.abs(sampleValue(message) - sampleValue(reference)) / sigma;
      expect(jump).toBeGreaterThanOrEqual(7.9);
      expect(jump).toBeLessThanOrEqual(15.1);
    });
  });

  it('produces plausible, finite values over a simulated day', () => {
    const messages = run(
      {
        devices: 5,
        anomalyRate: 0,
        metrics: ['temperature', 'pressure', 'vibration', 'humidity', 'current'],
      },
      1440,
      60_000,
    );
    const bounds: Record<string, [number, number]> = {
      temperature: [10, 90],
      pressure: [0.5, 6.5],
      vibration: [0, 10],
      humidity: [0, 100],
      current: [0, 25],
    };
    for (const message of messages) {
      const metric = message.topic.split('/')[2] ?? '';
      const [low, high] = bounds[metric] ?? [Number.NaN, Number.NaN];
      const value = sampleValue(message);
      expect(Number.isFinite(value)).toBe(true);
      expect(value).toBeGreaterThanOrEqual(low);
      expect(value).toBeLessThanOrEqual(high);
    }
    // Per-device offsets: devices do not all share one temperature.
    const firstTemps = new Set(
      messages
        .slice(0, 25)
        .filter((m) => m.topic.endsWith('/temperature'))
        .map(sampleValue),
    );
    expect(firstTemps.size).toBe(5);
  });

  it('never reports a negative vibration, even with spikes and heavy noise', () => {
    const messages = run({ metrics: ['vibration'], anomalyRate: 0.2, noise: 0.2 }, 2000);
    for (const message of messages) expect(sampleValue(message)).toBeGreaterThanOrEqual(0);
  });

  it('rejects invalid options', () => {
    expect(() => new SensorScenario({ devices: 0 })).toThrow(/devices/);
    expect(() => new SensorScenario({ metrics: [] })).toThrow(/metrics/);
    expect(() => new SensorScenario({ metrics: ['a/b'] })).toThrow(/metric/);
    expect(() => new SensorScenario({ metrics: ['x', 'x'] })).toThrow(/unique/);
    expect(() => new SensorScenario({ devicePrefix: 'a+' })).toThrow(/devicePrefix/);
    expect(() => new SensorScenario({ anomalyRate: 2 })).toThrow(/anomalyRate/);
    expect(() => new SensorScenario({ noise: -1 })).toThrow(/noise/);
  });
});
