/**
 * Speech for the audio scenario of `outpost simulate`: phrases spoken by espeak-ng where it is installed,
 * and a synthetic speech-like signal everywhere else, both as mono float samples at the clip's rate.
 *
 * The synthetic voice is a small cascade formant synthesiser (after Klatt, "Software for a cascade/parallel
 * formant synthesizer", JASA 1980): a glottal pulse train at 100-200 Hz, falling over the phrase, through
 * three resonators at the formants of each syllable's vowel, shaped into syllables at about 4 per second with
 * pauses between some words. It is not intelligible; it has the energy, pitch and rhythm a voice detector
 * looks for, and runs anywhere.
 */
import { spawn } from 'node:child_process';
import { gaussian, mulberry32 } from '../common/index.js';
import { decodeWav } from './wav.js';

/** Formants F1-F3 (Hz) of the vowel letters, from Peterson & Barney's averages for adult male voices. */
const VOWEL_FORMANTS: Record<string, readonly [number, number, number]> = {
  a: [730, 1090, 2440],
  e: [530, 1840, 2480],
  i: [390, 1990, 2550],
  o: [570, 840, 2410],
  u: [440, 1020, 2240],
  y: [270, 2290, 3010],
};
const FORMANT_BANDWIDTHS = [90, 110, 170] as const;
/** Resonator coefficients are recomputed every this many samples while formants glide. */
const COEFFICIENT_STEP = 16;
/** Zero crossings of the resampler's windowed sinc on each side. */
const RESAMPLE_ZEROS = 8;

export interface SyntheticSpeechOptions {
  /** Output rate in Hz. */
  sampleRate: number;
  /** The speaker's mean pitch in Hz (100-200 makes a plausible adult voice). */
  f0: number;
  /** Seed of the syllable timing, jitter and aspiration noise. */
  seed: number;
}

/**
 * A speech-like rendering of `text`: one voiced syllable per vowel group of each word, 140-240 ms each
 * with a 30-70 ms dip between syllables, and 50-100 ms between words, a quarter of them 180-300 ms instead.
 * Mono, starting and ending at a syllable's edge, RMS 1.
 */
export function synthesizeSpeech(text: string, options: SyntheticSpeechOptions): Float32Array {
  const { sampleRate: fs, f0 } = options;
  const random = mulberry32(options.seed);
  const between = (low: number, high: number) => low + (high - low) * random();
  const words = text.toLowerCase().match(/[a-z']+/g) ?? ['a'];
  const syllables: { formants: readonly [number, number, number]; start: number; length: number }[] = [];
  let cursor = 0;
  for (const [w, word] of words.entries()) {
    const groups = word.match(/[aeiouy]+/g) ?? ['a'];
    for (const [g, group] of groups.entries()) {
      const length = Math.round(between(0.14, 0.24) * fs);
      syllables.push({
        formants: VOWEL_FORMANTS[group[0] ?? 'a'] ?? VOWEL_FORMANTS.a!,
        start: cursor,
        length,
      });
      cursor += length;
      if (g < groups.length - 1) cursor += Math.round(between(0.03, 0.07) * fs);
      else if (w < words.length - 1) {
        cursor += Math.round((random() < 0.25 ? between(0.18, 0.3) : between(0.05, 0.1)) * fs);
      }
    }
  }

  const out = new Float32Array(cursor);
  const aspiration = gaussian(random);
  const states = FORMANT_BANDWIDTHS.map(() => ({ a: 0, b: 0, c: 0, y1: 0, y2: 0 }));
  let phase = 0;
  let previousFlow = 0;
  let previousOut = 0;
  let previous = syllables[0]!.formants;
  for (const syllable of syllables) {
    for (let n = 0; n < syllable.length; n++) {
      const i = syllable.start + n;
      const u = n / syllable.length;
      if (n % COEFFICIENT_STEP === 0) {
        // Coarticulation: the formants glide from the last vowel over the first third of the syllable.
        const glide = Math.min(1, u * 3);
        for (const [k, state] of states.entries()) {
          const frequency = previous[k]! + (syllable.formants[k]! - previous[k]!) * glide;
          setResonator(state, Math.min(frequency, 0.45 * fs), FORMANT_BANDWIDTHS[k]!, fs);
        }
      }
      // Pitch falls over the phrase and rises a little within each syllable; 1 % jitter per sample.
      const pitch = f0 * (1.15 - 0.3 * (i / out.length)) * (1 + 0.06 * Math.sin(Math.PI * u));
      phase += (pitch * (1 + 0.01 * aspiration())) / fs;
      if (phase >= 1) phase -= 1;
      // Rosenberg glottal flow; its difference is the flow derivative with lip radiation folded in.
      const flow =
        phase < 0.4
          ? 0.5 * (1 - Math.cos((Math.PI * phase) / 0.4))
          : phase < 0.56
            ? Math.cos((Math.PI / 2) * ((phase - 0.4) / 0.16))
            : 0;
      let x = flow - previousFlow + 0.004 * aspiration();
      previousFlow = flow;
      for (const state of states) {
        const y = state.a * x + state.b * state.y1 + state.c * state.y2;
        state.y2 = state.y1;
        state.y1 = y;
        x = y;
      }
      // Pre-emphasis lifts F2 and F3 back up from under the cascade's roll-off, as higher poles would.
      const lifted = x - 0.8 * previousOut;
      previousOut = x;
      // Syllable envelope: a raised cosine, the ~4 Hz amplitude modulation of running speech.
      const envelope = Math.sin(Math.PI * u) ** 2;
      out[i] = lifted * envelope;
    }
    previous = syllable.formants;
  }
  return normalize(out);
}

/** Klatt's digital resonator: unity gain at 0 Hz, a peak at `frequency` with the given bandwidth. */
function setResonator(
  state: { a: number; b: number; c: number },
  frequency: number,
  bandwidth: number,
  fs: number,
): void {
  const r = Math.exp((-Math.PI * bandwidth) / fs);
  state.c = -r * r;
  state.b = 2 * r * Math.cos((2 * Math.PI * frequency) / fs);
  state.a = 1 - state.b - state.c;
}

/**
 * `text` spoken by espeak-ng (`<command> --stdout <text>`; the text is passed as one argument, no shell),
 * trimmed to its voiced part (10 ms margins), resampled to `sampleRate`, mono, RMS 1.
 */
export async function espeakSpeech(
  text: string,
  options: { command: string; sampleRate: number; signal?: AbortSignal },
): Promise<Float32Array> {
  const wav = await runCommand(options.command, ['--stdout', text], options.signal);
  const decoded = decodeWav(wav);
  const voiced = trimSilence(decoded.samples, decoded.sampleRate);
  return normalize(resample(voiced, decoded.sampleRate, options.sampleRate));
}

/** Whether `<command> --version` runs and exits 0. */
export async function commandAvailable(command: string): Promise<boolean> {
  try {
    await runCommand(command, ['--version']);
    return true;
  } catch {
    return false;
  }
}

function runCommand(command: string, args: string[], signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.once('error', reject);
    child.once('close', (code, killedBy) => {
      if (code === 0) resolve(Buffer.concat(stdout));
      else {
        const detail = Buffer.concat(stderr).toString().trim().slice(-300);
        reject(new Error(`${command} exited with ${code ?? killedBy}${detail ? `: ${detail}` : ''}`));
      }
    });
  });
}

/**
 * Band-limited resampling by a Hann-windowed sinc, its cutoff at the lower of the two Nyquist frequencies,
 * so that going down to 8 kHz does not fold a voice's fricatives back into the speech band.
 */
export function resample(input: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return input.slice();
  const step = from / to;
  const cutoff = Math.min(1, to / from);
  const half = Math.ceil(RESAMPLE_ZEROS / cutoff);
  const out = new Float32Array(Math.floor((input.length * to) / from));
  for (let i = 0; i < out.length; i++) {
    const t = i * step;
    const centre = Math.floor(t);
    let sum = 0;
    let weights = 0;
    for (let k = centre - half + 1; k <= centre + half; k++) {
      const x = t - k;
      const window = 0.5 + 0.5 * Math.cos((Math.PI * x) / half);
      const arg = Math.PI * cutoff * x;
      const weight = (arg === 0 ? 1 : Math.sin(arg) / arg) * window;
      weights += weight;
      if (k >= 0 && k < input.length) sum += input[k]! * weight;
    }
    out[i] = sum / weights;
  }
  return out;
}

/** Cuts the leading and trailing stretches quieter than 2 % of the peak, keeping 10 ms either side. */
function trimSilence(samples: Float32Array, sampleRate: number): Float32Array {
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, Math.abs(s));
  const threshold = peak * 0.02;
  const first = samples.findIndex((s) => Math.abs(s) > threshold);
  if (first < 0) return samples;
  let last = samples.length - 1;
  while (last > first && Math.abs(samples[last]!) <= threshold) last--;
  const margin = Math.round(sampleRate / 100);
  return samples.slice(Math.max(0, first - margin), Math.min(samples.length, last + 1 + margin));
}

/** Scales to RMS 1 (silence stays silence). */
function normalize(samples: Float32Array): Float32Array {
  let energy = 0;
  for (const s of samples) energy += s * s;
  const rms = Math.sqrt(energy / Math.max(1, samples.length));
  if (rms > 0) for (let i = 0; i < samples.length; i++) samples[i] = samples[i]! / rms;
  return samples;
}
