import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gaussian, mulberry32 } from '../../../src/common/index.js';
import { decodeAudioPayload } from '../../../src/pipeline/audio/payload.js';
import { downmix, resample } from '../../../src/pipeline/audio/resample.js';
import { segmentClip } from '../../../src/pipeline/audio/segment.js';
import { detectVoice, type VoiceSpan } from '../../../src/pipeline/audio/vad.js';

const RATE = 16000;
const LIMITS = { maxBytes: 64 * 1024 * 1024, maxSeconds: 600, maxChannels: 2 };
const PHRASES = [
  'The pump in the north shed is making a strange noise again.',
  'Please send someone to check the gate, it has been open since this morning.',
  'Temperature is rising in the cold room.',
  'All clear, nothing to report.',
  'Can you hear me? The generator stopped.',
];

const dir = mkdtempSync(join(tmpdir(), 'outpost-vad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** espeak-ng speech at 16 kHz, through the decoder and resampler under test. */
function speak(text: string, name: string): Float32Array {
  const file = join(dir, `${name}.wav`);
  execFileSync('espeak-ng', ['-w', file, text]);
  const decoded = decodeAudioPayload(readFileSync(file), undefined, LIMITS);
  if (!decoded.ok) throw new Error(decoded.reason);
  return resample(downmix(decoded.audio.channels), decoded.audio.sampleRate, RATE);
}

/** Where a phrase really speaks: from the first to the last sample above 2% of its peak. */
function extent(phrase: Float32Array): [number, number] {
  let peak = 0;
  for (const x of phrase) peak = Math.max(peak, Math.abs(x));
  let a = 0;
  let b = phrase.length - 1;
  while (Math.abs(phrase[a]!) < 0.02 * peak) a++;
  while (Math.abs(phrase[b]!) < 0.02 * peak) b--;
  return [a, b + 1];
}

/** Mains hum: `hz` and 19 harmonics falling as 1/k, peak about `amplitude`. */
function addHum(x: Float32Array, from: number, to: number, hz: number, amplitude: number): void {
  for (let i = from; i < to; i++) {
    const t = i / RATE;
    let h = 0;
    for (let k = 1; k <= 20; k++) h += Math.sin(2 * Math.PI * hz * k * t + k) / k;
    x[i] = x[i]! + (amplitude / 3.6) * h;
  }
}

function addNoise(x: Float32Array, from: number, to: number, rms: number, seed: number, lowpass = 0): void {
  const g = gaussian(mulberry32(seed));
  let y = 0;
  // A one-pole low-pass keeps the RMS at `rms` when scaled by sqrt((1 + a) / (1 - a)).
  const scale = Math.sqrt((1 + lowpass) / (1 - lowpass));
  for (let i = from; i < to; i++) {
    y = lowpass * y + (1 - lowpass) * g();
    x[i] = x[i]! + rms * (lowpass > 0 ? y * scale : g());
  }
}

function speechTime(spans: readonly VoiceSpan[]): number {
  return spans.reduce((sum, s) => sum + (s.end - s.start), 0) / RATE;
}

/** Precision and recall of detected speech time against the truth, sample by sample. */
function score(truth: readonly [number, number][], spans: readonly VoiceSpan[], n: number) {
  const mask = new Uint8Array(n);
  for (const [a, b] of truth) mask.fill(1, a, b);
  for (const s of spans) for (let i = s.start; i < s.end; i++) mask[i] = mask[i]! | 2;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const m of mask) {
    if (m === 3) tp++;
    else if (m === 2) fp++;
    else if (m === 1) fn++;
  }
  return { precision: tp / (tp + fp), recall: tp / (tp + fn) };
}

let phrases: Float32Array[] = [];
beforeAll(() => {
  phrases = PHRASES.map((text, i) => speak(text, `p${i}`));
});

describe('detectVoice', () => {
  it('finds espeak-ng phrases over hum, fan noise, low noise and silence (precision/recall of speech time)', () => {
    const n = 90 * RATE;
    const mix = new Float32Array(n);
    // 0-5 s digital silence; low noise from 5 s; 50 Hz hum from 10 s; a fan (low-passed noise) 40-60 s.
    addNoise(mix, 5 * RATE, n, 10 ** (-55 / 20), 1);
    addHum(mix, 10 * RATE, n, 50, 10 ** (-26 / 20));
    addNoise(mix, 40 * RATE, 60 * RATE, 10 ** (-30 / 20), 2, 0.97);
    const truth: [number, number][] = [];
    [2, 8, 15, 22, 30, 45, 52, 70, 80].forEach((seconds, j) => {
      const phrase = phrases[j % phrases.length]!;
      const at = seconds * RATE;
      for (let i = 0; i < phrase.length; i++) mix[at + i] = mix[at + i]! + 0.5 * phrase[i]!;
      const [a, b] = extent(phrase);
      truth.push([at + a, at + b]);
    });
    const spans = detectVoice(mix);
    const { precision, recall } = score(truth, spans, n);
    console.log(
      `VAD on 90 s (9 phrases, hum, fan, noise, silence): precision ${precision.toFixed(3)}, ` +
        `recall ${recall.toFixed(3)}, ${spans.length} spans`,
    );
    // Floors: the 200 ms hangover and the 25 ms frames add about 0.25 s to each 2-4 s phrase, so a
    // perfect detector of this design scores about 0.9 precision; recall loses only pauses inside a
    // phrase that outlast the hangover (commas). Measured here: precision 0.93, recall 0.99.
    expect(recall).toBeGreaterThanOrEqual(0.9);
    expect(precision).toBeGreaterThanOrEqual(0.8);
  });

  it('speech at the very start and the very end of a clip is found', () => {
    const phrase = phrases[3]!;
    const n = phrase.length * 2 + 5 * RATE;
    const mix = new Float32Array(n);
    addNoise(mix, 0, n, 0.002, 3);
    mix.set(
      phrase.map((x, i) => x + mix[i]!),
      0,
    );
    const tail = n - phrase.length;
    for (let i = 0; i < phrase.length; i++) mix[tail + i] = mix[tail + i]! + phrase[i]!;
    const [a, b] = extent(phrase);
    const { recall } = score(
      [
        [a, b],
        [tail + a, tail + b],
      ],
      detectVoice(mix),
      n,
    );
    expect(recall).toBeGreaterThan(0.9);
  });

  it('half a minute of continuous speech stays speech (the noise floor does not climb onto it)', () => {
    const talk = speak(PHRASES.join(' ').repeat(2), 'long');
    expect(talk.length / RATE).toBeGreaterThan(25);
    const mix = new Float32Array(talk.length + 2 * RATE);
    addNoise(mix, 0, mix.length, 0.003, 4);
    for (let i = 0; i < talk.length; i++) mix[RATE + i] = mix[RATE + i]! + talk[i]!;
    const [a, b] = extent(talk);
    const { recall, precision } = score([[RATE + a, RATE + b]], detectVoice(mix), mix.length);
    expect(recall).toBeGreaterThan(0.85);
    expect(precision).toBeGreaterThan(0.95);
  });

  it.each([
    ['50 Hz hum with harmonics', (x: Float32Array) => addHum(x, 0, x.length, 50, 0.3)],
    ['60 Hz hum with harmonics', (x: Float32Array) => addHum(x, 0, x.length, 60, 0.1)],
    ['fan noise', (x: Float32Array) => addNoise(x, 0, x.length, 0.05, 5, 0.95)],
    ['white noise', (x: Float32Array) => addNoise(x, 0, x.length, 0.01, 6)],
    [
      'a machine cycling: noise that swells and fades by 10 dB every 5 s',
      (x: Float32Array) => {
        addNoise(x, 0, x.length, 0.02, 7);
        for (let i = 0; i < x.length; i++)
          x[i] = x[i]! * (1 + 0.5 * Math.sin((2 * Math.PI * 0.2 * i) / RATE));
      },
    ],
    [
      'noise switching on and off every 10 s, over hum',
      (x: Float32Array) => {
        addHum(x, 0, x.length, 50, 0.05);
        for (let s = 0; s < x.length; s += 20 * RATE)
          addNoise(x, s, Math.min(x.length, s + 10 * RATE), 0.03, s);
      },
    ],
  ])('%s is not speech', (_name, make) => {
    const x = new Float32Array(60 * RATE);
    make(x);
    expect(speechTime(detectVoice(x))).toBeLessThan(0.5);
  });

  it('digital silence, dither and an empty input are not speech', () => {
    expect(detectVoice(new Float32Array(10 * RATE))).toEqual([]);
    const dither = new Float32Array(10 * RATE);
    addNoise(dither, 0, dither.length, 1 / 65536, 8);
    expect(detectVoice(dither)).toEqual([]);
    expect(detectVoice(new Float32Array(0))).toEqual([]);
    expect(detectVoice(new Float32Array(100))).toEqual([]);
  });

  it('spans are sorted, disjoint and inside the samples', () => {
    const mix = new Float32Array(20 * RATE);
    addNoise(mix, 0, mix.length, 0.001, 9);
    for (const [k, at] of [0.2, 3, 6.5, 12, 17].entries()) {
      const phrase = phrases[k]!;
      const start = Math.round(at * RATE);
      for (let i = 0; i < phrase.length && start + i < mix.length; i++)
        mix[start + i] = mix[start + i]! + phrase[i]!;
    }
    const spans = detectVoice(mix);
    expect(spans.length).toBeGreaterThan(0);
    for (const [i, s] of spans.entries()) {
      expect(s.start).toBeGreaterThanOrEqual(i === 0 ? 0 : spans[i - 1]!.end);
      expect(s.end).toBeGreaterThan(s.start);
      expect(s.end).toBeLessThanOrEqual(mix.length);
    }
  });
});

describe('detectVoice then segmentClip', () => {
  const seconds = (s: number) => Math.round(s * RATE);

  it('70 s of real speech: detected, cut between phrases into segments of at most 30 s', () => {
    const clip = new Float32Array(seconds(70));
    addNoise(clip, 0, clip.length, 0.002, 10);
    const truth: [number, number][] = [];
    for (let at = seconds(0.5), k = 0; at < clip.length - seconds(5); k++) {
      const phrase = phrases[k % phrases.length]!;
      for (let i = 0; i < phrase.length; i++) clip[at + i] = clip[at + i]! + phrase[i]!;
      const [a, b] = extent(phrase);
      truth.push([at + a, at + b]);
      at += phrase.length + seconds(0.4);
    }
    const spans = detectVoice(clip);
    const { segments, droppedSeconds } = segmentClip(clip, spans, { maxSeconds: 30, padMs: 300 });
    expect(segments.length).toBeGreaterThanOrEqual(3);
    for (const s of segments) expect(s.end - s.start).toBeLessThanOrEqual(seconds(30));
    // Every phrase lies inside the segments.
    const kept = new Uint8Array(clip.length);
    for (const s of segments) kept.fill(1, s.start, s.end);
    for (const [a, b] of truth) {
      let inside = 0;
      for (let i = a; i < b; i++) inside += kept[i]!;
      expect(inside / (b - a)).toBeGreaterThan(0.95);
    }
    expect(droppedSeconds).toBeLessThan(10);
  });
});
