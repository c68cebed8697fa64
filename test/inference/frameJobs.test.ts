/**
 * Model tier for cameras: real frames through the real gateway into the real worker, where
 * @fugood/llama.node (libmtmd) runs a tiny generated gemma3n with a tiny generated gemma3 vision projector
 * (no mock of any runtime). The text runtime (node-llama-cpp) serves while no projector is usable.
 */
import { copyFileSync, mkdirSync, mkdtempSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TASKS, validationSchema } from '../../src/inference/index.js';
import type { EventMessage, ResultMessage } from '../../src/publish/index.js';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import { writeTinyVisionProjector } from '../fixtures/gguf/visionProjector.js';
import { type Collector, collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const MODEL_WAIT = 90_000;
let dir: string;
let model: string;
let projector: string;
let wrongProjector: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-vision-'));
  model = (await writeTinyGemma3n(join(dir, 'tiny.gguf'), { size: 'small' })).path;
  projector = (await writeTinyVisionProjector(join(dir, 'mmproj.gguf'), { projectionDim: 64 })).path;
  wrongProjector = (await writeTinyVisionProjector(join(dir, 'mmproj-48.gguf'), { projectionDim: 48 })).path;
});

/** Fast model settings: room for the frame schema's longest answer, quick retries, no digests. */
const env = (extra: Record<string, string>) => ({
  OUTPOST_MODEL: model,
  OUTPOST_MODEL_CONTEXT_SIZES: '[2048]',
  OUTPOST_MODEL_MAX_TOKENS: '1500',
  OUTPOST_MODEL_THREADS: '1',
  OUTPOST_MODEL_RESERVE: '0',
  OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
  OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
  OUTPOST_FRAMES_GATE_MIN_INTERVAL: '0',
  OUTPOST_FRAMES_GATE_COOLDOWN: '0',
  ...extra,
});

/** A 640x480 scene with a block at x: a distinct frame per position. */
const scene = (x: number) =>
  sharp({ create: { width: 640, height: 480, channels: 3, background: '#4a6a3a' } })
    .composite([
      {
        input: Buffer.from(
          `<svg width="640" height="480"><rect x="${x}" y="150" width="140" height="160" fill="#e0e0e0"/></svg>`,
        ),
      },
    ])
    .jpeg()
    .toBuffer();

async function publishFrames(gateway: TestGateway, camera: string, positions: number[]) {
  const client = await publisher(gateway.mqttUrl);
  for (const x of positions) await client.publishAsync(`cameras/${camera}/frame`, await scene(x), { qos: 1 });
  await client.endAsync();
}

interface Status {
  model: {
    state: string;
    runtime: string | null;
    capabilities: { image: boolean } | null;
    projectorError: string | null;
    variants: { id: string; projectorBytes: number }[];
  };
  jobs: Record<string, number>;
}
const status = async (gateway: TestGateway) =>
  (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as Status;

const frameJobs = (gateway: TestGateway) =>
  gateway.sql<{ state: string; reason: string | null; input: string }>(
    "SELECT state, reason, input FROM jobs WHERE kind = 'frame' ORDER BY rowid",
  );

const validFrame = new Ajv({ strict: false }).compile(validationSchema(DEFAULT_TASKS.frame.schema));

describe('frame jobs through libmtmd', { timeout: 120_000 }, () => {
  let gateway: TestGateway | undefined;
  let observer: Collector | undefined;

  afterEach(async () => {
    await observer?.end();
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
    observer = undefined;
  });

  it('describes a frame: schema-valid result published and stored with its thumbnail; alerts become events', async () => {
    gateway = await startGateway(env({ OUTPOST_MMPROJ: projector }));
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/#');
    await publishFrames(gateway, 'yard', [100]);

    await waitFor(
      'the frame result',
      () => observer!.on('outpost/gw-test/results/frame/yard').length === 1,
      MODEL_WAIT,
    );
    const [result] = observer.json<ResultMessage>('outpost/gw-test/results/frame/yard');
    expect(result).toMatchObject({ kind: 'frame', source: 'yard', model: 'tiny.gguf' });
    expect(validFrame(result!.output)).toBe(true);
    expect(result!.generation.promptTokens).toBeGreaterThan(0);
    expect(result!.media).toBe(`/api/results/${result!.id}/media`);

    const s = await status(gateway);
    expect(s.model).toMatchObject({
      runtime: 'llama.node',
      capabilities: { image: true },
      projectorError: null,
    });
    expect(s.jobs).toMatchObject({ done: 1, 'waiting-capability': 0 });

    // Stored once, with a thumbnail the API serves; the model's input file is gone.
    const rows = gateway.sql<{ id: string; output: string; media: string }>(
      'SELECT id, output, media FROM results',
    );
    expect(rows).toEqual([
      {
        id: result!.id,
        output: JSON.stringify(result!.output),
        media: expect.stringMatching(/-thumb\.jpg$/),
      },
    ]);
    expect(gateway.sql("SELECT kind FROM media WHERE source = 'yard'")).toEqual([{ kind: 'thumbnail' }]);
    const media = await fetch(`${gateway.httpUrl}${result!.media}`);
    expect(media.headers.get('content-type')).toBe('image/jpeg');
    const thumb = await sharp(Buffer.from(await media.arrayBuffer())).metadata();
    expect([thumb.format, thumb.width, thumb.height]).toEqual(['jpeg', 320, 240]);
    expect((await fetch(`${gateway.httpUrl}/api/results/${result!.id}`)).status).toBe(200);

    // The random model may or may not raise an alert: whichever it did, the events say the same.
    const alerts = observer
      .json<EventMessage>('outpost/gw-test/events/yard')
      .filter((e) => e.kind === 'alert');
    expect(alerts.length).toBe(result!.output.alert === true ? 1 : 0);
  });

  it('a frame waits while no projector is usable, the newest of a burst runs when one is', async () => {
    const later = join(dir, 'later', 'mmproj.gguf');
    gateway = await startGateway(env({ OUTPOST_MMPROJ: later }));
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    await publishFrames(gateway, 'gate', [20]);
    await waitFor(
      'the frame to wait for a capability',
      () => frameJobs(gateway!)[0]?.state === 'waiting-capability',
      MODEL_WAIT,
    );
    expect(frameJobs(gateway)[0]!.reason).toMatch(
      /takes no images: the projector file .*later\/mmproj\.gguf is not there/,
    );
    const waiting = await status(gateway);
    expect(waiting.model).toMatchObject({ runtime: 'node-llama-cpp', capabilities: { image: false } });
    expect(waiting.model.projectorError).toMatch(/not there/);
    expect(waiting.jobs['waiting-capability']).toBe(1);
    expect(waiting.model.variants).toEqual([expect.objectContaining({ id: 'tiny.gguf', projectorBytes: 0 })]);

    // More frames while it waits: each replaces the one before.
    await publishFrames(gateway, 'gate', [200, 380, 500]);
    await waitFor('four frame jobs', () => frameJobs(gateway!).length === 4);
    await waitFor('the newest to wait', () => frameJobs(gateway!)[3]!.state === 'waiting-capability');
    expect(frameJobs(gateway).map((j) => j.state)).toEqual([
      'dropped',
      'dropped',
      'dropped',
      'waiting-capability',
    ]);

    // The projector arrives (copied in, then renamed into place): the model is reloaded with it.
    mkdirSync(dirname(later));
    copyFileSync(projector, `${later}.part`);
    renameSync(`${later}.part`, later);
    await waitFor(
      'the waiting frame to run',
      () => observer!.on('outpost/gw-test/results/frame/gate').length === 1,
      MODEL_WAIT,
    );
    const newest = JSON.parse(frameJobs(gateway)[3]!.input) as { input: string };
    expect(frameJobs(gateway).map((j) => j.state)).toEqual(['dropped', 'dropped', 'dropped', 'done']);
    expect(newest.input).toMatch(/-input\.jpg$/);
    const withProjector = (await status(gateway)).model;
    expect(withProjector).toMatchObject({ runtime: 'llama.node', capabilities: { image: true } });
    // The governor counts the projector: its weights and an allowance for the encoder's buffers.
    expect(withProjector.variants[0]!.projectorBytes).toBeGreaterThan(64 * 1024 * 1024);
  });

  it('reports a projector that does not fit the model, and keeps serving text', async () => {
    gateway = await startGateway(env({ OUTPOST_MMPROJ: wrongProjector }));
    await publishFrames(gateway, 'dock', [60]);
    await waitFor(
      'the frame to wait',
      () => frameJobs(gateway!)[0]?.state === 'waiting-capability',
      MODEL_WAIT,
    );
    const s = await status(gateway);
    expect(s.model).toMatchObject({ state: 'ready', runtime: 'llama.node', capabilities: { image: false } });
    expect(s.model.projectorError).toMatch(/48/);
    expect(s.model.projectorError).toMatch(/64/);
    expect(frameJobs(gateway)[0]!.reason).toContain(s.model.projectorError!);
  });
});
