import { describe, expect, it } from 'vitest';
import { WindowAggregator } from '../../../src/pipeline/sensor/window.js';

const MIN = 60_000;

function direct(values: readonly number[]): { mean: number; std: number; min: number; max: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values) };
}

describe('WindowAggregator', () => {
  it('aligns windows to multiples of windowMs since the epoch', () => {
    const agg = new WindowAggregator({ windowMs: MIN });
    agg.add('s', 10 * MIN + 25_000, 1);
    const [w] = agg.closeAll();
    expect(w).toMatchObject({ series: 's', start: 10 * MIN, end: 11 * MIN, count: 1 });
  });

  it('reports count, min, max, mean and population std of the samples in a window', () => {
    const values = [21.5, 22.25, 19, 30.125, 21.5, 18.75, 25];
    const agg = new WindowAggregator({ windowMs: MIN });
    values.forEach((v, i) => {
      expect(agg.add('t', 5 * MIN + i * 1000, v)).toEqual({ closed: [], late: false });
    });
    const { closed, late } = agg.add('t', 6 * MIN, 0);
    expect(late).toBe(false);
    expect(closed).toHaveLength(1);
    const w = closed[0]!;
    const want = direct(values);
    expect(w).toMatchObject({ series: 't', start: 5 * MIN, end: 6 * MIN, count: values.length });
    expect(w.min).toBe(want.min);
    expect(w.max).toBe(want.max);
    expect(w.mean).toBeCloseTo(want.mean, 12);
    expect(w.std).toBeCloseTo(want.std, 12);
  });

  it('stays accurate for large values with small variation', () => {
    // Sum-of-squares variance loses every significant digit here; Welford keeps them.
    const values = Array.from({ length: 1000 }, (_, i) => 1e9 + ((i * 7919) % 13) * 0.001);
    const agg = new WindowAggregator({ windowMs: MIN });
    for (const v of values) agg.add('big', 0, v);
    const [w] = agg.closeAll();
    const want = direct(values);
    expect(w!.std).toBeGreaterThan(0);
    expect(Math.abs(w!.std - want.std) / want.std).toBeLessThan(1e-6);
  });

  it('keeps series apart', () => {
    const agg = new WindowAggregator({ windowMs: MIN });
    agg.add('a', 0, 1);
    agg.add('b', 0, 100);
    expect(agg.openCount).toBe(2);
    const { closed } = agg.add('a', MIN, 2);
    expect(closed.map((w) => [w.series, w.mean])).toEqual([['a', 1]]);
    expect(agg.openCount).toBe(2);
  });

  it('skips empty windows: a sample several windows later closes only the open one', () => {
    const agg = new WindowAggregator({ windowMs: MIN });
    agg.add('s', 0, 1);
    const { closed } = agg.add('s', 10 * MIN, 2);
    expect(closed.map((w) => w.start)).toEqual([0]);
    expect(agg.closeAll().map((w) => w.start)).toEqual([10 * MIN]);
  });

  it('flags samples older than the open window as late and does not count them', () => {
    const agg = new WindowAggregator({ windowMs: MIN });
    agg.add('s', 2 * MIN + 5, 10);
    expect(agg.add('s', 2 * MIN - 1, 999)).toEqual({ closed: [], late: true });
    // Out of order within the open window is fine.
    expect(agg.add('s', 2 * MIN + 1, 20).late).toBe(false);
    const [w] = agg.closeAll();
    expect(w).toMatchObject({ count: 2, min: 10, max: 20, mean: 15 });
  });

  it('closeDue waits for the grace period before closing a quiet series', () => {
    const agg = new WindowAggregator({ windowMs: MIN, graceMs: 10_000 });
    agg.add('quiet', 0, 1);
    agg.add('busy', MIN + 1, 1);
    expect(agg.closeDue(MIN + 9_999)).toEqual([]);
    // A late sample inside the grace period still counts.
    expect(agg.add('quiet', MIN - 1, 3).late).toBe(false);
    const due = agg.closeDue(MIN + 10_000);
    expect(due).toHaveLength(1);
    expect(due[0]).toMatchObject({ series: 'quiet', start: 0, end: MIN, count: 2, mean: 2 });
    expect(agg.openCount).toBe(1);
  });

  it('does not reopen a window that closeDue already reported', () => {
    const agg = new WindowAggregator({ windowMs: MIN });
    agg.add('s', 0, 1);
    expect(agg.closeDue(MIN)).toHaveLength(1);
    expect(agg.add('s', MIN - 1, 5)).toEqual({ closed: [], late: true });
    expect(agg.openCount).toBe(0);
    // A newer sample opens a fresh window.
    expect(agg.add('s', MIN, 5).late).toBe(false);
    expect(agg.openCount).toBe(1);
  });

  it('closeAll returns every open window once', () => {
    const agg = new WindowAggregator({ windowMs: MIN, graceMs: MIN });
    agg.add('a', 0, 1);
    agg.add('b', 3 * MIN, 2);
    agg.add('c', 7 * MIN, 3);
    const all = agg.closeAll();
    expect(all.map((w) => [w.series, w.start, w.end])).toEqual([
      ['a', 0, MIN],
      ['b', 3 * MIN, 4 * MIN],
      ['c', 7 * MIN, 8 * MIN],
    ]);
    expect(agg.openCount).toBe(0);
    expect(agg.closeAll()).toEqual([]);
    expect(agg.closeDue(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  it('rejects invalid options and non-finite samples', () => {
    expect(() => new WindowAggregator({ windowMs: 0 })).toThrow(RangeError);
    expect(() => new WindowAggregator({ windowMs: MIN, graceMs: -1 })).toThrow(RangeError);
    const agg = new WindowAggregator({ windowMs: MIN });
    expect(() => agg.add('s', 0, Number.NaN)).toThrow(RangeError);
  });
});
