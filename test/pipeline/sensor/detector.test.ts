import { describe, expect, it } from 'vitest';
import { mulberry32, gaussian as normalSource } from '../../../src/common/index.js';
import { type AnomalyVerdict, RobustDetector } from '../../../src/pipeline/sensor/detector.js';

/** `count` seeded Normal(mean, sigma) values, so every run sees the same noise. */
function gaussian(seed: number, count: number, mean = 0, sigma = 1): number[] {
  const normal = normalSource(mulberry32(seed));
  return Array.from({ length: count }, () => mean + sigma * normal());
}

const SECOND = 1000;

/** Feeds values one second apart; returns the indexes that raised and every verdict. */
function run(
  detector: RobustDetector,
  values: readonly number[],
  t0 = 0,
): { raises: number[]; verdicts: (AnomalyVerdict | null)[] } {
  const verdicts = values.map((v, i) => detector.observe(t0 + i * SECOND, v));
  const raises = verdicts.flatMap((v, i) => (v?.raise ? [i] : []));
  return { raises, verdicts };
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

describe('RobustDetector', () => {
  it('raises exactly once, at a +10 sigma spike in Gaussian noise', () => {
    for (const seed of [1, 2, 3, 42]) {
      const noise = gaussian(seed, 300, 50, 2);
      const clean = run(new RobustDetector(), noise);
      expect(clean.raises).toEqual([]);

      const spiked = [...noise];
      spiked[150] = 50 + 10 * 2;
      const result = run(new RobustDetector(), spiked);
      expect(result.raises).toEqual([150]);
      expect(result.verdicts[150]).toMatchObject({ anomalous: true, raise: true, seen: 151 });
      expect(result.verdicts[150]!.score).toBeGreaterThan(6);
    }
  });

  it('reports the median and MAD-based scale of the preceding window', () => {
    const values = gaussian(7, 200, 10, 3);
    const detector = new RobustDetector({ window: 25, warmup: 25 });
    values.forEach((v, i) => {
      const verdict = detector.observe(i * SECOND, v);
      if (i < 25) {
        expect(verdict).toBeNull();
        return;
      }
      const base = values.slice(i - 25, i);
      const med = median(base);
      const mad = median(base.map((x) => Math.abs(x - med)));
      expect(verdict!.median).toBeCloseTo(med, 12);
      expect(verdict!.scale).toBeCloseTo(1.4826 * mad, 12);
      expect(verdict!.score).toBeCloseTo(Math.abs(v - med) / (1.4826 * mad), 9);
    });
  });

  it('raises once for a level shift, then adopts the new level', () => {
    const values = [...gaussian(11, 100, 20, 0.5), ...gaussian(12, 200, 35, 0.5)];
    const { raises, verdicts } = run(new RobustDetector(), values);
    expect(raises).toEqual([100]);
    expect(verdicts[299]!.anomalous).toBe(false);
    expect(verdicts[299]!.median).toBeCloseTo(35, 0);
  });

  it('flags any change to a constant series', () => {
    const detector = new RobustDetector();
    const { verdicts } = run(detector, new Array<number>(30).fill(4.2));
    expect(verdicts[29]).toMatchObject({ score: 0, anomalous: false, median: 4.2 });
    const changed = detector.observe(30 * SECOND, 4.25);
    expect(changed).toMatchObject({ anomalous: true, raise: true });
    expect(changed!.scale).toBeLessThan(1e-6);
  });

  it('falls back to the mean absolute deviation when most samples are equal', () => {
    // A quantised sensor: 0 most of the time, so the MAD is 0 but the series is not constant.
    const values = Array.from({ length: 60 }, (_, i) => (i % 6 === 0 ? 1 : 0));
    const detector = new RobustDetector();
    run(detector, values);
    const usual = detector.observe(60 * SECOND, 1);
    expect(usual).toMatchObject({ anomalous: false, median: 0 });
    expect(usual!.scale).toBeCloseTo(1.2533 * (10 / 60), 12);
    expect(detector.observe(61 * SECOND, 5)).toMatchObject({ anomalous: true, raise: true });
  });

  it('returns null during warm-up, then verdicts', () => {
    const detector = new RobustDetector({ warmup: 20 });
    const { verdicts } = run(detector, gaussian(5, 21));
    expect(verdicts.slice(0, 20)).toEqual(new Array(20).fill(null));
    expect(verdicts[20]).toMatchObject({ seen: 21 });
    // Even a huge value during warm-up raises nothing.
    const early = new RobustDetector({ warmup: 5 });
    expect(run(early, [1, 1, 1, 1e6, 1]).verdicts).toEqual([null, null, null, null, null]);
  });

  it('raises once per episode and again after the cooldown', () => {
    const detector = new RobustDetector({ cooldownMs: 60 * SECOND });
    const values = gaussian(9, 300);
    for (const i of [100, 101, 102, 103, 104]) values[i] = 15;
    values[130] = 15; // back to normal in between, but still inside the cooldown
    values[170] = 15; // 70 s after the first raise
    values[171] = 15;
    const { raises, verdicts } = run(detector, values);
    expect(verdicts.slice(100, 105).map((v) => v!.anomalous)).toEqual([true, true, true, true, true]);
    expect(verdicts[130]!.anomalous).toBe(true);
    expect(raises).toEqual([100, 170]);
  });

  it('raises once for a sustained anomaly that outlasts the cooldown', () => {
    const detector = new RobustDetector({ window: 200, cooldownMs: 10 * SECOND });
    const values = [...gaussian(13, 100), ...new Array<number>(60).fill(50)];
    const { raises, verdicts } = run(detector, values);
    expect(verdicts[159]!.anomalous).toBe(true);
    expect(raises).toEqual([100]);
  });

  it('seed() preloads the baseline so an immediate spike raises', () => {
    const detector = new RobustDetector();
    detector.seed(gaussian(21, 60, 100, 1));
    const verdict = detector.observe(0, 120);
    expect(verdict).toMatchObject({ anomalous: true, raise: true, seen: 61 });
    expect(verdict!.median).toBeCloseTo(100, 0);
    expect(detector.observe(SECOND, 100.5)).toMatchObject({ anomalous: false, raise: false });
  });

  it('seed() with less history than the warm-up still waits for the rest', () => {
    const detector = new RobustDetector({ warmup: 20 });
    detector.seed(gaussian(22, 15));
    const { verdicts } = run(detector, gaussian(23, 6));
    expect(verdicts.slice(0, 5)).toEqual([null, null, null, null, null]);
    expect(verdicts[5]).toMatchObject({ seen: 21 });
  });

  it('rejects invalid options and non-finite values', () => {
    expect(() => new RobustDetector({ window: 0 })).toThrow(RangeError);
    expect(() => new RobustDetector({ threshold: 0 })).toThrow(RangeError);
    expect(() => new RobustDetector({ warmup: 1.5 })).toThrow(RangeError);
    expect(() => new RobustDetector({ cooldownMs: -1 })).toThrow(RangeError);
    expect(() => new RobustDetector().observe(0, Number.NaN)).toThrow(RangeError);
    expect(() => new RobustDetector().seed([1, Number.POSITIVE_INFINITY])).toThrow(RangeError);
  });
});
