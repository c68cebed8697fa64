/**
 * The audio path end to end without a model: clips generated with the real espeak-ng and sox, published
 * over MQTT (the embedded broker; raw L16 with its MQTT v5 content type through a real mosquitto), decoded,
 * resampled and voice-detected in the gateway's DSP thread, kept as 16 kHz mono WAVs and queued as audio
 * jobs in the real store; bad clips are rejected on the errors topic. No model is configured, so jobs wait.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorMessage } from '../../src/publish/index.js';
import { type Collector, collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-audio-'));
let gateway: TestGateway;
let errors: Collector;
let client: MqttClient;
let speech: string;

/** sox: converts `input` (or synthesises with `-n`) into a WAV of the given encoding. */
function sox(args: string[]): void {
  execFileSync('sox', args, { stdio: 'ignore' });
}

/** A clip: 1 s of near-silence, the spoken phrase, 1 s of near-silence, at `rate`/`bits`/`channels`. */
function clip(name: string, rate: number, bits: 8 | 16 | 24 | 32, channels: 1 | 2, float = false): Buffer {
  const out = join(dir, `${name}.wav`);
  const encoding = float
    ? ['-e', 'floating-point']
    : bits === 8
      ? ['-e', 'unsigned-integer']
      : ['-e', 'signed-integer'];
  sox([
    speech,
    '-r',
    String(rate),
    '-b',
    String(bits),
    ...encoding,
    '-c',
    String(channels),
    out,
    'pad',
    '1',
    '1',
  ]);
  return readFileSync(out);
}

interface AudioJob {
  state: string;
  input: string;
}

const jobsOf = (source: string) =>
  gateway
    .sql<AudioJob>("SELECT state, input FROM jobs WHERE kind = 'audio' AND source = ? ORDER BY rowid", source)
    .map((j) => ({ ...j, clip: JSON.parse(j.input) as { clip: string; seconds: number; ts: number } }));

const audioStatus = () =>
  gateway.daemon.status().audio as {
    sources: Record<
      string,
      { clips: number; droppedSeconds: number; voicedSeconds: number; rejected: number }
    >;
    realTimeFactor: number;
  };

/** Sample rate, channels, bits and duration of a WAV file, read with soxi. */
function soxi(path: string): { rate: number; channels: number; bits: number; seconds: number } {
  const read = (flag: string) => Number(execFileSync('soxi', [flag, path]).toString().trim());
  return { rate: read('-r'), channels: read('-c'), bits: read('-b'), seconds: read('-D') };
}

beforeAll(async () => {
  speech = join(dir, 'speech.wav');
  execFileSync('espeak-ng', ['-w', speech, 'the pump in the north shed is leaking oil again']);
  gateway = await startGateway({
    OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
    OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
  });
  errors = await collect(gateway.mqttUrl, 'outpost/gw-test/errors');
  client = await publisher(gateway.mqttUrl);
});

afterAll(async () => {
  await client?.endAsync();
  await errors?.end();
  expect(await gateway.stop()).toBe(0);
});

describe('audio clips', () => {
  const formats = [
    { name: 'r8k-16-mono', rate: 8000, bits: 16, channels: 1 },
    { name: 'r22k-8-mono', rate: 22050, bits: 8, channels: 1 },
    { name: 'r44k-24-stereo', rate: 44100, bits: 24, channels: 2 },
    { name: 'r48k-float-stereo', rate: 48000, bits: 32, channels: 2, float: true },
    { name: 'r16k-32-mono', rate: 16000, bits: 32, channels: 1 },
  ] as const;

  it.each(formats)('$name: the speech is kept as a 16 kHz mono clip of the right length', async (f) => {
    const wav = clip(f.name, f.rate, f.bits, f.channels, 'float' in f);
    const spoken = soxi(speech).seconds;
    await client.publishAsync(`audio/${f.name}/clip`, wav, { qos: 1 });
    await waitFor(`the ${f.name} job`, () => jobsOf(f.name).length === 1);
    const [job] = jobsOf(f.name);
    expect(job!.state).toMatch(/^(queued|waiting-model)$/);
    const kept = soxi(join(gateway.dataDir, 'media', job!.clip.clip));
    expect([kept.rate, kept.channels, kept.bits]).toEqual([16000, 1, 16]);
    // The phrase plus padding (0.3 s a side), never the whole 1 s of silence around it.
    expect(kept.seconds).toBeGreaterThan(spoken - 0.3);
    expect(kept.seconds).toBeLessThan(spoken + 1.2);
    expect(job!.clip.seconds).toBeCloseTo(kept.seconds, 2);
    const stats = audioStatus().sources[f.name]!;
    expect(stats.droppedSeconds).toBeGreaterThan(0.8);
    expect(stats.clips).toBe(1);
  });

  it('drops a clip of silence and hum whole, and counts it', async () => {
    const out = join(dir, 'hum.wav');
    sox(['-n', '-r', '16000', '-b', '16', out, 'synth', '5', 'sine', '50', 'vol', '0.3']);
    await client.publishAsync('audio/hum/clip', readFileSync(out), { qos: 1 });
    await waitFor('the hum clip', () => audioStatus().sources.hum?.clips === 1);
    expect(audioStatus().sources.hum).toMatchObject({ voicedSeconds: 0, droppedSeconds: 5 });
    expect(jobsOf('hum')).toHaveLength(0);
  });

  it('takes the JSON form with base64 and a start time', async () => {
    const audio = clip('json', 16000, 16, 1).toString('base64');
    const ts = '2026-11-28T06:30:00.000Z';
    await client.publishAsync('audio/json/clip', JSON.stringify({ audio, format: 'wav', ts }), { qos: 1 });
    await waitFor('the JSON clip', () => jobsOf('json').length === 1);
    // The voiced stretch starts after the 1 s of silence, less the padding.
    const offset = jobsOf('json')[0]!.clip.ts - Date.parse(ts);
    expect(offset).toBeGreaterThan(500);
    expect(offset).toBeLessThan(1000);
  });

  it('rejects hostile clips with reasons and runs on', async () => {
    const good = clip('good', 16000, 16, 1);
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0xfffffff0, 40); // data chunk claims 4 GB
    const noChannels = Buffer.from(good);
    noChannels.writeUInt16LE(0, 22);
    const truncated = good.subarray(0, 30);
    const random = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919 + 17) % 256));
    const sent = errors.messages.length;
    for (const payload of [huge, noChannels, truncated, random]) {
      await client.publishAsync('audio/bad/clip', payload, { qos: 1 });
    }
    await waitFor('four errors', () => errors.messages.length - sent >= 4);
    const rejected = errors.json<ErrorMessage>('outpost/gw-test/errors').slice(sent);
    expect(rejected.map((e) => [e.route, e.code])).toEqual([
      ['audio-clip', 'lying-size'],
      ['audio-clip', 'bad-channels'],
      ['audio-clip', 'truncated'],
      ['audio-clip', 'not-audio'],
    ]);
    expect(rejected[0]!.reason).toMatch(/claims 4294967280 bytes/);
    expect(audioStatus().sources.bad!.rejected).toBe(4);
    await client.publishAsync('audio/bad/clip', good, { qos: 1 });
    await waitFor('a good clip after the bad ones', () => jobsOf('bad').length === 1);
  });

  it("the board's microphone (a WAV replayed through the real sox) flows like a clip over MQTT", async () => {
    // 3 s of silence, the phrase, 3 s of silence: cut into 4 s segments at the quiet moments.
    const recording = join(dir, 'room.wav');
    sox([speech, '-r', '16000', '-c', '1', '-b', '16', recording, 'pad', '3', '3']);
    const withMic = await startGateway({
      OUTPOST_AUDIO_MICROPHONE_ENABLED: 'true',
      OUTPOST_AUDIO_MICROPHONE_RECORDER: join(
        import.meta.dirname,
        '../fixtures/audio/replayHoldRecorder.cjs',
      ),
      OUTPOST_AUDIO_MICROPHONE_DEVICE: recording,
      OUTPOST_AUDIO_MICROPHONE_SEGMENT_SECONDS: '4',
      OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
    });
    try {
      const micJobs = () =>
        withMic.sql<{ input: string }>("SELECT input FROM jobs WHERE kind = 'audio' AND source = 'mic'");
      await waitFor('a voiced clip from the microphone', () => micJobs().length >= 1);
      const status = withMic.daemon.status() as {
        audio: {
          microphone: { state: string; segments: number };
          sources: Record<string, { clips: number }>;
        };
      };
      expect(status.audio.microphone).toMatchObject({ state: 'capturing' });
      expect(status.audio.microphone.segments).toBeGreaterThanOrEqual(2);
      const kept = soxi(
        join(withMic.dataDir, 'media', (JSON.parse(micJobs()[0]!.input) as { clip: string }).clip),
      );
      expect([kept.rate, kept.channels]).toEqual([16000, 1]);
    } finally {
      expect(await withMic.stop()).toBe(0);
    }
  });

  it('takes raw L16 described by its MQTT v5 content type (through mosquitto)', async () => {
    const broker = await startMosquitto();
    const viaMosquitto = await startGateway({
      OUTPOST_MQTT_URL: broker.url,
      OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
    });
    try {
      const raw = join(dir, 'speech.raw');
      // RFC 2586: L16 is big-endian signed 16-bit.
      sox([
        speech,
        '-r',
        '22050',
        '-c',
        '1',
        '-b',
        '16',
        '-e',
        'signed-integer',
        '-B',
        '-t',
        'raw',
        raw,
        'pad',
        '1',
        '1',
      ]);
      const v5 = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
      await v5.publishAsync('audio/l16/clip', readFileSync(raw), {
        qos: 1,
        properties: { contentType: 'audio/L16;rate=22050;channels=1' },
      });
      await v5.endAsync();
      const rows = () =>
        viaMosquitto.sql<{ input: string }>("SELECT input FROM jobs WHERE kind = 'audio' AND source = 'l16'");
      await waitFor('the L16 job', () => rows().length === 1);
      const path = (JSON.parse(rows()[0]!.input) as { clip: string }).clip;
      expect(soxi(join(viaMosquitto.dataDir, 'media', path)).rate).toBe(16000);
    } finally {
      await viaMosquitto.stop();
      await broker.stop();
    }
  });
});
