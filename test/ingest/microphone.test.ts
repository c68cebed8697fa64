import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  MicrophoneSource,
  type MicrophoneSourceOptions,
  type MicrophoneStatus,
  type SegmentMeta,
} from '../../src/ingest/microphone.js';
import { encodeWav, gainFactor, PcmReader, PcmSegmenter, quietestCut } from '../../src/ingest/pcm.js';
import {
  missingBinaryRecorder,
  parseWav,
  readWav,
  replayHoldRecorder,
  replayRecorder,
  sox,
  synth,
} from '../fixtures/audio/wav.js';
import { waitFor } from '../helpers/wait.js';

const RATE = 16000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Index of the first sample where `a` and `b` differ (length included), or -1 when they are equal. */
function firstDifference(a: Int16Array, b: Int16Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function concat(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

describe('microphone PCM core', () => {
  it('writes a 16-bit mono WAV header a parser reads back', () => {
    const samples = Int16Array.from([0, 1, -1, 32767, -32768]);
    const wav = encodeWav(samples, RATE);
    expect(wav.length).toBe(44 + 10);
    const parsed = parseWav(wav);
    expect(parsed).toMatchObject({ sampleRate: RATE, channels: 1, bits: 16 });
    expect([...parsed.samples]).toEqual([...samples]);
    expect(wav.readUInt32LE(28)).toBe(RATE * 2); // bytes per second
  });

  it('cuts in the middle of the quietest frame of the window, the later one on a tie', () => {
    const samples = new Int16Array(1000).fill(1000);
    samples.fill(10, 600, 640); // quiet frames 600-620 and 620-640 of 20 samples
    expect(quietestCut(samples, 1000, 500, 20)).toBe(630);
    // outside the window: not seen, and a loud signal is cut in some frame of the window
    expect(quietestCut(samples, 1000, 300, 20)).toBeGreaterThanOrEqual(700);
  });

  it('reads interleaved frames split across chunks, averaging channels, with gain and clipping', () => {
    const frames = Buffer.from(Int16Array.from([100, 300, -20000, -30000]).buffer); // little-endian host
    const stereo = new PcmReader(2, 1);
    expect([...stereo.read(frames.subarray(0, 3))]).toEqual([]);
    expect([...stereo.read(frames.subarray(3, 5))]).toEqual([200]);
    expect([...stereo.read(frames.subarray(5))]).toEqual([-25000]);
    const loud = new PcmReader(1, gainFactor(6));
    expect([...loud.read(frames)]).toEqual([Math.round(100 * gainFactor(6)), 599, -32768, -32768]);
  });

  it('holds at most one segment and hands over every sample once', () => {
    const segmenter = new PcmSegmenter(100, 40, 10);
    const out: Int16Array[] = [];
    const input = Int16Array.from({ length: 350 }, (_, i) => (i % 100 === 75 ? 0 : 500 + (i % 7)));
    for (let i = 0; i < input.length; i += 33) {
      segmenter.push(input.subarray(i, i + 33), (s) => out.push(s.slice()));
      expect(segmenter.length).toBeLessThan(100);
    }
    out.push(segmenter.flush().slice());
    expect(out.every((s) => s.length <= 100)).toBe(true);
    expect([...concat(out)]).toEqual([...input]);
  });
});

describe('MicrophoneSource', () => {
  let dir: string;
  const sources: MicrophoneSource[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-mic-'));
  });
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.stop()));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  interface Capture {
    mic: MicrophoneSource;
    segments: { samples: Int16Array; meta: SegmentMeta }[];
    statuses: { status: MicrophoneStatus; at: number }[];
  }

  function start(options: Omit<MicrophoneSourceOptions, 'onSegment' | 'source'>): Capture {
    const capture: Omit<Capture, 'mic'> = { segments: [], statuses: [] };
    const mic = MicrophoneSource.start({
      source: 'mic',
      ...options,
      onSegment: (wav, meta) => {
        const parsed = parseWav(wav);
        expect(parsed).toMatchObject({ sampleRate: RATE, channels: 1, bits: 16 });
        capture.segments.push({ samples: parsed.samples, meta });
      },
      onStatus: (status) => capture.statuses.push({ status, at: Date.now() }),
    });
    sources.push(mic);
    return { ...capture, mic };
  }

  it('cuts 70 s of capture into segments at the quiet moments, sample-exact', async () => {
    // noise with two 0.2 s near-silent gaps, each inside the last 3 s of a 30 s segment
    const parts = [
      ['28', 'whitenoise', 'vol', '0.2'],
      ['0.2', 'sine', '200', 'vol', '0.002'],
      ['27.3', 'pinknoise', 'vol', '0.3'],
      ['0.2', 'sine', '200', 'vol', '0.002'],
      ['14.3', 'whitenoise', 'sine', 'vol', '0.2'],
    ];
    const files = parts.map((_, i) => join(dir, `part${i}.wav`));
    await Promise.all(parts.map((args, i) => synth(files[i]!, ...args)));
    const file = join(dir, 'seventy.wav');
    await sox(...files, file);
    const source = await readWav(file);
    expect(source.samples.length).toBe(70 * RATE);

    const before = Date.now();
    const { mic, segments } = start({ recorder: replayRecorder, device: file, minBackoffMs: 60_000 });
    // the replay ends after 70 s of audio: a recorder exit, so the last, partial segment comes then
    await waitFor('three segments', () => segments.length === 3);
    const seconds = segments.map((s) => s.samples.length / RATE);
    expect(seconds[0]).toBeGreaterThanOrEqual(28);
    expect(seconds[0]).toBeLessThanOrEqual(28.2);
    expect(seconds[0]! + seconds[1]!).toBeGreaterThanOrEqual(55.5);
    expect(seconds[0]! + seconds[1]!).toBeLessThanOrEqual(55.7);
    expect(firstDifference(concat(segments.map((s) => s.samples)), source.samples)).toBe(-1);
    for (const [i, { meta }] of segments.entries()) {
      expect(meta.source).toBe('mic');
      expect(meta.seconds).toBe(seconds[i]);
      expect(meta.startedAt).toBeGreaterThanOrEqual(before - 70_000);
      expect(meta.startedAt).toBeLessThanOrEqual(Date.now());
    }
    expect(mic.status()).toMatchObject({ state: 'retrying', segments: 3, seconds: 70, restarts: 0 });
    expect(mic.status().lastError).toMatch(
      /exited after 70\.0 s of audio \(device .*seventy\.wav, exit code 0\)/,
    );
    await mic.stop();
    expect(mic.status()).toMatchObject({ state: 'stopped', nextRetryAt: undefined });
  });

  it('applies gain in dB: +6 dB doubles the amplitude and clips at full scale', async () => {
    const quiet = join(dir, 'quiet.wav');
    const loud = join(dir, 'loud.wav');
    const file = join(dir, 'gain.wav');
    await synth(quiet, '1', 'sine', '440', 'vol', '0.25');
    await synth(loud, '1', 'sine', '440', 'vol', '0.8');
    await sox(quiet, loud, file);
    const source = await readWav(file);
    const { segments } = start({ recorder: replayRecorder, device: file, gain: 6, minBackoffMs: 60_000 });
    await waitFor('the segment', () => segments.length === 1);
    const out = segments[0]!.samples;
    const factor = gainFactor(6);
    expect(factor).toBeCloseTo(2, 2);
    expect([...out]).toEqual(
      [...source.samples].map((s) => Math.min(32767, Math.max(-32768, Math.round(s * factor)))),
    );
    const peak = (a: Int16Array) => a.reduce((m, s) => Math.max(m, Math.abs(s)), 0);
    expect(peak(out.subarray(0, RATE)) / peak(source.samples.subarray(0, RATE))).toBeCloseTo(2, 2);
    expect(Math.max(...out.subarray(RATE))).toBe(32767);
    expect(Math.min(...out.subarray(RATE))).toBe(-32768);
  });

  it('asks a stereo-only microphone for two channels and averages them to mono', async () => {
    const file = join(dir, 'mono.wav');
    await synth(file, '1.5', 'whitenoise', 'vol', '0.3');
    const source = await readWav(file);
    // sox plays the mono file as two identical channels
    const { segments } = start({ recorder: replayRecorder, device: file, channels: 2, minBackoffMs: 60_000 });
    await waitFor('the segment', () => segments.length === 1);
    expect(firstDifference(segments[0]!.samples, source.samples)).toBe(-1);
  });

  it('stop() during capture flushes the partial segment and leaves no process behind', async () => {
    const file = join(dir, 'partial.wav');
    await synth(file, '12.3', 'pinknoise', 'vol', '0.3');
    const source = await readWav(file);
    const { mic, segments, statuses } = start({ recorder: replayHoldRecorder, device: file });
    await waitFor('all audio buffered', () => mic.status().bufferedSeconds >= 12.3);
    const { pid, state } = mic.status();
    expect(state).toBe('capturing');
    expect(alive(pid!)).toBe(true);
    await mic.stop();
    expect(alive(pid!)).toBe(false);
    expect(segments).toHaveLength(1);
    expect(firstDifference(segments[0]!.samples, source.samples)).toBe(-1);
    // the recorder's death by SIGTERM is the stop we asked for, not a failure
    expect(mic.status()).toMatchObject({
      state: 'stopped',
      segments: 1,
      seconds: 12.3,
      lastError: undefined,
      pid: undefined,
      restarts: 0,
    });
    expect(statuses.map((s) => s.status.state)).toEqual(['starting', 'capturing', 'stopped']);
    await mic.stop(); // twice is fine
  });

  it('drops a partial segment under half a second, and counts it', async () => {
    const file = join(dir, 'short.wav');
    await synth(file, '0.3', 'whitenoise', 'vol', '0.3');
    const { mic, segments } = start({ recorder: replayHoldRecorder, device: file });
    await waitFor('all audio buffered', () => mic.status().bufferedSeconds >= 0.3);
    await mic.stop();
    expect(segments).toHaveLength(0);
    expect(mic.status().droppedSeconds).toBeCloseTo(0.3, 6);
  });

  it('restarts a recorder that exits, with a growing backoff, keeping its audio', async () => {
    const file = join(dir, 'one.wav');
    await synth(file, '1', 'whitenoise', 'vol', '0.3');
    const { mic, segments, statuses } = start({
      recorder: replayRecorder,
      device: file,
      minBackoffMs: 40,
      maxBackoffMs: 1000,
      random: () => 1,
    });
    await waitFor('three runs', () => segments.length === 3);
    expect(segments.every((s) => s.samples.length === RATE)).toBe(true);
    const delays = statuses
      .filter((s) => s.status.state === 'retrying')
      .map((s) => s.status.nextRetryAt! - s.at)
      .slice(0, 2);
    // 1 s of audio is no stable run: 40 ms, then 80 ms (random 1: the top of the jitter range)
    expect(delays[0]).toBeGreaterThan(30);
    expect(delays[0]).toBeLessThanOrEqual(40);
    expect(delays[1]).toBeGreaterThan(70);
    expect(delays[1]).toBeLessThanOrEqual(80);
    expect(mic.status().restarts).toBeGreaterThanOrEqual(2);
  });

  it('retries a recorder binary that is not installed, backing off with jitter, never throwing', async () => {
    const { mic, statuses } = start({
      recorder: missingBinaryRecorder,
      minBackoffMs: 40,
      maxBackoffMs: 320,
      random: () => 0.5,
    });
    const retrying = () => statuses.filter((s) => s.status.state === 'retrying');
    await waitFor('five failures', () => retrying().length >= 5);
    const delays = retrying().map((s) => s.status.nextRetryAt! - s.at);
    // 3/4 of the ceiling: 40, 80, 160, 320, 320 (capped)
    for (const [i, expected] of [30, 60, 120, 240, 240].entries()) {
      expect(delays[i]).toBeGreaterThan(expected - 10);
      expect(delays[i]).toBeLessThanOrEqual(expected);
    }
    const status = mic.status();
    expect(status.restarts).toBeGreaterThanOrEqual(4);
    expect(status.lastError).toBe('spawn outpost-no-such-recorder ENOENT (device default, exit code -2)');
    expect(status.segments).toBe(0);
  });

  it('reports the recorder’s own message when its device cannot be opened', async () => {
    const { mic } = start({
      recorder: replayRecorder,
      device: join(dir, 'absent.wav'),
      minBackoffMs: 60_000,
    });
    await waitFor('a failure', () => mic.status().state === 'retrying');
    expect(mic.status().lastError).toMatch(
      /^sox FAIL formats: can't open input file `.*absent\.wav': No such file or directory \(device .*, exit code 2\)$/,
    );
  });

  it('takes a recorder that goes silent as hung and schedules a restart', async () => {
    const file = join(dir, 'empty.wav');
    await sox('-n', '-r', '16000', '-c', '1', '-b', '16', file, 'trim', '0', '0');
    const { mic } = start({
      recorder: replayHoldRecorder,
      device: file,
      stallTimeoutMs: 200,
      minBackoffMs: 60_000,
    });
    await waitFor('a failure', () => mic.status().state === 'retrying');
    expect(mic.status().lastError).toMatch(
      /^no audio from the recorder for 0\.2 s \(device .*, signal SIGKILL\)$/,
    );
  });

  it('fails for good, without throwing, when the recorder module does not exist', async () => {
    const { mic } = start({ recorder: join(dir, 'noSuchRecorder.cjs') });
    expect(mic.status()).toMatchObject({ state: 'failed', restarts: 0 });
    expect(mic.status().lastError).toMatch(
      /^cannot load recorder .*noSuchRecorder\.cjs: No such recorder found/,
    );
    await mic.stop();
    expect(mic.status().state).toBe('stopped');
  });

  it('keeps running when the segment handler throws, counting the loss', async () => {
    const file = join(dir, 'lost.wav');
    await synth(file, '2', 'whitenoise', 'vol', '0.3');
    const mic = MicrophoneSource.start({
      source: 'mic',
      recorder: replayRecorder,
      device: file,
      minBackoffMs: 60_000,
      onSegment: () => {
        throw new Error('journal full');
      },
    });
    sources.push(mic);
    await waitFor('the recorder exit', () => mic.status().state === 'retrying');
    expect(mic.status()).toMatchObject({ segments: 0, droppedSeconds: 2 });
  });

  // This machine has no sound card: the real arecord and sox are the "missing microphone" case. Card 9
  // is absent on a developer's machine too.
  describe('with the real arecord', () => {
    it('reports a missing sound card clearly and retries', async () => {
      const { mic } = start({ recorder: 'arecord', device: 'plughw:9,0', minBackoffMs: 60_000 });
      await waitFor('a failure', () => mic.status().state === 'retrying');
      const status = mic.status();
      expect(status.lastError).toMatch(
        /^arecord: .*audio open error: No such file or directory \(device plughw:9,0, exit code 1\)$/,
      );
      expect(status.nextRetryAt).toBeGreaterThan(Date.now() + 20_000);
      expect(status).toMatchObject({ recorder: 'arecord', device: 'plughw:9,0', pid: undefined });
    });

    it('takes the exit code 1 of a stopped arecord for the normal stop it is', async () => {
      // ALSA's null device: a real arecord that captures (whatever its buffer holds) faster than real time
      const { mic, segments } = start({ recorder: 'arecord', device: 'null' });
      await waitFor('a segment', () => segments.length >= 1);
      const { pid } = mic.status();
      await mic.stop();
      expect(alive(pid!)).toBe(false);
      expect(mic.status()).toMatchObject({ state: 'stopped', lastError: undefined, restarts: 0 });
      const lengths = segments.map((s) => s.samples.length);
      expect(lengths.every((n) => n <= 30 * RATE)).toBe(true);
      expect(lengths.slice(0, -1).every((n) => n > 27 * RATE)).toBe(true); // the last one: flushed by stop()
    });
  });

  describe('with the real sox and rec', () => {
    it.each(['sox', 'rec'] as const)('%s reports a missing sound card clearly', async (recorder) => {
      const { mic } = start({ recorder, device: 'hw:9', minBackoffMs: 60_000 });
      await waitFor('a failure', () => mic.status().state === 'retrying');
      expect(mic.status().lastError).toMatch(
        new RegExp(
          `^${recorder} FAIL sox: Sorry, there is no default audio device configured \\(device hw:9, exit code 1\\)$`,
        ),
      );
    });
  });
});
