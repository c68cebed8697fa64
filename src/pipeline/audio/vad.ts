import { resample } from './resample.js';

/**
 * Voice activity detection for the audio stage (cutting a clip into segments around the spans found here
 * is segment.ts). Pure functions over 16 kHz mono samples (other rates work through `sampleRate`; the
 * defaults are tuned for speech at 16 kHz).
 *
 * How {@link detectVoice} decides, frame by frame (25 ms Hann frames every 10 ms):
 * 1. Band levels: the input is brought to 8 kHz (the speech band ends below 4 kHz, and the FFT then
 *    costs half), each frame's power spectrum (256-point FFT, 31 Hz bins) is summed into five log-spaced
 *    bands over the speech band (300-3400 Hz), smoothed over three frames, in dB; never below
 *    `minLevelDb`, so digital silence and dither are not "quiet speech".
 * 2. Adaptive noise floor, per band: the lowest level within `noiseWindowMs` before the frame, and the
 *    lowest within `noiseWindowMs` after it; the floor is the larger of the two. Speech always has dips
 *    (pauses, stops, other phonemes) within a few seconds on both sides, so the floor finds the noise under
 *    it; steady noise (mains hum and its harmonics, fans, pumps) is its own floor, and taking the larger
 *    side means a noise that starts or stops is at once judged against itself, not against the quiet
 *    before or after it. Near the clip's ends, where one side is cut short, only the full side counts.
 * 3. Score: the mean over the bands of the level above the floor, each clipped to 0..30 dB.
 * 4. Modulation: speech rises and falls with its syllables; a noise that swells and fades over seconds
 *    (a machine cycling, traffic passing) can beat its floor by 10 dB but barely moves from one 40 ms
 *    to the next. Speech may start only where the levels move by `minModulationDb` on average.
 * 5. Hysteresis: speech starts when the score reaches `onsetDb` (reaching back over the frames just
 *    before it that were above `offsetDb`), continues while it stays above `offsetDb`, and ends
 *    `hangoverMs` after the last such frame. Bursts with less than `minSpeechMs` above `offsetDb` (clicks,
 *    knocks) are dropped.
 * Hum below 300 Hz never enters the score; hum harmonics inside the band are steady, so they are floor.
 * Cost: about 35 ms per minute of 16 kHz audio on this project's 2-core x64 box.
 */

/** A stretch of speech: sample offsets into the analysed samples, `end` exclusive. */
export interface VoiceSpan {
  start: number;
  end: number;
}

/** Options of {@link detectVoice}. */
export interface VoiceDetectorOptions {
  /** Sample rate of the input, Hz. Default 16000. */
  sampleRate?: number;
  /** Analysis frame length, ms. Default 25. */
  frameMs?: number;
  /** Hop between frames, ms; the time resolution of the spans. Default 10. */
  hopMs?: number;
  /** Lowest frequency of the speech band, Hz. Default 300. */
  lowHz?: number;
  /** Highest frequency of the speech band, Hz. Default 3400. */
  highHz?: number;
  /** Mean band level above the noise floor that starts speech, dB. Default 7. */
  onsetDb?: number;
  /** Mean band level above the noise floor below which speech may end, dB. Default 5. */
  offsetDb?: number;
  /** Speech is held this long after the score last stayed above `offsetDb`, ms. Default 200. */
  hangoverMs?: number;
  /** Bursts with less time above `offsetDb` than this are dropped, ms. Default 100. */
  minSpeechMs?: number;
  /** Length of the look-back and the look-ahead windows of the noise floor, ms. Default 3000. */
  noiseWindowMs?: number;
  /** Band level (mean power per FFT bin, dB re full scale) below which nothing counts. Default -70. */
  minLevelDb?: number;
  /** Mean change of the band levels over 40 ms that speech needs to start, dB (file comment, 4). Default 2. */
  minModulationDb?: number;
}

const DEFAULTS = {
  sampleRate: 16000,
  frameMs: 25,
  hopMs: 10,
  lowHz: 300,
  highHz: 3400,
  onsetDb: 7,
  offsetDb: 5,
  hangoverMs: 200,
  minSpeechMs: 100,
  noiseWindowMs: 3000,
  minLevelDb: -70,
  minModulationDb: 2,
} satisfies Required<VoiceDetectorOptions>;

/** Rate the speech band is analysed at when the input's rate is a multiple of it, Hz. */
const ANALYSIS_RATE = 8000;
/** Highest `highHz` the 8 kHz analysis serves: the resampler's pass band ends at 0.85 x 4 kHz. */
const ANALYSIS_MAX_HZ = 3400;
/** Lag of the level difference in the modulation measure, ms. */
const MODULATION_LAG_MS = 40;
/** Half-width of the window the modulation measure is averaged over, ms. */
const MODULATION_SPAN_MS = 150;
/** Bands the speech band is split into (log-spaced). */
const BANDS = 5;
/** Per-band excess over the floor counts up to this much, dB; one loud band cannot carry the score alone. */
const MAX_BAND_SNR_DB = 30;

/** An in-place radix-2 complex FFT of one size, with its tables. */
class Fft {
  readonly size: number;
  private readonly reversed: Uint32Array;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;

  constructor(size: number) {
    this.size = size;
    const bits = Math.log2(size);
    this.reversed = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.reversed[i] = r;
    }
    this.cos = new Float64Array(size / 2);
    this.sin = new Float64Array(size / 2);
    for (let i = 0; i < size / 2; i++) {
      this.cos[i] = Math.cos((2 * Math.PI * i) / size);
      this.sin[i] = -Math.sin((2 * Math.PI * i) / size);
    }
  }

  transform(re: Float64Array, im: Float64Array): void {
    const { size, reversed, cos, sin } = this;
    for (let i = 0; i < size; i++) {
      const j = reversed[i]!;
      if (j > i) {
        const tr = re[i]!;
        re[i] = re[j]!;
        re[j] = tr;
        const ti = im[i]!;
        im[i] = im[j]!;
        im[j] = ti;
      }
    }
    // Twiddle outermost: each is loaded once per stage.
    for (let half = 1, stride = size / 2; half < size; half *= 2, stride /= 2) {
      for (let k = 0, t = 0; k < half; k++, t += stride) {
        const wr = cos[t]!;
        const wi = sin[t]!;
        for (let a = k; a < size; a += 2 * half) {
          const b = a + half;
          const br = re[b]!;
          const bi = im[b]!;
          const xr = br * wr - bi * wi;
          const xi = br * wi + bi * wr;
          const ar = re[a]!;
          const ai = im[a]!;
          re[b] = ar - xr;
          im[b] = ai - xi;
          re[a] = ar + xr;
          im[a] = ai + xi;
        }
      }
    }
  }
}

const fftCache = new Map<number, Fft>();

function fftOf(size: number): Fft {
  let fft = fftCache.get(size);
  if (fft === undefined) {
    fft = new Fft(size);
    fftCache.set(size, fft);
  }
  return fft;
}

/**
 * Band levels of every frame, dB, smoothed over three frames: `levels[b * frames + i]`.
 * Two real frames share one complex FFT (one in the real part, one in the imaginary part).
 */
function bandLevels(
  samples: Float32Array,
  frames: number,
  frameLength: number,
  hop: number,
  edges: Int32Array,
  minLevelDb: number,
): Float32Array {
  let size = 1;
  while (size < frameLength) size *= 2;
  const fft = fftOf(size);
  const window = new Float64Array(frameLength);
  let windowPower = 0;
  for (let i = 0; i < frameLength; i++) {
    window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * (i + 0.5)) / frameLength);
    windowPower += window[i]! * window[i]!;
  }
  const bandCount = edges.length - 1;
  const power = new Float32Array(bandCount * frames);
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  const n = samples.length;
  for (let i = 0; i < frames; i += 2) {
    re.fill(0);
    im.fill(0);
    const a = i * hop;
    const b = a + hop;
    const second = i + 1 < frames;
    for (let j = 0; j < frameLength; j++) {
      const w = window[j]!;
      if (a + j < n) re[j] = samples[a + j]! * w;
      if (second && b + j < n) im[j] = samples[b + j]! * w;
    }
    fft.transform(re, im);
    for (let band = 0; band < bandCount; band++) {
      let sumA = 0;
      let sumB = 0;
      for (let k = edges[band]!; k < edges[band + 1]!; k++) {
        // Z[k] = A[k] + iB[k] with A, B the spectra of the two real frames; Z[N-k]* separates them.
        const zr = re[k]!;
        const zi = im[k]!;
        const cr = re[size - k]!;
        const ci = -im[size - k]!;
        const ar = (zr + cr) / 2;
        const ai = (zi + ci) / 2;
        const br = (zi - ci) / 2;
        const bi = (cr - zr) / 2;
        sumA += ar * ar + ai * ai;
        sumB += br * br + bi * bi;
      }
      const norm = windowPower * (edges[band + 1]! - edges[band]!);
      power[band * frames + i] = sumA / norm;
      if (second) power[band * frames + i + 1] = sumB / norm;
    }
  }
  const levels = new Float32Array(bandCount * frames);
  const floorPower = 10 ** (minLevelDb / 10);
  for (let band = 0; band < bandCount; band++) {
    const row = band * frames;
    for (let i = 0; i < frames; i++) {
      const lo = Math.max(0, i - 1);
      const hi = Math.min(frames - 1, i + 1);
      let sum = 0;
      for (let j = lo; j <= hi; j++) sum += power[row + j]!;
      levels[row + i] = 10 * Math.log10(Math.max(floorPower, sum / (hi - lo + 1)));
    }
  }
  return levels;
}

/**
 * Per-band noise floor (see the file comment): max of the minimum over the previous and the next
 * `window` frames, by van Herk / Gil-Werman running minima (O(1) per frame).
 */
function noiseFloor(levels: Float32Array, offset: number, frames: number, window: number, out: Float32Array) {
  const prefix = new Float32Array(frames); // min from the start of the block of `window` frames
  const suffix = new Float32Array(frames); // min to the end of the block
  for (let i = 0; i < frames; i++) {
    const x = levels[offset + i]!;
    prefix[i] = i % window === 0 ? x : Math.min(prefix[i - 1]!, x);
  }
  for (let i = frames - 1; i >= 0; i--) {
    const x = levels[offset + i]!;
    suffix[i] = i === frames - 1 || (i + 1) % window === 0 ? x : Math.min(suffix[i + 1]!, x);
  }
  // Min over [a, b], b - a < window: across two blocks, the tail of one and the head of the next; inside
  // one block, the windows below either start at the clip's start or end at the clip's end.
  const rangeMin = (a: number, b: number): number => {
    if (Math.floor(a / window) !== Math.floor(b / window)) return Math.min(suffix[a]!, prefix[b]!);
    return a % window === 0 ? prefix[b]! : suffix[a]!;
  };
  const span = window - 1;
  for (let i = 0; i < frames; i++) {
    const pastFull = i - span >= 0;
    const futureFull = i + span <= frames - 1;
    const past = rangeMin(Math.max(0, i - span), i);
    const future = rangeMin(i, Math.min(frames - 1, i + span));
    if (pastFull && futureFull) out[i] = Math.max(past, future);
    else if (pastFull) out[i] = past;
    else if (futureFull) out[i] = future;
    else out[i] = Math.min(past, future);
  }
}

/** Log-spaced FFT bin edges of `bands` bands between lowHz and highHz. */
function bandEdges(lowHz: number, highHz: number, fftSize: number, sampleRate: number): Int32Array {
  const edges = new Int32Array(BANDS + 1);
  const binHz = sampleRate / fftSize;
  const top = Math.min(highHz, sampleRate / 2 - binHz);
  for (let b = 0; b <= BANDS; b++) {
    const hz = lowHz * (top / lowHz) ** (b / BANDS);
    edges[b] = Math.max(1, Math.round(hz / binHz));
  }
  for (let b = 1; b <= BANDS; b++) edges[b] = Math.max(edges[b]!, edges[b - 1]! + 1);
  return edges;
}

/** Frame-level evidence of speech. */
interface VoiceAnalysis {
  /** Mean band level above the noise floor per frame, dB (0..MAX_BAND_SNR_DB). */
  scores: Float32Array;
  /** Syllabic modulation around each frame, dB (see {@link modulation}). */
  modulation: Float32Array;
  /** Frame length and hop in analysis samples. */
  frameLength: number;
  hop: number;
  /** Input samples per analysis sample. */
  scale: number;
}

/**
 * How much the band levels move over MODULATION_LAG_MS, averaged over the bands and over
 * +-MODULATION_SPAN_MS: speech rises and falls with its syllables (4-8 per second) by 10 dB or more,
 * while a noise that swells and fades (traffic, wind, a machine cycling) moves slowly. Levels are taken
 * no lower than their floor, so the flicker of noise under the floor does not count.
 */
function modulation(levels: Float32Array, floors: Float32Array, frames: number, hopMs: number): Float32Array {
  const lag = Math.max(1, Math.round(MODULATION_LAG_MS / hopMs));
  const radius = Math.max(1, Math.round(MODULATION_SPAN_MS / hopMs));
  const raw = new Float32Array(frames);
  for (let band = 0; band < BANDS; band++) {
    const row = band * frames;
    for (let i = lag; i < frames; i++) {
      const now = Math.max(levels[row + i]!, floors[row + i]!);
      const before = Math.max(levels[row + i - lag]!, floors[row + i - lag]!);
      raw[i] = raw[i]! + Math.abs(now - before) / BANDS;
    }
  }
  // Centred moving average by a running sum.
  const out = new Float32Array(frames);
  let sum = 0;
  let lo = 0;
  let hi = -1;
  for (let i = 0; i < frames; i++) {
    while (hi < Math.min(frames - 1, i + radius)) sum += raw[++hi]!;
    while (lo < i - radius) sum -= raw[lo++]!;
    out[i] = sum / (hi - lo + 1);
  }
  return out;
}

function analyse(input: Float32Array, o: Required<VoiceDetectorOptions>): VoiceAnalysis {
  // The speech band ends below 4 kHz: analysed at 8 kHz, the same frames need half the FFT.
  let samples = input;
  let rate = o.sampleRate;
  if (rate > ANALYSIS_RATE && rate % ANALYSIS_RATE === 0 && o.highHz <= ANALYSIS_MAX_HZ) {
    samples = resample(input, rate, ANALYSIS_RATE);
    rate = ANALYSIS_RATE;
  }
  const scale = o.sampleRate / rate;
  const frameLength = Math.max(16, Math.round((o.frameMs * rate) / 1000));
  const hop = Math.max(1, Math.round((o.hopMs * rate) / 1000));
  if (samples.length === 0) {
    return { scores: new Float32Array(0), modulation: new Float32Array(0), frameLength, hop, scale };
  }
  const frames = Math.max(1, Math.ceil((samples.length - frameLength) / hop) + 1);
  let fftSize = 1;
  while (fftSize < frameLength) fftSize *= 2;
  const edges = bandEdges(o.lowHz, o.highHz, fftSize, rate);
  const levels = bandLevels(samples, frames, frameLength, hop, edges, o.minLevelDb);
  const window = Math.max(2, Math.round(o.noiseWindowMs / o.hopMs));
  const floors = new Float32Array(BANDS * frames);
  const scores = new Float32Array(frames);
  for (let band = 0; band < BANDS; band++) {
    const row = band * frames;
    const floor = floors.subarray(row, row + frames);
    noiseFloor(levels, row, frames, window, floor);
    for (let i = 0; i < frames; i++) {
      const excess = levels[row + i]! - floor[i]!;
      scores[i] = scores[i]! + Math.min(MAX_BAND_SNR_DB, Math.max(0, excess)) / BANDS;
    }
  }
  return { scores, modulation: modulation(levels, floors, frames, o.hopMs), frameLength, hop, scale };
}

/**
 * Finds speech in mono samples (see the file comment for how). Returns spans in sample offsets,
 * sorted and disjoint. Pure; an empty input yields no spans.
 */
export function detectVoice(samples: Float32Array, options: VoiceDetectorOptions = {}): VoiceSpan[] {
  const o = { ...DEFAULTS, ...options };
  const { scores, modulation, frameLength, hop, scale } = analyse(samples, o);
  const hangover = Math.round(o.hangoverMs / o.hopMs);
  const minFrames = Math.max(1, Math.round(o.minSpeechMs / o.hopMs));
  // Frame i speaks for the hop-long slot around its centre.
  const lead = Math.floor((frameLength - hop) / 2);
  const toSample = (frame: number) =>
    Math.min(samples.length, Math.max(0, Math.round((frame * hop + lead) * scale)));
  const spans: VoiceSpan[] = [];
  let start = -1;
  let lastVoiced = -1;
  let voicedFrames = 0;
  const close = () => {
    if (voicedFrames >= minFrames) {
      const end = Math.min(scores.length, lastVoiced + 1 + hangover);
      const span = { start: start === 0 ? 0 : toSample(start), end: toSample(end) };
      if (end >= scores.length) span.end = samples.length;
      const previous = spans.at(-1);
      if (previous && span.start <= previous.end) previous.end = Math.max(previous.end, span.end);
      else if (span.end > span.start) spans.push(span);
    }
    start = -1;
  };
  for (let i = 0; i < scores.length; i++) {
    const score = scores[i]!;
    if (start < 0) {
      if (score >= o.onsetDb && modulation[i]! >= o.minModulationDb) {
        start = i;
        while (start > 0 && scores[start - 1]! >= o.offsetDb) start--;
        lastVoiced = i;
        voicedFrames = i - start + 1;
      }
    } else if (score >= o.offsetDb) {
      lastVoiced = i;
      voicedFrames++;
    } else if (i - lastVoiced > hangover) {
      close();
    }
  }
  if (start >= 0) close();
  return spans;
}
