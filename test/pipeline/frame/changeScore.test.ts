import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../src/common/index.js';
import { changeScore, type GrayImage } from '../../../src/pipeline/frame/changeScore.js';

const THRESHOLD = 0.02; // FrameGate's default

/** A textured scene (gradient plus seeded speckle) in the mid-grey range, so shifts do not clip. */
function scene(size = 32, seed = 1): GrayImage {
  const random = mulberry32(seed);
  const data = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) data[y * size + x] = 60 + (x + y) * 2 + Math.floor(random() * 20);
  }
  return { width: size, height: size, data };
}

function map(image: GrayImage, fn: (v: number, i: number) => number): GrayImage {
  const data = new Uint8Array(image.data.length);
  image.data.forEach((v, i) => {
    data[i] = Math.max(0, Math.min(255, Math.round(fn(v, i))));
  });
  return { ...image, data };
}

function withNoise(image: GrayImage, amplitude: number, seed: number): GrayImage {
  const random = mulberry32(seed);
  return map(image, (v) => v + Math.round((random() * 2 - 1) * amplitude));
}

function withBlock(image: GrayImage, x0: number, y0: number, size: number, value: number): GrayImage {
  return map(image, (v, i) => {
    const x = i % image.width;
    const y = Math.floor(i / image.width);
    return x >= x0 && x < x0 + size && y >= y0 && y < y0 + size ? value : v;
  });
}

describe('changeScore', () => {
  const base = scene();

  it('scores identical images 0', () => {
    expect(changeScore(base, base)).toBe(0);
    expect(changeScore(base, { ...base, data: Uint8Array.from(base.data) })).toBe(0);
  });

  it('keeps sensor noise of ±5 grey levels below the default threshold', () => {
    expect(changeScore(base, withNoise(base, 5, 2))).toBeLessThan(THRESHOLD);
    // noise on both sides: differences up to 10 levels
    expect(changeScore(withNoise(base, 5, 3), withNoise(base, 5, 4))).toBeLessThan(THRESHOLD);
  });

  it('ignores a global brightness shift of +30 (and -30), even with noise on top', () => {
    expect(
      changeScore(
        base,
        map(base, (v) => v + 30),
      ),
    ).toBe(0);
    expect(
      changeScore(
        base,
        map(base, (v) => v - 30),
      ),
    ).toBe(0);
    expect(
      changeScore(
        base,
        withNoise(
          map(base, (v) => v + 30),
          5,
          5,
        ),
      ),
    ).toBeLessThan(THRESHOLD);
  });

  it('scores a 6x6 object appearing above the default threshold, as its share of the pixels', () => {
    const score = changeScore(base, withBlock(base, 10, 12, 6, 250));
    expect(score).toBeGreaterThan(THRESHOLD);
    expect(score).toBeCloseTo(36 / 1024, 6);
    // still detected under noise and a brightness shift at the same time
    const busy = withNoise(
      map(withBlock(base, 3, 3, 6, 0), (v) => v + 30),
      5,
      6,
    );
    expect(changeScore(base, busy)).toBeGreaterThan(THRESHOLD);
  });

  it('does not let a large object cancel itself out through the brightness correction', () => {
    // 40% of the frame turns white: a mean-based correction would shift the rest by ~70 levels
    const big = map(base, (v, i) => (i < 0.4 * 1024 ? 250 : v));
    expect(changeScore(base, big)).toBeCloseTo(Math.ceil(0.4 * 1024) / 1024, 6);
  });

  it('is symmetric for an object appearing or leaving, and stays in [0, 1]', () => {
    const other = scene(32, 99);
    const block = withBlock(base, 0, 0, 6, 255);
    expect(changeScore(base, block)).toBe(changeScore(block, base));
    const s = changeScore(base, other);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(s).toBeLessThanOrEqual(1);
  });

  it('respects the noise floor option', () => {
    const shifted = map(base, (v, i) => (i < 100 ? v + 20 : v));
    expect(changeScore(base, shifted)).toBeCloseTo(100 / 1024, 6);
    expect(changeScore(base, shifted, { noiseFloor: 25 })).toBe(0);
  });

  it('works on 64x64 and empty images', () => {
    const big = scene(64);
    expect(changeScore(big, big)).toBe(0);
    expect(changeScore(big, withBlock(big, 0, 0, 16, 255))).toBeCloseTo(256 / 4096, 6);
    const empty = { width: 0, height: 0, data: new Uint8Array(0) };
    expect(changeScore(empty, empty)).toBe(0);
  });

  it('rejects mismatched sizes and malformed images', () => {
    expect(() => changeScore(base, scene(64))).toThrow(RangeError);
    expect(() => changeScore(base, { width: 32, height: 32, data: new Uint8Array(10) })).toThrow(RangeError);
    expect(() => changeScore(base, base, { noiseFloor: -1 })).toThrow(RangeError);
  });
});
