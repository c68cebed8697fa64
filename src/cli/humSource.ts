/**
 * The machine in the audio scenario of `outpost simulate`: mains hum with harmonics over a little broadband
 * noise, and the cheap noise source the clips' noise floors use too.
 */
import type { HumSpan } from './audioScenario.js';

/** Relative amplitudes of the hum's fundamental and harmonics 2-4; most energy is at the mains frequency. */
export const HUM_HARMONICS = [1, 0.45, 0.3, 0.15] as const;
/** Broadband machine noise under the hum, relative to the hum's RMS. */
const HUM_NOISE = 0.2;
const HUM_FADE_SECONDS = 0.2;

/**
 * Mains hum over the span: the fundamental and three harmonics, plus broadband noise low-passed at about
 * 500 Hz (bearings, airflow), faded in and out as the machine starts and stops. The returned function adds
 * samples `[start, end)` of the clip to `out[0, end - start)`; it is called for consecutive ranges.
 */
export function humSource(
  span: HumSpan,
  phases: readonly number[],
  fs: number,
  noise: () => number,
): (out: Float32Array, start: number, end: number) => void {
  const harmonicPower = HUM_HARMONICS.reduce((sum, a) => sum + (a * a) / 2, 0);
  const rms = 10 ** (span.level / 20);
  const scale = rms / Math.sqrt(harmonicPower * (1 + HUM_NOISE * HUM_NOISE));
  // One-pole low-pass; its output of unit white noise has RMS sqrt((1 - p) / (1 + p)).
  const pole = Math.exp((-2 * Math.PI * 500) / fs);
  const noiseGain = (HUM_NOISE * Math.sqrt(harmonicPower)) / Math.sqrt((1 - pole) / (1 + pole));
  const from = Math.round(span.start * fs);
  const to = Math.round(span.end * fs);
  const fade = HUM_FADE_SECONDS * fs;
  // Each harmonic is a phasor turned by a fixed step per sample (no sine per sample), re-anchored every
  // second so rounding cannot drift its amplitude.
  const phasors = HUM_HARMONICS.map((amplitude, k) => {
    const step = (2 * Math.PI * (k + 1) * span.frequency) / fs;
    return { amplitude, step, phase: phases[k]!, cos: Math.cos(step), sin: Math.sin(step), re: 0, im: 0 };
  });
  let rumble = 0;
  return (out, start, end) => {
    for (let n = Math.max(start, from); n < Math.min(end, to); n++) {
      if ((n - from) % fs === 0) {
        for (const p of phasors) {
          p.re = Math.cos(p.phase + p.step * n);
          p.im = Math.sin(p.phase + p.step * n);
        }
      }
      let value = 0;
      for (const p of phasors) {
        value += p.amplitude * p.im;
        const re = p.re * p.cos - p.im * p.sin;
        p.im = p.im * p.cos + p.re * p.sin;
        p.re = re;
      }
      rumble = pole * rumble + (1 - pole) * noise();
      const envelope = Math.min(1, (n - from) / fade, (to - n) / fade);
      out[n - start]! += (value + rumble * noiseGain) * scale * envelope;
    }
  };
}

/**
 * Approximately standard normal noise, cheap enough for every sample of a clip: the sum of four xorshift32
 * uniforms (Irwin-Hall), centred and scaled to unit variance.
 */
export function noiseSource(seed: number): () => number {
  let state = seed >>> 0 || 1;
  const scale = Math.sqrt(3) / 2 ** 32;
  return () => {
    let sum = 0;
    for (let i = 0; i < 4; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      sum += state >>> 0;
    }
    return (sum - 2 * 2 ** 32) * scale;
  };
}
