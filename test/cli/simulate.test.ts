import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runSimulation, type SimulationSummary } from '../../src/cli/simulate.js';
import { freePort, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

interface Received {
  topic: string;
  payload: string;
}

let broker: Aedes;
let server: net.Server;
let url: string;
let subscriber: MqttClient;
let received: Received[];

/** Waits until the subscriber has seen `n` messages or `timeoutMs` passes; the assertions after it judge. */
async function waitForMessages(n: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (received.length < n && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('runSimulation', () => {
  beforeEach(async () => {
    broker = await Aedes.createBroker();
    server = net.createServer(broker.handle);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    received = [];
    // aedes speaks MQTT 3.1.1 only.
    subscriber = await mqtt.connectAsync(url, { protocolVersion: 4 });
    subscriber.on('message', (topic, payload) => received.push({ topic, payload: payload.toString() }));
    await subscriber.subscribeAsync('sensors/#', { qos: 1 });
  });

  afterEach(async () => {
    await subscriber?.endAsync();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('publishes exactly `count` messages to a real broker', async () => {
    const progress: SimulationSummary[] = [];
    const summary = await runSimulation(
      { url, rate: 500, count: 300, seed: 7 },
      new AbortController().signal,
      (s) => progress.push(s),
    );
    expect(summary.sent).toBe(300);
    expect(summary.anomalies).toBeGreaterThanOrEqual(0);
    // 300 messages at 500/s take at least 0.6 s: the timer paces, it does not flood.
    expect(summary.elapsedMs).toBeGreaterThan(450);
    expect(summary.ratePerSecond).toBeGreaterThan(100);

    await waitForMessages(300);
    // Give stray extra messages a chance to show up before counting.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received).toHaveLength(300);
    for (const { topic, payload } of received) {
      expect(topic).toMatch(/^sensors\/pump[123]\/(temperature|pressure|vibration)$/);
      const body = JSON.parse(payload);
      expect(Number.isFinite(body.value)).toBe(true);
      expect(typeof body.ts).toBe('number');
    }
    expect(new Set(received.map((m) => m.topic)).size).toBe(9);
  });

  it('keeps up with a high rate', async () => {
    const summary = await runSimulation(
      { url, rate: 5_000, count: 5_000, qos: 1, shape: 'number' },
      new AbortController().signal,
    );
    expect(summary.sent).toBe(5_000);
    await waitForMessages(5_000);
    expect(received).toHaveLength(5_000);
  });

  it('stops early and resolves when aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const summary = await runSimulation({ url, rate: 100, qos: 0, shape: 'object' }, controller.signal);
    expect(summary.sent).toBeGreaterThan(5);
    expect(summary.sent).toBeLessThan(100);
    await waitForMessages(summary.sent);
    expect(received).toHaveLength(summary.sent);
    expect(received[0]?.topic).toMatch(/^sensors\/pump\d$/);
  });

  it('stops after durationSeconds', async () => {
    const summary = await runSimulation(
      { url, rate: 50, durationSeconds: 0.5 },
      new AbortController().signal,
    );
    expect(summary.sent).toBeGreaterThanOrEqual(20);
    expect(summary.sent).toBeLessThanOrEqual(27);
  });

  it('resolves at once when already aborted', async () => {
    const summary = await runSimulation({ url }, AbortSignal.abort());
    expect(summary.sent).toBe(0);
  });

  it('rejects with a message naming an unreachable URL', async () => {
    const deadUrl = `mqtt://127.0.0.1:${await freePort()}`;

    await expect(runSimulation({ url: deadUrl, count: 1 }, new AbortController().signal)).rejects.toThrow(
      deadUrl,
    );
  });

  it('rejects invalid options before connecting', async () => {
    const signal = new AbortController().signal;
    await expect(runSimulation({ url, rate: 0 }, signal)).rejects.toThrow(/rate/);
    await expect(runSimulation({ url, count: -1 }, signal)).rejects.toThrow(/count/);
    await expect(runSimulation({ url, devices: -1 }, signal)).rejects.toThrow(/devices/);
    await expect(runSimulation({ url, devices: 0 }, signal)).rejects.toThrow(/nothing to simulate/);
    await expect(runSimulation({ url, cameras: -1 }, signal)).rejects.toThrow(/cameras/);
    await expect(runSimulation({ url, devices: 0, cameras: 1, fps: 0 }, signal)).rejects.toThrow(/fps/);
    await expect(runSimulation({ url, cameras: 1, width: 100_000 }, signal)).rejects.toThrow(/width/);
    await expect(runSimulation({ url, audio: -1 }, signal)).rejects.toThrow(/audio/);
    await expect(runSimulation({ url, devices: 0, audio: 1, clipInterval: 0 }, signal)).rejects.toThrow(
      /clipInterval/,
    );
    await expect(runSimulation({ url, audio: 1, audioRate: 1_000 }, signal)).rejects.toThrow(/sample rate/);
    await expect(runSimulation({ url, audio: 1, audioPrefix: 'a/b' }, signal)).rejects.toThrow(/prefix/);
  });

  describe('with cameras', () => {
    let frames: { topic: string; payload: Buffer }[];
    let cameraSubscriber: MqttClient;

    beforeEach(async () => {
      frames = [];
      cameraSubscriber = await mqtt.connectAsync(url, { protocolVersion: 4 });
      cameraSubscriber.on('message', (topic, payload) => frames.push({ topic, payload }));
      await cameraSubscriber.subscribeAsync('cameras/#', { qos: 1 });
    });

    afterEach(async () => {
      await cameraSubscriber?.endAsync();
    });

    it('publishes JPEG frames of every camera at their fps, cameras only with devices 0', async () => {
      const summary = await runSimulation(
        { url, devices: 0, cameras: 2, fps: 5, count: 10, width: 640, height: 360, seed: 4 },
        new AbortController().signal,
      );
      expect(summary).toMatchObject({ sent: 10, frames: 10, anomalies: 0, skippedFrames: 0 });
      // 5 frames per camera at 5 fps: the last pair is due at 0.8 s.
      expect(summary.elapsedMs).toBeGreaterThan(700);
      await waitFor('10 frames at the subscriber', () => frames.length === 10);
      expect(summary.frameBytes).toBe(frames.reduce((sum, f) => sum + f.payload.length, 0));
      expect(frames.filter((f) => f.topic === 'cameras/cam-1/frame')).toHaveLength(5);
      expect(frames.filter((f) => f.topic === 'cameras/cam-2/frame')).toHaveLength(5);
      for (const { payload } of frames) {
        expect(await sharp(payload).metadata()).toMatchObject({ format: 'jpeg', width: 640, height: 360 });
      }
      expect(received).toHaveLength(0);
    });

    it('runs sensors and cameras side by side for a duration', async () => {
      const summary = await runSimulation(
        {
          url,
          devices: 1,
          rate: 30,
          cameras: 1,
          cameraPrefix: 'dock',
          fps: 4,
          durationSeconds: 1,
          width: 320,
          height: 240,
        },
        new AbortController().signal,
      );
      expect(summary.frames).toBeGreaterThanOrEqual(3);
      expect(summary.frames).toBeLessThanOrEqual(5);
      await waitFor('all frames', () => frames.length === summary.frames);
      expect(new Set(frames.map((f) => f.topic))).toEqual(new Set(['cameras/dock-1/frame']));
      await waitFor('all sensor messages', () => received.length === summary.sent - summary.frames);
      expect(received.length).toBeGreaterThanOrEqual(25);
      expect(received.length).toBeLessThanOrEqual(33);
    });

    it('skips frame ticks it cannot keep up with instead of queueing them, and counts them', async () => {
      // With noise every frame is rendered afresh (no reuse of an unchanged frame), and 200 fps at
      // 1920x1080 is more than any machine renders: most ticks find the previous frame still rendering.
      const summary = await runSimulation(
        {
          url,
          devices: 0,
          cameras: 1,
          fps: 200,
          width: 1920,
          height: 1080,
          cameraNoise: 2,
          durationSeconds: 0.5,
        },
        new AbortController().signal,
      );
      expect(summary.skippedFrames).toBeGreaterThan(0);
      expect(summary.frames).toBeGreaterThan(0);
      // Every tick is either published or skipped, none is left waiting.
      expect(summary.frames + summary.skippedFrames).toBeGreaterThanOrEqual(80);
      expect(summary.frames + summary.skippedFrames).toBeLessThanOrEqual(101);
      await waitFor('all frames', () => frames.length === summary.frames);
    });

    it('stops promptly when aborted while frames are rendering', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const startedAt = Date.now();
      const summary = await runSimulation(
        { url, devices: 0, cameras: 2, fps: 10, cameraNoise: 2 },
        controller.signal,
      );
      expect(Date.now() - startedAt).toBeLessThan(2_000);
      expect(summary.frames).toBeGreaterThan(0);
      await waitFor('all frames', () => frames.length === summary.frames);
    });
  });
});

/** The format fields of a canonical 44-byte-header PCM WAV, read by hand. */
function wavFormat(wav: Buffer) {
  return {
    riff: wav.toString('ascii', 0, 4) + wav.toString('ascii', 8, 12),
    format: wav.readUInt16LE(20),
    channels: wav.readUInt16LE(22),
    sampleRate: wav.readUInt32LE(24),
    bits: wav.readUInt16LE(34),
    dataBytes: wav.readUInt32LE(40),
  };
}

describe('runSimulation with audio', () => {
  let broker: Aedes;
  let server: net.Server;
  let url: string;
  let listener: MqttClient;
  let clips: { topic: string; payload: Buffer }[];
  let other: string[];

  beforeEach(async () => {
    broker = await Aedes.createBroker();
    server = net.createServer(broker.handle);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    clips = [];
    other = [];
    listener = await mqtt.connectAsync(url, { protocolVersion: 4 });
    listener.on('message', (topic, payload) => {
      if (topic.startsWith('audio/')) clips.push({ topic, payload });
      else other.push(topic);
    });
    await listener.subscribeAsync('#', { qos: 1 });
  });

  afterEach(async () => {
    await listener?.endAsync();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('publishes a WAV clip of every source every clip interval, audio only', async () => {
    // Default speech: espeak-ng where installed, else the synthetic voice.
    const summary = await runSimulation(
      { url, devices: 0, cameras: 0, audio: 2, clipSeconds: 2, clipInterval: 0.5, count: 6, seed: 3 },
      new AbortController().signal,
    );
    expect(summary).toMatchObject({ sent: 6, clips: 6, skippedClips: 0, frames: 0, anomalies: 0 });
    // 3 clips per source every 0.5 s: the last pair is due at 1 s.
    expect(summary.elapsedMs).toBeGreaterThan(900);
    await waitFor('6 clips at the subscriber', () => clips.length === 6);
    expect(summary.clipBytes).toBe(clips.reduce((sum, c) => sum + c.payload.length, 0));
    expect(clips.filter((c) => c.topic === 'audio/mic-1/clip')).toHaveLength(3);
    expect(clips.filter((c) => c.topic === 'audio/mic-2/clip')).toHaveLength(3);
    for (const { payload } of clips) {
      expect(wavFormat(payload)).toEqual({
        riff: 'RIFFWAVE',
        format: 1,
        channels: 1,
        sampleRate: 16_000,
        bits: 16,
        dataBytes: 2 * 16_000 * 2,
      });
      expect(payload.length).toBe(44 + 2 * 16_000 * 2);
    }
    expect(other).toHaveLength(0);
  });

  it('plays audio beside sensors and cameras for a duration, in stereo at another rate', async () => {
    const summary = await runSimulation(
      {
        url,
        devices: 1,
        rate: 20,
        cameras: 1,
        fps: 2,
        width: 160,
        height: 120,
        audio: 1,
        audioPrefix: 'yard',
        clipSeconds: 1,
        clipInterval: 0.4,
        audioRate: 8_000,
        audioChannels: 2,
        audioSpeech: 'synthetic',
        durationSeconds: 1,
      },
      new AbortController().signal,
    );
    // Clips are due at 0, 0.4 and 0.8 s.
    expect(summary.clips).toBe(3);
    expect(summary.frames).toBeGreaterThanOrEqual(2);
    expect(summary.sent - summary.frames - summary.clips).toBeGreaterThanOrEqual(15);
    await waitFor('all clips', () => clips.length === 3);
    for (const { topic, payload } of clips) {
      expect(topic).toBe('audio/yard-1/clip');
      expect(wavFormat(payload)).toMatchObject({ channels: 2, sampleRate: 8_000, dataBytes: 8_000 * 2 * 2 });
    }
    await waitFor('everything else', () => other.length === summary.sent - summary.clips);
  });

  it('skips clip ticks it cannot keep up with instead of queueing them, and counts them', async () => {
    // A 30 s stereo clip at 48 kHz (5.8 MB) takes tens of ms to generate and send; one every 5 ms cannot keep
    // up, however fast or loaded the machine is.
    const summary = await runSimulation(
      {
        url,
        devices: 0,
        audio: 1,
        clipSeconds: 30,
        clipInterval: 0.005,
        audioRate: 48_000,
        audioChannels: 2,
        audioSpeech: 'synthetic',
        durationSeconds: 0.5,
      },
      new AbortController().signal,
    );
    expect(summary.clips).toBeGreaterThan(0);
    expect(summary.skippedClips).toBeGreaterThan(0);
    // Every tick is either published or skipped, none is left waiting: never more than the ticks in 0.5 s
    // (how many timer ticks a loaded machine delivers is not this test's business).
    expect(summary.clips + summary.skippedClips).toBeLessThanOrEqual(0.5 / 0.005 + 2);
    await waitFor('all clips', () => clips.length === summary.clips);
  });

  it('stops promptly when aborted while clips are being generated', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const startedAt = Date.now();
    const summary = await runSimulation(
      {
        url,
        devices: 0,
        audio: 2,
        clipSeconds: 120,
        clipInterval: 0.1,
        audioRate: 48_000,
        audioChannels: 2,
        audioSpeech: 'synthetic',
      },
      controller.signal,
    );
    // A 120 s stereo clip at 48 kHz takes far longer than 300 ms: the abort cuts it short, without an error.
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    expect(summary.clips).toBe(0);
  });
});

/** mosquitto speaks MQTT 5 and announces its Receive Maximum: covers the MQTT 5 path and a broker window. */
describe('runSimulation against mosquitto', () => {
  it('publishes over MQTT 5 within the broker window at a high rate', async () => {
    const broker = await startMosquitto();
    try {
      const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
      let count = 0;
      sub.on('message', () => count++);
      await sub.subscribeAsync('sensors/#', { qos: 1 });
      const summary = await runSimulation(
        { url: broker.url, rate: 4_000, count: 4_000, qos: 1, shape: 'mixed' },
        new AbortController().signal,
      );
      expect(summary.sent).toBe(4_000);
      await waitFor('4000 messages at the subscriber', () => count === 4_000);
      await sub.endAsync();
    } finally {
      await broker.stop();
    }
  });

  it('shares the broker window between a high sensor rate and frames', async () => {
    const broker = await startMosquitto();
    try {
      const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
      let sensors = 0;
      const frames = new Map<string, number>();
      sub.on('message', (topic) => {
        if (topic.startsWith('cameras/')) frames.set(topic, (frames.get(topic) ?? 0) + 1);
        else sensors++;
      });
      await sub.subscribeAsync(['sensors/#', 'cameras/#'], { qos: 1 });
      const summary = await runSimulation(
        { url: broker.url, rate: 2_000, cameras: 2, fps: 5, durationSeconds: 1 },
        new AbortController().signal,
      );
      // Both kinds get through the one window (how many in 1 s depends on the machine's load: ~10 frames
      // and ~2,000 readings when idle).
      expect(summary.frames).toBeGreaterThanOrEqual(2);
      expect(summary.sent - summary.frames).toBeGreaterThan(100);
      await waitFor('everything at the subscriber', () => {
        const got = [...frames.values()].reduce((a, b) => a + b, 0);
        return got === summary.frames && sensors === summary.sent - summary.frames;
      });
      expect([...frames.keys()].sort()).toEqual(['cameras/cam-1/frame', 'cameras/cam-2/frame']);
      await sub.endAsync();
    } finally {
      await broker.stop();
    }
  });
});
