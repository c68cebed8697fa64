import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../src/common/index.js';
import { downmix, resample, resampledLength } from '../../../src/pipeline/audio/resample.js';
import { resampleKernel } from '../../../src/pipeline/audio/resampleKernel.js';

function tone(hz: number, rate: number, seconds: number, amplitude = 0.5): Float32Array {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin((2 * Math.PI * hz * i) / rate);
  return out;
}

/** The middle of a signal, away from the zero-padded ends where the filter ramps in and out. */
function middle(x: Float32Array, rate: number): Float32Array {
  const skip = Math.round(rate * 0.05);
  return x.subarray(skip, x.length - skip);
}

function rms(x: Float32Array): number {
  let sum = 0;
  for (const v of x) sum += v * v;
  return Math.sqrt(sum / x.length);
}

/** Power of `x` at `hz` by the Goertzel algorithm. */
function goertzel(x: Float32Array, hz: number, rate: number): number {
  const coeff = 2 * Math.cos((2 * Math.PI * hz) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const v of x) {
    const s = v + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

/** Frequency from the upward zero crossings (interpolated), Hz. */
function zeroCrossingHz(x: Float32Array, rate: number): number {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = 1; i < x.length; i++) {
    if (x[i - 1]! < 0 && x[i]! >= 0) {
      const at = i - 1 + x[i - 1]! / (x[i - 1]! - x[i]!);
      if (first < 0) first = at;
      last = at;
      count++;
    }
  }
  return ((count - 1) * rate) / (last - first);
}

const db = (ratio: number) => 20 * Math.log10(ratio);

describe('resample', () => {
  it.each([8000, 22050, 44100, 48000])(
    'a 1 kHz tone at %i Hz comes out at 1 kHz, level within 1 dB',
    (rate) => {
      const out = middle(resample(tone(1000, rate, 1), rate, 16000), 16000);
      expect(zeroCrossingHz(out, 16000)).toBeCloseTo(1000, 0);
      const at = goertzel(out, 1000, 16000);
      expect(at).toBeGreaterThan(1000 * goertzel(out, 900, 16000));
      expect(at).toBeGreaterThan(1000 * goertzel(out, 1100, 16000));
      expect(Math.abs(db(rms(out) / (0.5 / Math.SQRT2)))).toBeLessThan(1);
    },
  );

  it.each([44100, 48000])('a 10 kHz tone at %i Hz is attenuated by at least 40 dB at 16 kHz', (rate) => {
    const out = middle(resample(tone(10_000, rate, 1), rate, 16000), 16000);
    const attenuation = -db(rms(out) / (0.5 / Math.SQRT2));
    expect(attenuation).toBeGreaterThan(40);
  });

  it.each([
    [48000, 7900],
    [44100, 8200],
    [22050, 9000],
  ])('from %i Hz, %i Hz (aliasing to near 8 kHz) is stopped too', (rate, hz) => {
    const out = middle(resample(tone(hz, rate, 1), rate, 16000), 16000);
    expect(-db(rms(out) / (0.5 / Math.SQRT2))).toBeGreaterThan(40);
  });

  it('the pass band is flat to 6 kHz within 0.5 dB', () => {
    for (const hz of [100, 2000, 4000, 6000]) {
      const out = middle(resample(tone(hz, 48000, 1), 48000, 16000), 16000);
      expect(Math.abs(db(rms(out) / (0.5 / Math.SQRT2))), `${hz} Hz`).toBeLessThan(0.5);
    }
  });

  it('upsampling 8 kHz leaves no image above 4 kHz', () => {
    const out = middle(resample(tone(3000, 8000, 1), 8000, 16000), 16000);
    // The image of 3 kHz would be at 5 kHz.
    expect(goertzel(out, 5000, 16000)).toBeLessThan(1e-4 * goertzel(out, 3000, 16000));
  });

  it('output length is round(n * to / from), for odd lengths and tiny inputs too', () => {
    for (const [from, to] of [
      [48000, 16000],
      [44100, 16000],
      [22050, 16000],
      [8000, 16000],
      [11025, 16000],
      [44101, 16000],
    ]) {
      for (const n of [0, 1, 2, 3, 7, 441, 1000, 48_001]) {
        const out = resample(new Float32Array(n).fill(0.1), from!, to!);
        expect(
          Math.abs(out.length - Math.round((n * to!) / from!)),
          `${from}->${to} n=${n}`,
        ).toBeLessThanOrEqual(1);
        expect(out.length).toBe(resampledLength(n, from!, to!));
      }
    }
  });

  it('keeps a constant constant and a step where it was (no delay)', () => {
    for (const rate of [48000, 44100, 8000, 44101]) {
      const step = new Float32Array(rate);
      step.fill(0.5, rate / 2);
      const out = resample(step, rate, 16000);
      expect(out[12000]).toBeCloseTo(0.5, 3);
      expect(out[4000]).toBeCloseTo(0, 3);
      // The step is at 0.5 s: sample 8000 at 16 kHz, where a symmetric filter crosses half height.
      let cross = 0;
      while (out[cross]! < 0.25) cross++;
      expect(Math.abs(cross - 8000), `${rate} Hz`).toBeLessThanOrEqual(1);
    }
  });

  it('returns the input itself when the rates match; refuses non-integer rates', () => {
    const x = tone(440, 16000, 0.1);
    expect(resample(x, 16000, 16000)).toBe(x);
    expect(() => resample(x, 44100.5, 16000)).toThrow(RangeError);
    expect(() => resample(x, 0, 16000)).toThrow(RangeError);
  });
});

describe('downmix', () => {
  it('averages the channels; one channel passes through; none gives nothing', () => {
    const left = new Float32Array([1, 0.5, -1]);
    const right = new Float32Array([0, 0.5, 1]);
    const third = new Float32Array([0.5, 0.5, 0.5]);
    expect(Array.from(downmix([left, right]))).toEqual([0.5, 0.5, 0]);
    expect(Array.from(downmix([left, right, third]))).toEqual([0.5, 0.5, 0.5 / 3].map((v) => Math.fround(v)));
    expect(downmix([left])).toBe(left);
    expect(downmix([])).toHaveLength(0);
  });
});

describe('resample: the WebAssembly SIMD kernel and the JS loop', () => {
  it('agree to float rounding across ratios and block boundaries', () => {
    const random = mulberry32(7);
    for (const [from, to] of [
      [48000, 16000],
      [44100, 16000],
      [22050, 16000],
      [8000, 16000],
      [96000, 16000],
      [16000, 48000],
    ]) {
      const input = new Float32Array(from! * 2 + 123).map(() => random() * 2 - 1);
      const simd = resample(input, from!, to!);
      const js = resample(input, from!, to!, { simd: false });
      expect(simd.length).toBe(js.length);
      let worst = 0;
      for (let i = 0; i < js.length; i++) worst = Math.max(worst, Math.abs(simd[i]! - js[i]!));
      expect(worst, `${from}->${to}`).toBeLessThan(1e-5);
    }
  });

  it('Node 20 on this box runs the SIMD kernel', () => {
    expect(resampleKernel()).toBe('simd');
  });
});
