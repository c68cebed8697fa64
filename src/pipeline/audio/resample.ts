/**
 * Channel downmix and sample-rate conversion for the audio stage. Pure functions over typed arrays.
 *
 * The resampler is a windowed-sinc (Kaiser) low-pass applied in polyphase form: for a rate pair
 * from -> to with L/M = to/from in lowest terms, output sample k sits at input time k*M/L, and one of L
 * precomputed filter phases is applied there. Every rate the WAV decoder accepts is an integer, so the
 * ratio is always rational; when L is large (e.g. 44101 -> 16000, L = 16000) the table keeps
 * {@link MAX_EXACT_PHASES} phases and blends the two nearest, which costs two dot products per output
 * instead of one.
 *
 * Design (both rates' worst case is the lower rate's Nyquist frequency, `nyq`):
 * - stop band from `nyq` up, attenuated by {@link STOPBAND_DB}, so nothing above the output's Nyquist
 *   folds back into it when decimating, and no image survives when interpolating;
 * - pass band up to {@link PASSBAND_FRACTION} x `nyq` (6.8 kHz for 16 kHz output: speech, Gemma's audio
 *   encoder, and the VAD bands all sit well below it), ripple far under 0.1 dB;
 * - every phase normalised to a DC gain of exactly 1, so a constant stays constant and levels do not
 *   ripple with the phase.
 * Length: 48 kHz -> 16 kHz applies 176 taps per output sample (173, rounded up to a multiple of 4); the
 * cost per input sample is about the same for every decimation ratio. Samples outside the input are
 * taken as zero.
 *
 * Speed: the dot products run in a 300-byte WebAssembly module (resampleKernel.ts) that multiplies four
 * taps per instruction (128-bit SIMD, in every Node 20 on x64 and arm64); on this project's 2-core x64 box
 * it converts a minute of 48 kHz audio in about 30 ms, ten times the plain-JS loop that stays as the
 * fallback. The input passes through the module's memory in blocks, so that memory stays small
 * (about 1 MiB) whatever the clip's length.
 */
import { firJs, loadSimdKernel, type SimdKernel } from './resampleKernel.js';

/** Start of the transition band as a fraction of the lower rate's Nyquist frequency. */
const PASSBAND_FRACTION = 0.85;
/** Stop-band attenuation of the Kaiser design, dB. */
const STOPBAND_DB = 70;
/** Ratios with more phases than this use an interpolated table (see the file comment). */
const MAX_EXACT_PHASES = 1024;
/** Filter tables kept for reuse; a gateway sees few distinct rate pairs. */
const MAX_CACHED_FILTERS = 8;
/** Output samples converted per block. */
const BLOCK = 8192;

/** Options of {@link resample}. */
export interface ResampleOptions {
  /**
   * Run the filter in the WebAssembly SIMD kernel when the runtime has one. Default true; false forces
   * the plain-JS loop (same results to float rounding; for comparison and debugging).
   */
  simd?: boolean;
}

/** Mean of the channels, sample by sample. One channel is returned as is (not copied). */
export function downmix(channels: readonly Float32Array[]): Float32Array {
  const first = channels[0];
  if (first === undefined) return new Float32Array(0);
  if (channels.length === 1) return first;
  let length = first.length;
  for (const channel of channels) length = Math.min(length, channel.length);
  const out = new Float32Array(length);
  if (channels.length === 2) {
    const right = channels[1]!;
    for (let i = 0; i < length; i++) out[i] = (first[i]! + right[i]!) * 0.5;
    return out;
  }
  for (const channel of channels) {
    for (let i = 0; i < length; i++) out[i] = out[i]! + channel[i]!;
  }
  const scale = 1 / channels.length;
  for (let i = 0; i < length; i++) out[i] = out[i]! * scale;
  return out;
}

/** Greatest common divisor of two positive integers. */
function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Zeroth-order modified Bessel function of the first kind, by its power series. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 64; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

/** A polyphase filter table for one rate pair. */
interface PolyphaseFilter {
  /** Interpolation factor L (output rate / gcd). */
  up: number;
  /** Decimation factor M (input rate / gcd). */
  down: number;
  /** Taps per phase. */
  taps: number;
  /** Input samples before the output instant that the first tap reaches (taps/2 - 1). */
  before: number;
  /** Phases in the table: `up` when exact, else MAX_EXACT_PHASES (+1 row for interpolation). */
  phases: number;
  exact: boolean;
  /** phases (+1 when interpolated) rows of `taps` coefficients; row p is for fractional delay p/phases. */
  coefs: Float32Array;
}

const filterCache = new Map<string, PolyphaseFilter>();

function designFilter(fromRate: number, toRate: number): PolyphaseFilter {
  const g = gcd(fromRate, toRate);
  const up = toRate / g;
  const down = fromRate / g;
  const nyquist = Math.min(fromRate, toRate) / 2;
  // Frequencies in cycles per input sample.
  const stopEdge = nyquist / fromRate;
  const passEdge = (PASSBAND_FRACTION * nyquist) / fromRate;
  const cutoff = (passEdge + stopEdge) / 2;
  const transition = stopEdge - passEdge;
  // Kaiser's formulas for the window's beta and length (Oppenheim & Schafer, 7.2).
  const beta = STOPBAND_DB > 50 ? 0.1102 * (STOPBAND_DB - 8.7) : 0.5842 * (STOPBAND_DB - 21) ** 0.4;
  const length = (STOPBAND_DB - 7.95) / (2.285 * 2 * Math.PI * transition);
  const half = Math.max(2, Math.ceil(length / 2));
  // A multiple of 4 for the SIMD kernel; the extra taps fall outside the window and are 0.
  const taps = 4 * Math.ceil(half / 2);
  const before = half - 1;
  const exact = up <= MAX_EXACT_PHASES;
  const phases = exact ? up : MAX_EXACT_PHASES;
  const rows = exact ? phases : phases + 1;
  const coefs = new Float32Array(rows * taps);
  const i0Beta = besselI0(beta);
  for (let p = 0; p < rows; p++) {
    const frac = p / phases;
    let sum = 0;
    const row = p * taps;
    for (let m = 0; m < taps; m++) {
      // Tap m multiplies input sample (i0 - before + m); its distance from the output instant i0 + frac:
      const t = frac + before - m;
      const r = t / half;
      const window = r * r < 1 ? besselI0(beta * Math.sqrt(1 - r * r)) / i0Beta : 0;
      const x = 2 * cutoff * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const h = 2 * cutoff * sinc * window;
      coefs[row + m] = h;
      sum += h;
    }
    for (let m = 0; m < taps; m++) coefs[row + m] = coefs[row + m]! / sum;
  }
  return { up, down, taps, before, phases, exact, coefs };
}

function filterFor(fromRate: number, toRate: number): PolyphaseFilter {
  const key = `${fromRate}>${toRate}`;
  let filter = filterCache.get(key);
  if (filter === undefined) {
    filter = designFilter(fromRate, toRate);
    if (filterCache.size >= MAX_CACHED_FILTERS) {
      const oldest = filterCache.keys().next().value;
      if (oldest !== undefined) filterCache.delete(oldest);
    }
    filterCache.set(key, filter);
  }
  return filter;
}

/** Number of output samples for `inputLength` samples: round(n * to / from). */
export function resampledLength(inputLength: number, fromRate: number, toRate: number): number {
  const g = gcd(fromRate, toRate);
  return Math.round((inputLength * (toRate / g)) / (fromRate / g));
}

function checkRate(name: string, rate: number): void {
  if (!Number.isInteger(rate) || rate <= 0) throw new RangeError(`${name} must be a positive integer, Hz`);
}

/** Applies an exact polyphase filter block by block, through `kernel` or the JS loop. */
function resampleExact(
  input: Float32Array,
  out: Float32Array,
  filter: PolyphaseFilter,
  kernel: SimdKernel | null,
): void {
  const { up, down, taps, before, coefs } = filter;
  const step = Math.floor(down / up);
  const stepPhase = down % up;
  const maxSpan = Math.ceil((BLOCK * down) / up) + taps + 1;
  // Layout (floats): coefficients, then one input block, then one output block.
  let view: Float32Array;
  const inAt = coefs.length;
  const outAt = inAt + maxSpan;
  if (kernel) {
    const bytes = (outAt + BLOCK) * 4;
    const have = kernel.memory.buffer.byteLength;
    if (have < bytes) kernel.memory.grow(Math.ceil((bytes - have) / 65536));
    view = new Float32Array(kernel.memory.buffer);
  } else {
    view = new Float32Array(outAt + BLOCK);
  }
  view.set(coefs, 0);
  for (let k0 = 0; k0 < out.length; k0 += BLOCK) {
    const count = Math.min(BLOCK, out.length - k0);
    // Exact in doubles: k0 * down < 2^53 for any clip the decoder accepts.
    const base0 = Math.floor((k0 * down) / up);
    const phase0 = k0 * down - base0 * up;
    const first = base0 - before;
    const span = Math.floor(((k0 + count - 1) * down) / up) - base0 + taps;
    // Copy input[first, first + span) into the block, zeros where it lies outside the input.
    const from = Math.max(0, first);
    const to = Math.min(input.length, first + span);
    view.fill(0, inAt, inAt + span);
    if (to > from) view.set(input.subarray(from, to), inAt + from - first);
    if (kernel) {
      kernel.fir(inAt * 4, outAt * 4, count, 0, taps, up, step, stepPhase, phase0);
    } else {
      firJs(view.subarray(inAt), view.subarray(outAt), count, coefs, taps, up, step, stepPhase, phase0);
    }
    out.set(view.subarray(outAt, outAt + count), k0);
  }
}

/** The interpolated-table path for ratios with more than MAX_EXACT_PHASES phases (plain JS; rare). */
function resampleInterpolated(input: Float32Array, out: Float32Array, filter: PolyphaseFilter): void {
  const { up, down, taps, before, coefs, phases } = filter;
  // Zero padding on both sides keeps the inner loop free of bounds checks.
  const padded = new Float32Array(input.length + 2 * taps);
  padded.set(input, taps);
  const offset = taps - before;
  for (let k = 0; k < out.length; k++) {
    const position = (k * down) / up;
    const base = Math.floor(position);
    const index = (position - base) * phases;
    const p = Math.min(phases - 1, Math.floor(index));
    const blend = index - p;
    const row0 = p * taps;
    const row1 = row0 + taps;
    const start = base + offset;
    let a0 = 0;
    let a1 = 0;
    for (let m = 0; m < taps; m++) {
      const x = padded[start + m]!;
      a0 += coefs[row0 + m]! * x;
      a1 += coefs[row1 + m]! * x;
    }
    out[k] = a0 + (a1 - a0) * blend;
  }
}

/**
 * Converts `input` sampled at `fromRate` Hz to `toRate` Hz with an anti-aliasing windowed-sinc filter
 * (see the file comment for its design). Returns `input` itself when the rates match. Output length is
 * round(input.length * toRate / fromRate); output sample k is aligned with input time k * from / to
 * (the filter is symmetric: no delay). Throws RangeError for a rate that is not a positive integer (a
 * programming error: the decoder only yields integer rates).
 */
export function resample(
  input: Float32Array,
  fromRate: number,
  toRate: number,
  options: ResampleOptions = {},
): Float32Array {
  checkRate('fromRate', fromRate);
  checkRate('toRate', toRate);
  if (fromRate === toRate) return input;
  const out = new Float32Array(resampledLength(input.length, fromRate, toRate));
  if (out.length === 0 || input.length === 0) return out;
  const filter = filterFor(fromRate, toRate);
  if (!filter.exact) resampleInterpolated(input, out, filter);
  else resampleExact(input, out, filter, options.simd === false ? null : loadSimdKernel());
  return out;
}
