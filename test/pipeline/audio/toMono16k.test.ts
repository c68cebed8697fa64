/**
 * The audio stage's front half on files written by real tools: decode -> downmix -> resample to 16 kHz
 * mono, checked against the expected length, the tone's frequency, and sox's own conversion.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudioPayload, downmix, resample } from '../../../src/pipeline/audio/index.js';

const RATE = 16000;
const LIMITS = { maxBytes: 32 * 1024 * 1024, maxSeconds: 120, maxChannels: 8 };
const dir = mkdtempSync(join(tmpdir(), 'outpost-mono-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function soxFile(args: string[], effects: string[]): string {
  const out = join(dir, `f${fileNo++}.wav`);
  execFileSync('sox', ['-n', ...args, out, ...effects], { stdio: 'pipe' });
  return out;
}

function toMono16k(file: string): { mono: Float32Array; rate: number; frames: number } {
  const decoded = decodeAudioPayload(readFileSync(file), undefined, LIMITS);
  if (!decoded.ok) throw new Error(`${decoded.code}: ${decoded.reason}`);
  const { sampleRate, channels } = decoded.audio;
  return {
    mono: resample(downmix(channels), sampleRate, RATE),
    rate: sampleRate,
    frames: channels[0]!.length,
  };
}

/** Frequency from the upward zero crossings over the middle of the signal, Hz. */
function zeroCrossingHz(x: Float32Array): number {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = 800; i < x.length - 800; i++) {
    if (x[i - 1]! < 0 && x[i]! >= 0) {
      const at = i - 1 + x[i - 1]! / (x[i - 1]! - x[i]!);
      if (first < 0) first = at;
      last = at;
      count++;
    }
  }
  return ((count - 1) * RATE) / (last - first);
}

describe('decode + downmix + resample to 16 kHz mono', () => {
  it.each([
    ['8 kHz 8-bit unsigned', ['-r', '8000', '-b', '8', '-e', 'unsigned']],
    ['22.05 kHz 16-bit', ['-r', '22050', '-b', '16']],
    ['44.1 kHz 16-bit stereo', ['-r', '44100', '-b', '16', '-c', '2']],
    ['48 kHz 24-bit', ['-r', '48000', '-b', '24']],
    ['48 kHz float stereo', ['-r', '48000', '-b', '32', '-e', 'floating-point', '-c', '2']],
    ['96 kHz 32-bit', ['-r', '96000', '-b', '32']],
  ])('%s: 2 s of 1 kHz become 32000 samples at 1 kHz', (_name, args) => {
    const { mono } = toMono16k(soxFile(args, ['synth', '2', 'sine', '1000']));
    expect(Math.abs(mono.length - 2 * RATE)).toBeLessThanOrEqual(2);
    expect(zeroCrossingHz(mono)).toBeCloseTo(1000, 0);
  });

  it('stereo with different channels is their mean', () => {
    // Left 1 kHz, right silent: the mix is the tone at half level.
    const file = soxFile(
      ['-r', '48000', '-b', '16', '-c', '2'],
      ['synth', '1', 'sine', '1000', 'remix', '1', '0'],
    );
    const { mono } = toMono16k(file);
    let peak = 0;
    for (let i = 1000; i < mono.length - 1000; i++) peak = Math.max(peak, Math.abs(mono[i]!));
    const reference = toMono16k(soxFile(['-r', '48000', '-b', '16'], ['synth', '1', 'sine', '1000'])).mono;
    let refPeak = 0;
    for (let i = 1000; i < reference.length - 1000; i++) refPeak = Math.max(refPeak, Math.abs(reference[i]!));
    expect(peak / refPeak).toBeCloseTo(0.5, 2);
  });

  it('noise at 44.1 kHz stereo keeps its length; speech from espeak-ng matches sox -r 16000 -c 1', () => {
    const noise = toMono16k(soxFile(['-r', '44100', '-b', '16', '-c', '2'], ['synth', '3', 'whitenoise']));
    expect(Math.abs(noise.mono.length - 3 * RATE)).toBeLessThanOrEqual(2);

    const speech = join(dir, 'speech.wav');
    execFileSync('espeak-ng', ['-w', speech, 'Gate two is open and the pump is off.']);
    const ours = toMono16k(speech);
    expect(ours.rate).toBe(22050);
    expect(Math.abs(ours.mono.length - Math.round((ours.frames * RATE) / 22050))).toBeLessThanOrEqual(1);
    const soxOut = join(dir, 'speech16k.wav');
    execFileSync('sox', [speech, '-r', '16000', '-c', '1', '-b', '32', '-e', 'floating-point', soxOut]);
    const decoded = decodeAudioPayload(readFileSync(soxOut), undefined, LIMITS);
    if (!decoded.ok) throw new Error(decoded.reason);
    const theirs = decoded.audio.channels[0]!;
    expect(Math.abs(theirs.length - ours.mono.length)).toBeLessThanOrEqual(1);
    // The two filters differ only above 6.8 kHz (ours starts rolling off there, sox's at 7.6 kHz),
    // where espeak-ng puts little energy: the outputs agree to better than 30 dB (measured: 41.5 dB).
    let signal = 0;
    let error = 0;
    for (let i = 0; i < Math.min(theirs.length, ours.mono.length); i++) {
      signal += theirs[i]! * theirs[i]!;
      error += (theirs[i]! - ours.mono[i]!) ** 2;
    }
    const snr = 10 * Math.log10(signal / error);
    console.log(`espeak-ng 22.05 kHz -> 16 kHz: Outpost vs sox, SNR ${snr.toFixed(1)} dB`);
    expect(snr).toBeGreaterThan(30);
  });
});
