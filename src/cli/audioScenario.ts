/**
 * Deterministic generator of audio clips for `outpost simulate`: per source, clips in which a machine hums
 * for a while (50 or 60 Hz mains hum with harmonics and a little broadband noise), someone says a short
 * phrase now and then, and the rest is near-silence (a noise floor around -70 dBFS).
 *
 * Clip `i` of a source is a pure function of the options, the source and `i`, so any clip can be produced
 * on its own and replayed exactly; each comes with its ground truth (speech spans and their phrases, hum,
 * silence) for scoring a voice detector. Speech is espeak-ng where it is installed (decoded once per
 * phrase), else the synthetic voice of `speechSynth.ts`; the `speech` option pins one of the two.
 */
import { mulberry32, writeWavHeader } from '../common/index.js';
import { HUM_HARMONICS, humSource, noiseSource } from './humSource.js';
import { commandAvailable, espeakSpeech, synthesizeSpeech } from './speechSynth.js';

/** Where speech comes from: espeak-ng if installed, else synthetic (`'auto'`), or one of them for sure. */
export type SpeechEngine = 'auto' | 'espeak-ng' | 'synthetic';

export interface AudioScenarioOptions {
  /** Number of audio sources, named `<prefix>-1..N`. Positive integer; default 1. */
  sources?: number;
  /** Source name prefix; must not contain `/`, `+` or `#`. Default `'mic'`. */
  prefix?: string;
  /** Length of each clip in seconds (0.5-600). Default 10. */
  clipSeconds?: number;
  /** Sample rate in Hz, integer 8000-48000. Default 16000. */
  sampleRate?: number;
  /** 1 (mono) or 2 (stereo: the speaker panned, the hum centred, independent noise floors). Default 1. */
  channels?: 1 | 2;
  /** Seed of the PRNG (any finite number; used as an unsigned 32-bit integer). Default 1. */
  seed?: number;
  /**
   * Speech engine. `'auto'` uses espeak-ng when `<espeakCommand> --version` runs, else the synthetic voice;
   * `'synthetic'` gives the same bytes on every machine. Default `'auto'`.
   */
  speech?: SpeechEngine;
  /** The espeak-ng executable, a name on PATH or a path. Default `'espeak-ng'`. */
  espeakCommand?: string;
}

/** A stretch of a clip, seconds from its start. */
export interface AudioSpan {
  start: number;
  end: number;
}

/** Someone speaking: which phrase of {@link PHRASES}, and how loud. */
export interface SpeechSpan extends AudioSpan {
  /** index into {@link PHRASES} */
  phrase: number;
  text: string;
  /** RMS of the voice alone over the span, dBFS (in stereo the mean power of the two channels) */
  level: number;
}

/** A machine running: mains hum at `frequency` with harmonics. */
export interface HumSpan extends AudioSpan {
  frequency: 50 | 60;
  /** RMS of the hum alone while it runs, dBFS (fades in and out over 0.2 s at the ends) */
  level: number;
}

/** One generated clip and its ground truth (the truth is not part of what is published). */
export interface AudioClip {
  source: string;
  /** `audio/<source>/clip` */
  topic: string;
  index: number;
  sampleRate: number;
  channels: 1 | 2;
  seconds: number;
  /** RIFF/WAVE, 16-bit PCM, interleaved */
  wav: Buffer;
  /** non-overlapping, in time order; may be empty (about one clip in seven says nothing) */
  speech: SpeechSpan[];
  /** the machine's run in this clip */
  hum: HumSpan[];
  /** the stretches with neither speech nor hum: only the noise floor */
  silence: AudioSpan[];
  speechEngine: 'espeak-ng' | 'synthetic';
}

/** The phrases the sources say; a span's `phrase` indexes this list. */
export const PHRASES: readonly string[] = [
  'pump two is running hot',
  'check the pressure on line three',
  'someone is at the north gate',
  'all clear in the loading bay',
  'shut down the conveyor now',
  'the forklift is blocking the door',
  'can you hear the alarm',
  'send a technician to the compressor',
];

const TOPIC_FORBIDDEN = /[/+#]/;
/** The noise floor of the silent stretches: about 10 LSB of 16-bit, a quiet room through a real preamp. */
const FLOOR_DBFS = -70;
/** Gap kept between a phrase and the edges of its slot, seconds. */
const SPEECH_MARGIN = 0.1;

interface Source {
  name: string;
  topic: string;
  seed: number;
  mains: 50 | 60;
  humLevel: number;
  humPhases: number[];
  /** pitch of the synthetic voice, Hz */
  f0: number;
  /** gain of the voice per channel */
  pan: number[];
}

export class AudioScenario {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
  readonly clipSeconds: number;
  readonly #sources: Source[];
  readonly #speech: SpeechEngine;
  readonly #espeakCommand: string;
  #engine: Promise<'espeak-ng' | 'synthetic'> | undefined;
  /** speech samples at `sampleRate`, RMS 1, per engine, voice and phrase */
  readonly #voices = new Map<string, Promise<Float32Array>>();

  constructor(options: AudioScenarioOptions = {}) {
    const sources = options.sources ?? 1;
    const prefix = options.prefix ?? 'mic';
    const clipSeconds = options.clipSeconds ?? 10;
    const sampleRate = options.sampleRate ?? 16_000;
    const channels = options.channels ?? 1;
    const seed = options.seed ?? 1;
    const speech = options.speech ?? 'auto';
    if (!Number.isInteger(sources) || sources < 1) {
      throw new RangeError(`audio sources must be a positive integer, got ${sources}`);
    }
    if (prefix === '' || TOPIC_FORBIDDEN.test(prefix)) {
      throw new RangeError(`audio prefix must be non-empty without '/', '+' or '#', got '${prefix}'`);
    }
    if (!(clipSeconds >= 0.5 && clipSeconds <= 600)) {
      throw new RangeError(`clipSeconds must be from 0.5 to 600, got ${clipSeconds}`);
    }
    if (!Number.isInteger(sampleRate) || sampleRate < 8_000 || sampleRate > 48_000) {
      throw new RangeError(`audio sample rate must be an integer from 8000 to 48000 Hz, got ${sampleRate}`);
    }
    if (channels !== 1 && channels !== 2)
      throw new RangeError(`audio channels must be 1 or 2, got ${channels}`);
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    if (speech !== 'auto' && speech !== 'espeak-ng' && speech !== 'synthetic') {
      throw new RangeError(`speech must be 'auto', 'espeak-ng' or 'synthetic', got '${speech}'`);
    }
    this.sampleRate = sampleRate;
    this.channels = channels;
    this.clipSeconds = clipSeconds;
    this.#speech = speech;
    this.#espeakCommand = options.espeakCommand ?? 'espeak-ng';
    this.#sources = [];
    for (let index = 0; index < sources; index++) {
      this.#sources.push(this.#source(`${prefix}-${index + 1}`, mix(seed >>> 0, 0x617564, index + 1)));
    }
  }

  /** Source names, `<prefix>-1..N`; the 0-based position here is the `source` argument of {@link clip}. */
  get sources(): readonly string[] {
    return this.#sources.map((source) => source.name);
  }

  /** The engine speaking in this scenario's clips; with `'auto'`, probes for espeak-ng once. */
  speechEngine(): Promise<'espeak-ng' | 'synthetic'> {
    this.#engine ??=
      this.#speech === 'auto'
        ? commandAvailable(this.#espeakCommand).then((found) => (found ? 'espeak-ng' : 'synthetic'))
        : Promise.resolve(this.#speech);
    return this.#engine;
  }

  /**
   * Generates clip `index` (integer >= 0) of source `source` (0-based) with its ground truth. Only the first
   * use of a phrase waits for espeak-ng; the mixing yields to the event loop every second of audio.
   * `signal` aborts both.
   */
  async clip(source: number, index: number, signal?: AbortSignal): Promise<AudioClip> {
    const state = this.#sources[source];
    if (!Number.isInteger(source) || state === undefined) {
      throw new RangeError(`source must be an integer from 0 to ${this.#sources.length - 1}, got ${source}`);
    }
    if (!Number.isInteger(index) || index < 0) {
      throw new RangeError(`clip index must be an integer >= 0, got ${index}`);
    }
    const engine = await this.speechEngine();
    const D = this.clipSeconds;
    const random = mulberry32(mix(state.seed, index + 1));
    const between = (low: number, high: number) => low + (high - low) * random();

    const hum: HumSpan = {
      start: round(between(0.05, 0.35) * D),
      end: round(between(0.6, 0.95) * D),
      frequency: state.mains,
      level: state.humLevel,
    };
    // At most one phrase per 5 s and 8 in all, so that most of a clip stays negative for a voice detector.
    const maxPhrases = Math.max(1, Math.min(8, Math.floor(D / 5)));
    const count = random() < 0.15 ? 0 : 1 + Math.floor(random() * maxPhrases);
    const said = Array.from({ length: count }, () => ({
      phrase: Math.floor(random() * PHRASES.length),
      level: round(between(-26, -18)),
      place: random(),
    }));
    const voices = await Promise.all(said.map(({ phrase }) => this.#voice(engine, state, phrase, signal)));

    // One phrase per equal slot of the clip, so phrases never overlap; one too long for its slot is cut.
    const slot = D / Math.max(1, count);
    const speech: SpeechSpan[] = said.map(({ phrase, level, place }, i) => {
      const room = Math.max(0, slot - 2 * SPEECH_MARGIN);
      const length = Math.min(voices[i]!.length / this.sampleRate, room);
      const start = round(i * slot + SPEECH_MARGIN + place * (room - length));
      return { start, end: round(start + length), phrase, text: PHRASES[phrase]!, level };
    });

    const wav = await this.#render(state, index, hum, speech, voices, signal);
    return {
      source: state.name,
      topic: state.topic,
      index,
      sampleRate: this.sampleRate,
      channels: this.channels,
      seconds: D,
      wav,
      speech,
      hum: [hum],
      silence: complement(D, [hum, ...speech]),
      speechEngine: engine,
    };
  }

  #source(name: string, seed: number): Source {
    const random = mulberry32(seed);
    const between = (low: number, high: number) => low + (high - low) * random();
    const angle = between(Math.PI / 8, (3 * Math.PI) / 8);
    return {
      name,
      topic: `audio/${name}/clip`,
      seed,
      mains: random() < 0.5 ? 50 : 60,
      humLevel: round(between(-38, -28)),
      humPhases: HUM_HARMONICS.map(() => between(0, 2 * Math.PI)),
      f0: round(between(100, 200)),
      pan: this.channels === 1 ? [1] : [Math.SQRT2 * Math.cos(angle), Math.SQRT2 * Math.sin(angle)],
    };
  }

  /** A phrase at this scenario's rate, RMS 1; espeak-ng has one voice, the synthetic one a pitch per source. */
  #voice(
    engine: 'espeak-ng' | 'synthetic',
    source: Source,
    phrase: number,
    signal?: AbortSignal,
  ): Promise<Float32Array> {
    const text = PHRASES[phrase]!;
    const key = engine === 'espeak-ng' ? `espeak:${phrase}` : `synthetic:${source.f0}:${phrase}`;
    let voice = this.#voices.get(key);
    if (voice === undefined) {
      voice =
        engine === 'espeak-ng'
          ? espeakSpeech(text, { command: this.#espeakCommand, sampleRate: this.sampleRate, signal })
          : Promise.resolve(
              synthesizeSpeech(text, {
                sampleRate: this.sampleRate,
                f0: source.f0,
                seed: mix(phrase, 0x766f),
              }),
            );
      // A failed or aborted run is not cached: the next clip tries again.
      voice.catch(() => this.#voices.delete(key));
      this.#voices.set(key, voice);
    }
    return voice;
  }

  /**
   * Mixes hum, voices and a noise floor per channel and encodes them as 16-bit PCM WAV, one second of audio
   * per turn of the event loop so that a long clip does not stall the publishers running beside it.
   */
  async #render(
    source: Source,
    index: number,
    hum: HumSpan,
    speech: SpeechSpan[],
    voices: Float32Array[],
    signal: AbortSignal | undefined,
  ): Promise<Buffer> {
    const fs = this.sampleRate;
    const channels = this.channels;
    const frames = Math.round(this.clipSeconds * fs);
    const addHum = humSource(hum, source.humPhases, fs, noiseSource(mix(source.seed, index + 1, 0x68756d)));
    const noises = source.pan.map((_, c) => noiseSource(mix(source.seed, index + 1, c + 1)));
    const placed = speech.map((span, i) => {
      const from = Math.round(span.start * fs);
      const length = Math.min(Math.round((span.end - span.start) * fs), voices[i]!.length, frames - from);
      return { voice: voices[i]!, from, to: from + length, gain: 10 ** (span.level / 20) };
    });
    const floor = 10 ** (FLOOR_DBFS / 20) * 32767;
    const wav = Buffer.alloc(44 + frames * channels * 2);
    writeWavHeader(wav, fs, channels, frames);
    const pcm = new DataView(wav.buffer, wav.byteOffset + 44, frames * channels * 2);
    const scene = new Float32Array(fs);
    const mixed = new Float32Array(fs);
    for (let start = 0; start < frames; start += fs) {
      if (start > 0) {
        await new Promise((resolve) => setImmediate(resolve));
        signal?.throwIfAborted();
      }
      const end = Math.min(frames, start + fs);
      scene.fill(0);
      addHum(scene, start, end);
      for (let c = 0; c < channels; c++) {
        mixed.set(scene);
        for (const { voice, from, to, gain } of placed) {
          const g = gain * source.pan[c]!;
          for (let n = Math.max(start, from); n < Math.min(end, to); n++)
            mixed[n - start]! += voice[n - from]! * g;
        }
        const noise = noises[c]!;
        for (let n = start; n < end; n++) {
          const sample = Math.round(mixed[n - start]! * 32767 + noise() * floor);
          pcm.setInt16((n * channels + c) * 2, Math.max(-32768, Math.min(32767, sample)), true);
        }
      }
    }
    return wav;
  }
}

/** The parts of [0, length] that none of `spans` covers, in order. */
function complement(length: number, spans: readonly AudioSpan[]): AudioSpan[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const gaps: AudioSpan[] = [];
  let cursor = 0;
  for (const span of sorted) {
    if (span.start > cursor) gaps.push({ start: cursor, end: span.start });
    cursor = Math.max(cursor, span.end);
  }
  if (cursor < length) gaps.push({ start: cursor, end: length });
  return gaps;
}

/** Ground-truth times to the millisecond (levels to a thousandth of a dB), so they print cleanly. */
function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** Mixes integers into one 32-bit seed (murmur3's finalizer per value), so nearby seeds diverge. */
function mix(...values: number[]): number {
  let h = 0x9e3779b9;
  for (const value of values) {
    h = Math.imul(h ^ (value >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}
