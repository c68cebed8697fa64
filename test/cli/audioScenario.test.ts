import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AudioClip,
  AudioScenario,
  type AudioScenarioOptions,
  type AudioSpan,
  PHRASES,
} from '../../src/cli/audioScenario.js';
import { resample, synthesizeSpeech } from '../../src/cli/speechSynth.js';
import { decodeWav } from '../../src/cli/wav.js';

const run = promisify(execFile);

interface Pcm {
  sampleRate: number;
  channels: number;
  bits: number;
  /** per channel, in [-1, 1) */
  samples: Float32Array[];
}

/** Parses a canonical 44-byte-header PCM WAV by hand, independently of the code under test. */
function parseWav(wav: Buffer): Pcm {
  expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
  expect(wav.readUInt32LE(4)).toBe(wav.length - 8);
  expect(wav.toString('ascii', 8, 16)).toBe('WAVEfmt ');
  expect(wav.readUInt32LE(16)).toBe(16);
  expect(wav.readUInt16LE(20)).toBe(1);
  const channels = wav.readUInt16LE(22);
  const sampleRate = wav.readUInt32LE(24);
  const bits = wav.readUInt16LE(34);
  expect(wav.readUInt32LE(28)).toBe(sampleRate * channels * 2);
  expect(wav.readUInt16LE(32)).toBe(channels * 2);
  expect(wav.toString('ascii', 36, 40)).toBe('data');
  const dataBytes = wav.readUInt32LE(40);
  expect(dataBytes).toBe(wav.length - 44);
  const frames = dataBytes / (2 * channels);
  const samples = Array.from({ length: channels }, () => new Float32Array(frames));
  for (let n = 0; n < frames; n++) {
    for (let c = 0; c < channels; c++) samples[c]![n] = wav.readInt16LE(44 + (n * channels + c) * 2) / 32768;
  }
  return { sampleRate, channels, bits, samples };
}

function rmsOf(samples: Float32Array, span: AudioSpan, rate: number): number {
  const from = Math.round(span.start * rate);
  const to = Math.round(span.end * rate);
  let energy = 0;
  for (let n = from; n < to; n++) energy += samples[n]! ** 2;
  return Math.sqrt(energy / Math.max(1, to - from));
}

const dB = (rms: number) => 20 * Math.log10(rms);

/** Share of the mean square of `samples[from, from + n)` carried by a sine at `frequency` (exact DFT). */
function powerShare(samples: Float32Array, from: number, n: number, frequency: number, rate: number): number {
  let re = 0;
  let im = 0;
  let energy = 0;
  for (let i = 0; i < n; i++) {
    const x = samples[from + i]!;
    re += x * Math.cos((2 * Math.PI * frequency * i) / rate);
    im -= x * Math.sin((2 * Math.PI * frequency * i) / rate);
    energy += x * x;
  }
  const amplitude = (2 * Math.hypot(re, im)) / n;
  return (amplitude * amplitude) / 2 / (energy / n);
}

/** `outer` minus `cuts`, each piece shrunk by `margin` on both sides; pieces shorter than `min` dropped. */
function subtract(outer: AudioSpan, cuts: readonly AudioSpan[], margin: number, min: number): AudioSpan[] {
  let pieces = [outer];
  for (const cut of cuts) {
    pieces = pieces.flatMap((p) =>
      [
        { start: p.start, end: Math.min(p.end, cut.start) },
        { start: Math.max(p.start, cut.end), end: p.end },
      ].filter((q) => q.end > q.start),
    );
  }
  return pieces
    .map((p) => ({ start: p.start + margin, end: p.end - margin }))
    .filter((p) => p.end - p.start >= min);
}

async function clips(options: AudioScenarioOptions, count: number): Promise<AudioClip[]> {
  const scenario = new AudioScenario(options);
  const out: AudioClip[] = [];
  for (let index = 0; index < count; index++) {
    for (let source = 0; source < scenario.sources.length; source++)
      out.push(await scenario.clip(source, index));
  }
  return out;
}

describe('AudioScenario', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-audio-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    [16_000, 1],
    [8_000, 1],
    [22_050, 2],
    [44_100, 1],
    [48_000, 2],
  ] as const)(
    'writes a valid 16-bit PCM WAV at %i Hz, %i channel(s), of the requested length',
    async (rate, channels) => {
      const scenario = new AudioScenario({
        sampleRate: rate,
        channels,
        clipSeconds: 2.5,
        speech: 'synthetic',
      });
      const clip = await scenario.clip(0, 0);
      expect(clip).toMatchObject({ source: 'mic-1', topic: 'audio/mic-1/clip', sampleRate: rate, channels });
      const pcm = parseWav(clip.wav);
      expect(pcm).toMatchObject({ sampleRate: rate, channels, bits: 16 });
      expect(pcm.samples[0]!.length).toBe(Math.round(2.5 * rate));
      const file = join(dir, `clip-${rate}-${channels}.wav`);
      await writeFile(file, clip.wav);
      const soxi = async (flag: string) => (await run('soxi', [flag, file])).stdout.trim();
      expect(Number(await soxi('-r'))).toBe(rate);
      expect(Number(await soxi('-c'))).toBe(channels);
      expect(Number(await soxi('-b'))).toBe(16);
      expect(Number(await soxi('-D'))).toBeCloseTo(2.5, 3);
    },
  );

  describe.each([
    ['synthetic', { speech: 'synthetic' }],
    ['espeak-ng', { speech: 'espeak-ng' }],
  ] as [string, AudioScenarioOptions][])('ground truth, %s speech', (engine, speechOptions) => {
    let all: AudioClip[];
    beforeAll(async () => {
      all = await clips({ ...speechOptions, sources: 3, seed: 5, clipSeconds: 10 }, 6);
    });

    it('lays out speech, hum and silence that tile the clip without overlapping phrases', () => {
      let phrases = 0;
      for (const clip of all) {
        expect(clip.speechEngine).toBe(engine);
        expect(clip.hum).toHaveLength(1);
        const spans = [...clip.speech, ...clip.hum, ...clip.silence];
        for (const span of spans) {
          expect(span.start).toBeGreaterThanOrEqual(0);
          expect(span.end).toBeLessThanOrEqual(clip.seconds);
          expect(span.end).toBeGreaterThan(span.start);
        }
        for (const [i, span] of clip.speech.entries()) {
          expect(span.text).toBe(PHRASES[span.phrase]);
          expect(span.end - span.start).toBeGreaterThan(0.8);
          if (i > 0) expect(span.start).toBeGreaterThan(clip.speech[i - 1]!.end);
        }
        phrases += clip.speech.length;
        // Silence is exactly what neither speech nor hum covers: sampled every 10 ms.
        for (let t = 0.005; t < clip.seconds; t += 0.01) {
          const covered = [...clip.speech, ...clip.hum].some((s) => t >= s.start && t < s.end);
          const silent = clip.silence.some((s) => t >= s.start && t < s.end);
          expect(silent).toBe(!covered);
        }
      }
      // Most clips have someone speaking, some have nobody (negatives for a voice detector).
      expect(phrases).toBeGreaterThan(all.length);
      expect(all.some((clip) => clip.speech.length === 0)).toBe(true);
    });

    it('puts speech energy well above the silence, at the level the truth states', () => {
      for (const clip of all) {
        const pcm = parseWav(clip.wav);
        const channel = pcm.samples[0]!;
        for (const span of clip.silence.filter((s) => s.end - s.start > 0.05)) {
          expect(dB(rmsOf(channel, span, pcm.sampleRate))).toBeLessThan(-62);
        }
        for (const span of clip.speech) {
          const level = dB(rmsOf(channel, span, pcm.sampleRate));
          // The voice alone is at `level`; hum under it adds a little.
          expect(level).toBeGreaterThan(span.level - 1);
          expect(level).toBeLessThan(span.level + 3);
          expect(level).toBeGreaterThan(-30);
        }
      }
    });
  });

  it('hums at the mains frequency: most hum energy at 50 or 60 Hz, none at the other', async () => {
    const all = await clips({ speech: 'synthetic', sources: 4, seed: 2, clipSeconds: 10 }, 3);
    const seen = new Set<number>();
    let measured = 0;
    for (const clip of all) {
      const [hum] = clip.hum;
      const pcm = parseWav(clip.wav);
      const other = hum!.frequency === 50 ? 60 : 50;
      seen.add(hum!.frequency);
      // Hum alone: inside its run, away from its fades and from any speech.
      for (const stretch of subtract(hum!, clip.speech, 0.25, 0.5)) {
        // Whole tenths of a second: whole cycles of 50, 60 and 1000 Hz alike, so the DFT does not leak.
        const whole = Math.floor((stretch.end - stretch.start) * 10) * (pcm.sampleRate / 10);
        const from = Math.round(stretch.start * pcm.sampleRate);
        const channel = pcm.samples[0]!;
        expect(powerShare(channel, from, whole, hum!.frequency, pcm.sampleRate)).toBeGreaterThan(0.6);
        expect(powerShare(channel, from, whole, other, pcm.sampleRate)).toBeLessThan(0.01);
        expect(powerShare(channel, from, whole, 1_000, pcm.sampleRate)).toBeLessThan(0.01);
        expect(dB(rmsOf(channel, stretch, pcm.sampleRate))).toBeCloseTo(hum!.level, 0);
        measured++;
      }
    }
    expect(measured).toBeGreaterThan(6);
    expect(seen).toEqual(new Set([50, 60]));
  });

  it('gives identical bytes for the same seed, different ones for another seed', async () => {
    const options: AudioScenarioOptions = { speech: 'synthetic', sources: 2, seed: 9, clipSeconds: 3 };
    const a = await new AudioScenario(options).clip(1, 4);
    const b = await new AudioScenario(options).clip(1, 4);
    const c = await new AudioScenario({ ...options, seed: 10 }).clip(1, 4);
    expect(b.wav.equals(a.wav)).toBe(true);
    expect(b.speech).toEqual(a.speech);
    expect(c.wav.equals(a.wav)).toBe(false);
    // Any clip can be produced on its own: the order of generation does not matter.
    const scenario = new AudioScenario(options);
    await scenario.clip(0, 7);
    expect((await scenario.clip(1, 4)).wav.equals(a.wav)).toBe(true);
  });

  // espeak-ng is a test dependency (.ci/run installs it): this runs, never skips.
  it('is deterministic with espeak-ng too', async () => {
    const options: AudioScenarioOptions = { speech: 'espeak-ng', seed: 3, clipSeconds: 4, sampleRate: 8_000 };
    const a = await new AudioScenario(options).clip(0, 1);
    const b = await new AudioScenario(options).clip(0, 1);
    expect(a.speechEngine).toBe('espeak-ng');
    expect(b.wav.equals(a.wav)).toBe(true);
  });

  it('falls back to the synthetic voice where espeak-ng is missing, and fails clearly when it was asked for', async () => {
    const missing = join(dir, 'no-such-espeak-ng');
    const scenario = new AudioScenario({ espeakCommand: missing, clipSeconds: 3 });
    expect(await scenario.speechEngine()).toBe('synthetic');
    const clip = await scenario.clip(0, 0);
    expect(clip.speechEngine).toBe('synthetic');
    const synthetic = await new AudioScenario({ speech: 'synthetic', clipSeconds: 3 }).clip(0, 0);
    expect(clip.wav.equals(synthetic.wav)).toBe(true);

    // The first clip with speech in it is the first that needs espeak-ng.
    const pinned = new AudioScenario({ speech: 'espeak-ng', espeakCommand: missing });
    let index = 0;
    while ((await new AudioScenario({ speech: 'synthetic' }).clip(0, index)).speech.length === 0) index++;
    await expect(pinned.clip(0, index)).rejects.toThrow(/ENOENT|no-such-espeak-ng/);
  });

  it('fits phrases into short clips', async () => {
    for (const clip of await clips({ speech: 'synthetic', sources: 2, clipSeconds: 2 }, 5)) {
      expect(clip.speech.length).toBeLessThanOrEqual(1);
      for (const span of clip.speech) expect(span.end).toBeLessThanOrEqual(1.9 + 1e-9);
      expect(parseWav(clip.wav).samples[0]!.length).toBe(32_000);
    }
  });

  it('pans the voice in stereo and keeps independent noise floors', async () => {
    const clip = await new AudioScenario({ speech: 'synthetic', channels: 2, seed: 6 }).clip(0, 0);
    const pcm = parseWav(clip.wav);
    const [span] = clip.speech;
    expect(span).toBeDefined();
    const left = rmsOf(pcm.samples[0]!, span!, pcm.sampleRate);
    const right = rmsOf(pcm.samples[1]!, span!, pcm.sampleRate);
    expect(Math.abs(dB(left) - dB(right))).toBeGreaterThan(0.5);
    // The pan keeps the power: the mean of the two channels is at the stated level (plus any hum under it).
    const both = dB(Math.sqrt((left ** 2 + right ** 2) / 2));
    expect(both).toBeGreaterThan(span!.level - 0.5);
    expect(both).toBeLessThan(span!.level + 3);
    expect(Buffer.from(pcm.samples[0]!.buffer).equals(Buffer.from(pcm.samples[1]!.buffer))).toBe(false);
  });

  it('rejects invalid options', async () => {
    expect(() => new AudioScenario({ sources: 0 })).toThrow(/sources/);
    expect(() => new AudioScenario({ prefix: 'a/b' })).toThrow(/prefix/);
    expect(() => new AudioScenario({ clipSeconds: 0.1 })).toThrow(/clipSeconds/);
    expect(() => new AudioScenario({ sampleRate: 96_000 })).toThrow(/sample rate/);
    expect(() => new AudioScenario({ channels: 3 as 1 })).toThrow(/channels/);
    expect(() => new AudioScenario({ speech: 'festival' as 'auto' })).toThrow(/speech/);
    await expect(new AudioScenario().clip(1, 0)).rejects.toThrow(/source/);
    await expect(new AudioScenario().clip(0, -1)).rejects.toThrow(/index/);
  });
});

describe('speech synthesis', () => {
  it('sounds like speech: pitch of 100-200 Hz and syllables at about 4 per second', () => {
    const rate = 16_000;
    const samples = synthesizeSpeech(PHRASES[1]!, { sampleRate: rate, f0: 140, seed: 1 });
    const seconds = samples.length / rate;
    expect(seconds).toBeGreaterThan(1);
    expect(seconds).toBeLessThan(4);

    // Syllable rate: count the rises of the 10 ms energy envelope through half its peak.
    const frame = rate / 100;
    const envelope = Array.from({ length: Math.floor(samples.length / frame) }, (_, i) =>
      Math.sqrt(samples.subarray(i * frame, (i + 1) * frame).reduce((sum, s) => sum + s * s, 0) / frame),
    );
    const peak = Math.max(...envelope);
    let bursts = 0;
    for (let i = 1; i < envelope.length; i++)
      if (envelope[i - 1]! < peak / 4 && envelope[i]! >= peak / 4) bursts++;
    const syllablesPerSecond = (bursts + (envelope[0]! >= peak / 4 ? 1 : 0)) / seconds;
    expect(syllablesPerSecond).toBeGreaterThan(2.5);
    expect(syllablesPerSecond).toBeLessThan(6);

    // Pitch: the autocorrelation peak of the loudest 40 ms lies at a lag of 5-10 ms (100-200 Hz).
    const loudest = envelope.indexOf(peak) * frame;
    const window = samples.subarray(Math.max(0, loudest - 320), loudest + 320);
    let bestLag = 0;
    let best = Number.NEGATIVE_INFINITY;
    for (let lag = rate / 400; lag <= rate / 60; lag++) {
      let sum = 0;
      for (let i = 0; i + lag < window.length; i++) sum += window[i]! * window[i + lag]!;
      if (sum > best) [best, bestLag] = [sum, lag];
    }
    expect(rate / bestLag).toBeGreaterThan(100);
    expect(rate / bestLag).toBeLessThan(200);
  });

  it('resamples without folding high tones into the band', () => {
    const tone = (frequency: number, rate: number) =>
      Float32Array.from({ length: rate }, (_, n) => Math.sin((2 * Math.PI * frequency * n) / rate));
    const rms = (x: Float32Array) => Math.sqrt(x.reduce((sum, s) => sum + s * s, 0) / x.length);
    const kept = resample(tone(1_000, 22_050), 22_050, 8_000);
    expect(kept).toHaveLength(8_000);
    expect(rms(kept.subarray(100, -100))).toBeCloseTo(Math.SQRT1_2, 2);
    // 6 kHz is above 8 kHz's Nyquist: it must vanish, not come back at 2 kHz.
    expect(rms(resample(tone(6_000, 22_050), 22_050, 8_000).subarray(100, -100))).toBeLessThan(0.01);
    const up = resample(tone(1_000, 8_000), 8_000, 48_000);
    expect(rms(up.subarray(600, -600))).toBeCloseTo(Math.SQRT1_2, 2);
  });

  it('decodes WAV with a streaming placeholder size, as espeak-ng writes it to a pipe', async () => {
    const clip = await new AudioScenario({ speech: 'synthetic', channels: 2, clipSeconds: 1 }).clip(0, 0);
    const streamed = Buffer.from(clip.wav);
    streamed.writeUInt32LE(0x7ffff024, 4);
    streamed.writeUInt32LE(0x7ffff000, 40);
    const { samples, sampleRate } = decodeWav(streamed);
    expect(sampleRate).toBe(16_000);
    expect(samples).toHaveLength(16_000);
    const pcm = parseWav(clip.wav);
    expect(samples[1234]).toBeCloseTo((pcm.samples[0]![1234]! + pcm.samples[1]![1234]!) / 2, 6);
    expect(() => decodeWav(Buffer.from('not a wav file at all'))).toThrow(/RIFF/);
  });
});
