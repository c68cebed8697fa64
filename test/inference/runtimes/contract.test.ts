/**
 * Model tier: one contract suite run against every runtime adapter, with the real runtimes and the tiny
 * generated gemma3n model (no mocks), CPU, 1 thread. The llama.node runtime also takes a tiny gemma3
 * projector and a JPEG made with sharp, and a tiny voxtral projector (alone and merged with the gemma3 one)
 * and a WAV made with sox; those cases follow the contract.
 *
 * The tiny model has random weights: its text is gibberish, but greedy decoding makes it repeatable and
 * a JSON schema makes it valid JSON.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CapabilityError,
  type GenerateRequest,
  type JsonSchema,
  MEDIA_MARKER,
  type Runtime,
  type RuntimeLoadOptions,
  type RuntimeName,
} from '../../../src/inference/runtime.js';
import { LlamaNodeRuntime } from '../../../src/inference/runtimes/llamaNode.js';
import { NodeLlamaCppRuntime } from '../../../src/inference/runtimes/nodeLlamaCpp.js';
import { writeTinyAudioProjector } from '../../fixtures/gguf/audioProjector.js';
import { writeTinyGemma3n } from '../../fixtures/gguf/gemma3n.js';
import { writeTinyVisionProjector } from '../../fixtures/gguf/visionProjector.js';

const MODEL_TIMEOUT = 30_000;
const SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    summary: { type: 'string', maxLength: 24 },
    severity: { enum: ['info', 'warning', 'critical'] },
  },
  required: ['summary', 'severity'],
  additionalProperties: false,
};
const matchesSchema = new Ajv().compile(SCHEMA);

const turn = (user: string) => `<start_of_turn>user\n${user}<end_of_turn>\n<start_of_turn>model\n`;
/** about 3.5 tiny-vocabulary tokens per word */
const words = (count: number) => Array.from({ length: count }, (_, i) => `w${i}`).join(' ');
const PROMPT = turn('The pump vibrates. Report as JSON.');

let dir: string;
let files: {
  model: string;
  projector: string;
  wrongProjector: string;
  image: string;
  audioProjector: string;
  bothProjector: string;
  audio: string;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-runtimes-'));
  const model = await writeTinyGemma3n(join(dir, 'tiny.gguf'), { size: 'small' });
  const projector = await writeTinyVisionProjector(join(dir, 'mmproj.gguf'), { projectionDim: model.nEmbd });
  const wrong = await writeTinyVisionProjector(join(dir, 'mmproj-48.gguf'), { projectionDim: 48 });
  const image = join(dir, 'frame.jpg');
  await writeFile(
    image,
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 120, b: 30 } } })
      .jpeg()
      .toBuffer(),
  );
  const audioProjector = await writeTinyAudioProjector(join(dir, 'mmproj-audio.gguf'), {
    projectionDim: model.nEmbd,
  });
  const bothProjector = await writeTinyAudioProjector(join(dir, 'mmproj-both.gguf'), {
    projectionDim: model.nEmbd,
    withVision: true,
  });
  const audio = join(dir, 'pump.wav');
  // 2 s of a 440 Hz tone, 16 kHz mono 16-bit PCM
  const tone = ['-n', '-r', '16000', '-c', '1', '-b', '16', audio, 'synth', '2', 'sine', '440'];
  await promisify(execFile)('sox', tone);
  files = {
    model: model.path,
    projector: projector.path,
    wrongProjector: wrong.path,
    image,
    audioProjector: audioProjector.path,
    bothProjector: bothProjector.path,
    audio,
  };
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const options = (runtime: RuntimeName, more: Partial<RuntimeLoadOptions> = {}): RuntimeLoadOptions => ({
  runtime,
  modelPath: files.model,
  contextSize: 512,
  threads: 1,
  gpu: false,
  ...more,
});

/** A short generation works (the tiny model may end it before maxTokens). */
async function expectGenerates(runtime: Runtime, request: Partial<GenerateRequest> = {}) {
  const result = await runtime.generate({ prompt: PROMPT, maxTokens: 3, ...request });
  expect(result.tokens).toBeGreaterThan(0);
  expect(result.tokens).toBeLessThanOrEqual(3);
  return result;
}

/** Rejects with `reason` when `request` is aborted after `afterMs`; `maxTokens` makes it run long enough. */
async function abortedAfter(runtime: Runtime, afterMs: number, request: GenerateRequest, reason: Error) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(reason), afterMs);
  try {
    return await runtime.generate({ ...request, signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** What every runtime adapter does, whatever runtime it wraps. */
function runtimeContract(name: RuntimeName, create: () => Runtime): void {
  describe(`${name} runtime contract`, { timeout: MODEL_TIMEOUT }, () => {
    const runtime = create();
    afterAll(() => runtime.unload());

    it('loads the model and says what it is', async () => {
      expect(runtime.name).toBe(name);
      const info = await runtime.load(options(name));
      expect(info).toMatchObject({
        model: 'tiny.gguf',
        runtime: name,
        gpu: false,
        contextSize: 512,
        architecture: 'gemma3n',
        capabilities: { text: true, image: false, audio: false },
      });
      expect(info.projectorError).toBeUndefined();
    });

    it('answers in JSON that matches the schema', async () => {
      const result = await runtime.generate({ prompt: PROMPT, schema: SCHEMA, maxTokens: 96 });
      expect(matchesSchema(JSON.parse(result.text))).toBe(true);
      expect(result.stopReason).toBe('end');
      expect(result.tokens).toBeGreaterThan(0);
      expect(result.promptTokens).toBeGreaterThan(0);
    });

    it('stops at maxTokens', async () => {
      const result = await runtime.generate({ prompt: PROMPT, maxTokens: 5 });
      expect(result).toMatchObject({ tokens: 5, stopReason: 'maxTokens' });
      expect(result.promptTokens).toBeGreaterThan(5);
      expect(result.generationMs).toBeGreaterThan(0);
    });

    it('rejects with the reason of an aborted signal, and the next generate works', async () => {
      const before = new Error('aborted before the start');
      const controller = new AbortController();
      controller.abort(before);
      await expect(
        runtime.generate({ prompt: PROMPT, maxTokens: 5, signal: controller.signal }),
      ).rejects.toBe(before);

      const during = new Error('aborted while generating');
      const started = performance.now();
      await expect(abortedAfter(runtime, 30, { prompt: PROMPT, maxTokens: 400 }, during)).rejects.toBe(
        during,
      );
      expect(performance.now() - started).toBeLessThan(5_000);

      await expectGenerates(runtime);
    });

    it('refuses an image without a projector, saying what to configure', async () => {
      const error = await runtime
        .generate({
          prompt: turn(`${MEDIA_MARKER}What is in the frame?`),
          media: [{ kind: 'image', path: files.image }],
          maxTokens: 4,
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CapabilityError);
      expect(error).toMatchObject({ name: 'CapabilityError', capability: 'image' });
      expect((error as Error).message).toMatch(/model\.mmproj \(OUTPOST_MMPROJ\)/);
    });

    it('takes a prompt longer than a batch when the context holds it', async () => {
      await runtime.load(options(name, { contextSize: 1024 }));
      const result = await expectGenerates(runtime, { prompt: turn(words(200)) });
      expect(result.promptTokens).toBeGreaterThan(512);
      await runtime.load(options(name));
    });

    it('refuses to load a missing model file', async () => {
      await expect(runtime.load(options(name, { modelPath: join(dir, 'missing.gguf') }))).rejects.toThrow(
        /missing\.gguf/,
      );
      await runtime.load(options(name));
    });

    it('rejects a generation cut by unload, refuses to generate unloaded, and unloads twice', async () => {
      const generation = runtime.generate({ prompt: PROMPT, maxTokens: 400 });
      generation.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 30));
      await runtime.unload();
      await expect(generation).rejects.toThrow('the model was unloaded during generation');
      await expect(runtime.generate({ prompt: PROMPT, maxTokens: 3 })).rejects.toThrow(/no model loaded/);
      await expect(runtime.unload()).resolves.toBeUndefined();
      expect((await runtime.load(options(name))).model).toBe('tiny.gguf');
    });
  });
}

runtimeContract('node-llama-cpp', () => new NodeLlamaCppRuntime());
runtimeContract('llama.node', () => new LlamaNodeRuntime());

describe('llama.node runtime with a projector', { timeout: MODEL_TIMEOUT }, () => {
  const runtime = new LlamaNodeRuntime();
  const imagePrompt = turn(`${MEDIA_MARKER}What is in the frame? Report as JSON.`);
  const image = () => [{ kind: 'image' as const, path: files.image }];
  afterAll(() => runtime.unload());

  it('takes images and answers about one in JSON', async () => {
    const info = await runtime.load(options('llama.node', { mmprojPath: files.projector }));
    expect(info.capabilities).toEqual({ text: true, image: true, audio: false });
    expect(info.projectorError).toBeUndefined();

    const withImage = await runtime.generate({
      prompt: imagePrompt,
      media: image(),
      schema: SCHEMA,
      maxTokens: 96,
    });
    expect(matchesSchema(JSON.parse(withImage.text))).toBe(true);
    const without = await runtime.generate({
      prompt: imagePrompt.replace(MEDIA_MARKER, ''),
      schema: SCHEMA,
      maxTokens: 96,
    });
    // the image's 4 embeddings plus <start_of_image> and <end_of_image>
    expect(withImage.promptTokens).toBeGreaterThan(without.promptTokens + 4);
  });

  it('wants one marker per media item', async () => {
    await expect(runtime.generate({ prompt: PROMPT, media: image(), maxTokens: 4 })).rejects.toThrow(
      /0 <__media__> markers for 1 media items/,
    );
  });

  it('names a media file it cannot read, and generates afterwards', async () => {
    const missing = join(dir, 'gone.jpg');
    await expect(
      runtime.generate({ prompt: imagePrompt, media: [{ kind: 'image', path: missing }], maxTokens: 4 }),
    ).rejects.toThrow(missing);
    await expectGenerates(runtime, { prompt: imagePrompt, media: image() });
  });

  it('rejects a prompt past the context instead of aborting the process, and generates afterwards', async () => {
    // llama.node's own answer to such a prompt ends the process or leaves the context unusable
    await expect(
      runtime.generate({ prompt: turn(`${MEDIA_MARKER}${words(200)}`), media: image(), maxTokens: 4 }),
    ).rejects.toThrow(/the prompt needs \d+ tokens \(media included\) but the context holds 512/);
    await expectGenerates(runtime, { prompt: imagePrompt, media: image() });
  });

  it('takes an image prompt longer than a batch when the context holds it', async () => {
    await runtime.load(options('llama.node', { mmprojPath: files.projector, contextSize: 1024 }));
    const result = await expectGenerates(runtime, {
      prompt: turn(`${words(100)}${MEDIA_MARKER}${words(100)}`),
      media: image(),
    });
    expect(result.promptTokens).toBeGreaterThan(512);
  });

  it('refuses schemas that would end or hang the process, and generates afterwards', async () => {
    const schemas = [
      { type: 'object', properties: { a: { type: 'strnig' } } },
      { type: 'string', pattern: 'abc' },
      { type: 'string', minLength: 5, maxLength: 2 },
      { type: 'object', properties: { a: { $ref: '#/$defs/none' } } },
    ];
    for (const schema of schemas) {
      await expect(runtime.generate({ prompt: PROMPT, schema, maxTokens: 8 })).rejects.toThrow(
        /cannot turn the JSON schema into a grammar/,
      );
    }
    await expectGenerates(runtime);
  });

  it('serves text when the projector is not a pair for the model, and says why', async () => {
    const info = await runtime.load(options('llama.node', { mmprojPath: files.wrongProjector }));
    expect(info.capabilities).toEqual({ text: true, image: false, audio: false });
    expect(info.projectorError).toBe(
      'projector mmproj-48.gguf gives 48-wide embeddings but tiny.gguf expects 64: they are not a pair',
    );
    const error = await runtime
      .generate({ prompt: imagePrompt, media: image(), maxTokens: 4 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CapabilityError);
    expect((error as Error).message).toContain(info.projectorError);
    await expectGenerates(runtime);
  });

  it('serves text when the projector file is missing, and names it', async () => {
    const missing = join(dir, 'no-mmproj.gguf');
    const info = await runtime.load(options('llama.node', { mmprojPath: missing }));
    expect(info.capabilities.image).toBe(false);
    expect(info.projectorError).toContain(missing);
    await expectGenerates(runtime);
  });

  it('refuses a model file that is not GGUF instead of crashing', async () => {
    await expect(runtime.load(options('llama.node', { modelPath: files.image }))).rejects.toThrow(
      /frame\.jpg: not a GGUF file/,
    );
  });
});

describe('llama.node runtime with an audio projector', { timeout: MODEL_TIMEOUT }, () => {
  const runtime = new LlamaNodeRuntime();
  const audioPrompt = turn(`${MEDIA_MARKER}What does the pump sound like? Report as JSON.`);
  const audio = () => [{ kind: 'audio' as const, path: files.audio }];
  const image = () => [{ kind: 'image' as const, path: files.image }];
  /** libmtmd pads a 2 s clip to two 30 s chunks of 15 embeddings each with the tiny projector */
  const AUDIO_TOKENS = 30;
  afterAll(() => runtime.unload());

  it('takes audio and answers about a WAV in JSON', async () => {
    const info = await runtime.load(options('llama.node', { mmprojPath: files.audioProjector }));
    expect(info.capabilities).toEqual({ text: true, image: false, audio: true });
    expect(info.projectorError).toBeUndefined();

    const withAudio = await runtime.generate({
      prompt: audioPrompt,
      media: audio(),
      schema: SCHEMA,
      maxTokens: 96,
    });
    expect(matchesSchema(JSON.parse(withAudio.text))).toBe(true);
    expect(withAudio.stopReason).toBe('end');
    const without = await runtime.generate({
      prompt: audioPrompt.replace(MEDIA_MARKER, ''),
      schema: SCHEMA,
      maxTokens: 96,
    });
    // the clip's embeddings plus voxtral's [BEGIN_AUDIO] text
    expect(withAudio.promptTokens).toBeGreaterThan(without.promptTokens + AUDIO_TOKENS);
  });

  it('stops an audio generation at maxTokens', async () => {
    const result = await runtime.generate({ prompt: audioPrompt, media: audio(), maxTokens: 5 });
    expect(result).toMatchObject({ tokens: 5, stopReason: 'maxTokens' });
  });

  it('refuses an image, saying the projector has no vision encoder', async () => {
    const error = await runtime
      .generate({ prompt: turn(`${MEDIA_MARKER}What is in the frame?`), media: image(), maxTokens: 4 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CapabilityError);
    expect(error).toMatchObject({ name: 'CapabilityError', capability: 'image' });
    expect((error as Error).message).toMatch(/mmproj-audio\.gguf has no image encoder/);
    await expectGenerates(runtime, { prompt: audioPrompt, media: audio() });
  });

  it('refuses audio on a vision-only projector, saying what to configure', async () => {
    const info = await runtime.load(options('llama.node', { mmprojPath: files.projector }));
    expect(info.capabilities).toEqual({ text: true, image: true, audio: false });
    const error = await runtime
      .generate({ prompt: audioPrompt, media: audio(), maxTokens: 4 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CapabilityError);
    expect(error).toMatchObject({ name: 'CapabilityError', capability: 'audio' });
    expect((error as Error).message).toMatch(
      /mmproj\.gguf has no audio encoder: set model\.mmproj \(OUTPOST_MMPROJ\) to an audio projector/,
    );
    await expectGenerates(runtime, { prompt: turn(`${MEDIA_MARKER}What is in the frame?`), media: image() });
  });

  it('takes images and audio, apart and together, from one projector file', async () => {
    const info = await runtime.load(options('llama.node', { mmprojPath: files.bothProjector }));
    expect(info.capabilities).toEqual({ text: true, image: true, audio: true });
    expect(info.projectorError).toBeUndefined();

    const heard = await runtime.generate({
      prompt: audioPrompt,
      media: audio(),
      schema: SCHEMA,
      maxTokens: 96,
    });
    expect(matchesSchema(JSON.parse(heard.text))).toBe(true);
    const seen = await runtime.generate({
      prompt: turn(`${MEDIA_MARKER}What is in the frame? Report as JSON.`),
      media: image(),
      schema: SCHEMA,
      maxTokens: 96,
    });
    expect(matchesSchema(JSON.parse(seen.text))).toBe(true);
    const both = await runtime.generate({
      prompt: turn(`${MEDIA_MARKER} ${MEDIA_MARKER}What happened? Report as JSON.`),
      media: [...image(), ...audio()],
      schema: SCHEMA,
      maxTokens: 96,
    });
    expect(matchesSchema(JSON.parse(both.text))).toBe(true);
    // the image's 4 embeddings and the clip's 30
    expect(both.promptTokens).toBeGreaterThan(4 + AUDIO_TOKENS);
  });
});
