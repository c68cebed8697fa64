/**
 * The camera path end to end without a model: frames published over MQTT to the embedded broker are
 * checked, gated, decoded with the real sharp, written under the data folder and queued as jobs in the
 * real SQLite store; bad frames are rejected on the errors topic. No model is configured, so frame jobs
 * wait (`waiting-model`) and stay inspectable. The model tier is in test/inference/frameJobs.test.ts.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorMessage } from '../../src/publish/index.js';
import { type Collector, collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

interface JobRecord {
  id: string;
  source: string;
  state: string;
  input: string;
  reason: string | null;
}

interface FrameInput {
  ts: number;
  input: string;
  thumbnail: string;
  width: number;
  height: number;
  gate: { reason: string; score: number | null };
  prompt?: string;
}

let gateway: TestGateway;
let errors: Collector;
let sensor: MqttClient;

/** A 640x480 grey scene with a coloured block at (x, y): a distinct frame per position. */
function scene(
  x: number,
  y: number,
  format: 'jpeg' | 'png' | 'webp' = 'jpeg',
  colour = '#d02020',
): Promise<Buffer> {
  const block = Buffer.from(
    `<svg width="640" height="480"><rect x="${x}" y="${y}" width="120" height="120" fill="${colour}"/></svg>`,
  );
  const image = sharp({ create: { width: 640, height: 480, channels: 3, background: '#708090' } }).composite([
    { input: block },
  ]);
  return image[format]().toBuffer();
}

const jobsOf = (camera: string) =>
  gateway
    .sql<JobRecord>("SELECT * FROM jobs WHERE kind = 'frame' AND source = ? ORDER BY rowid", camera)
    .map((job) => ({ ...job, frame: JSON.parse(job.input) as FrameInput }));

const framesStatus = () =>
  gateway.daemon.status().frames as {
    cameras: Record<string, { decisions: Record<string, number>; rejected: number }>;
    superseded: number;
  };

async function publish(topic: string, payload: Buffer | string) {
  await sensor.publishAsync(topic, payload, { qos: 1 });
}

beforeAll(async () => {
  gateway = await startGateway({
    OUTPOST_FRAMES_GATE_MIN_INTERVAL: '0',
    OUTPOST_FRAMES_GATE_COOLDOWN: '0',
    OUTPOST_FRAMES_THUMBNAIL_SIZE: '320',
    OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
    OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
  });
  errors = await collect(gateway.mqttUrl, 'outpost/gw-test/errors');
  sensor = await publisher(gateway.mqttUrl);
});

afterAll(async () => {
  await sensor?.endAsync();
  await errors?.end();
  expect(await gateway.stop()).toBe(0);
});

describe('camera frames', () => {
  it.each(['jpeg', 'png', 'webp'] as const)(
    'a %s frame is resized to the model input, thumbnailed and queued as a job',
    async (format) => {
      const camera = `cam-${format}`;
      await publish(`cameras/${camera}/frame`, await scene(40, 40, format));
      await waitFor(`the ${format} frame's job`, () => jobsOf(camera).length === 1);
      const [job] = jobsOf(camera);
      expect(job!.state).toMatch(/^(queued|waiting-model)$/);
      expect(job!.frame).toMatchObject({ width: 640, height: 480, gate: { reason: 'first', score: null } });
      const input = await sharp(join(gateway.dataDir, 'media', job!.frame.input)).metadata();
      expect([input.format, input.width, input.height]).toEqual(['jpeg', 512, 512]);
      const thumb = await sharp(join(gateway.dataDir, 'media', job!.frame.thumbnail)).metadata();
      expect([thumb.format, thumb.width, thumb.height]).toEqual(['jpeg', 320, 240]);
      // Letterbox: the 4:3 frame fills the width; bars above and below are black.
      const { data } = await sharp(join(gateway.dataDir, 'media', job!.frame.input))
        .raw()
        .toBuffer({ resolveWithObject: true });
      const at = (x: number, y: number) => data[(y * 512 + x) * 3]!;
      expect(at(256, 10)).toBeLessThan(16);
      expect(at(256, 256)).toBeGreaterThan(64);
      // The journal no longer holds the frame's bytes once it is processed.
      const [entry] = gateway.sql<{ n: number }>(
        "SELECT length(payload) AS n FROM journal WHERE topic = ? AND route = 'camera-frame'",
        `cameras/${camera}/frame`,
      );
      expect(entry!.n).toBe(0);
    },
  );

  it('applies EXIF orientation before resizing, and strips the metadata', async () => {
    // Stored 640x480 with orientation 6: shown rotated 90° clockwise, 480x640, the block top right.
    const stored = await sharp(await scene(0, 0, 'png'))
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    await publish('cameras/cam-exif/frame', stored);
    await waitFor('the rotated frame', () => jobsOf('cam-exif').length === 1);
    const { frame } = jobsOf('cam-exif')[0]!;
    expect([frame.width, frame.height]).toEqual([480, 640]);
    const file = join(gateway.dataDir, 'media', frame.thumbnail);
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height, meta.orientation, meta.exif]).toEqual([240, 320, undefined, undefined]);
    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    const red = (x: number, y: number) => data[(y * info.width + x) * info.channels]!;
    expect(red(info.width - 10, 10)).toBeGreaterThan(180); // the block, now top right
    expect(red(10, 10)).toBeLessThan(140); // background where it was
  });

  it('takes the JSON form with base64, a timestamp and a prompt', async () => {
    const image = (await scene(200, 100)).toString('base64');
    const ts = '2026-11-28T06:00:00.000Z';
    await publish(
      'cameras/cam-json/frame',
      JSON.stringify({ image, ts, prompt: 'Is the gate open?', force: true }),
    );
    await waitFor('the JSON frame', () => jobsOf('cam-json').length === 1);
    expect(jobsOf('cam-json')[0]!.frame).toMatchObject({ ts: Date.parse(ts), prompt: 'Is the gate open?' });
  });

  it('gates repeats: the same frame 20 times makes one job, a change makes another', async () => {
    const still = await scene(300, 200);
    for (let i = 0; i < 20; i++) await publish('cameras/cam-still/frame', still);
    await waitFor('20 decisions', () => {
      const d = framesStatus().cameras['cam-still']?.decisions;
      return (d?.first ?? 0) + (d?.unchanged ?? 0) === 20;
    });
    expect(framesStatus().cameras['cam-still']!.decisions).toMatchObject({ first: 1, unchanged: 19 });
    expect(jobsOf('cam-still')).toHaveLength(1);

    await publish('cameras/cam-still/frame', await scene(20, 300));
    await waitFor('the changed frame', () => jobsOf('cam-still').length === 2);
    expect(framesStatus().cameras['cam-still']!.decisions.changed).toBe(1);
  });

  it('a burst while the model is busy leaves only the newest frame to run; the others and their files go', async () => {
    const before = framesStatus().superseded;
    for (let i = 0; i < 6; i++) await publish('cameras/cam-burst/frame', await scene(i * 90, 100));
    await waitFor('six jobs', () => jobsOf('cam-burst').length === 6);
    const jobs = jobsOf('cam-burst');
    expect(jobs.map((j) => j.state)).toEqual([
      'dropped',
      'dropped',
      'dropped',
      'dropped',
      'dropped',
      expect.stringMatching(/^(queued|waiting-model)$/),
    ]);
    expect(jobs[0]!.reason).toMatch(/superseded by a newer frame/);
    expect(framesStatus().superseded - before).toBe(5);
    // Only the open job's two files remain, on disk and in the media table.
    const open = jobs[5]!.frame;
    await waitFor('the dropped frames’ files to be deleted', () => {
      const days = readdirSync(join(gateway.dataDir, 'media', 'frames', 'cam-burst'));
      const files = days.flatMap((d) =>
        readdirSync(join(gateway.dataDir, 'media', 'frames', 'cam-burst', d)),
      );
      return files.length === 2;
    });
    expect(existsSync(join(gateway.dataDir, 'media', open.input))).toBe(true);
    expect(gateway.sql("SELECT path FROM media WHERE source = 'cam-burst' ORDER BY path")).toEqual([
      { path: open.input },
      { path: open.thumbnail },
    ]);
  });

  it('rejects a truncated JPEG, a 30000x30000 PNG header, random bytes and a path as a camera, and runs on', async () => {
    const jpeg = await scene(10, 10);
    const png = await scene(10, 10, 'png');
    // Same PNG, its header claiming 30000x30000 (CRC recomputed is not needed: the size is refused first).
    const bomb = Buffer.from(png);
    bomb.writeUInt32BE(30000, 16);
    bomb.writeUInt32BE(30000, 20);
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251));
    const sent = errors.messages.length;
    await publish('cameras/cam-bad/frame', jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    await publish('cameras/cam-bad/frame', bomb);
    await publish('cameras/cam-bad/frame', random);
    await publish('cameras/../frame', jpeg);
    await publish('cameras/cam-bad/frame', '{"image": "not base64!"}');
    await waitFor('five errors', () => errors.messages.length - sent >= 5);
    const codes = errors
      .json<ErrorMessage>('outpost/gw-test/errors')
      .slice(sent)
      .map((e) => [e.code, e.reason]);
    expect(codes).toEqual([
      ['corrupt', expect.stringMatching(/could not be decoded/)],
      ['too-many-pixels', expect.stringMatching(/30000x30000/)],
      ['not-image', expect.stringMatching(/no JPEG, PNG or WebP signature/)],
      ['bad-camera', expect.stringMatching(/camera name/)],
      ['bad-base64', expect.any(String)],
    ]);
    expect(jobsOf('cam-bad')).toHaveLength(0);
    expect(framesStatus().cameras['cam-bad']!.rejected).toBe(4);
    // And the camera still works.
    await publish('cameras/cam-bad/frame', jpeg);
    await waitFor('a good frame after the bad ones', () => jobsOf('cam-bad').length === 1);
  });

  it('shows the frames, their media and the waiting jobs in /api/status', async () => {
    const status = (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as {
      frames: { decoded: number; meanDecodeMs: number };
      media: { files: number; bytes: number };
      jobs: Record<string, number>;
    };
    expect(status.frames.decoded).toBeGreaterThan(10);
    expect(status.frames.meanDecodeMs).toBeGreaterThan(0);
    expect(status.media.files).toBe(2 * (status.jobs['waiting-model']! + status.jobs.queued!));
    expect(status.jobs.dropped).toBeGreaterThanOrEqual(6);
  });
});
