/**
 * Model tier for audio: spoken clips (espeak-ng) through the real gateway into the real worker. A text
 * model alone cannot hear: the clips wait in `waiting-capability`; once a generated voxtral-type audio
 * projector is there, the same model is reloaded with it (@fugood/llama.node, libmtmd) and the waiting jobs
 * run into schema-valid results. No mock of any runtime.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioTask, validationSchema } from '../../src/inference/index.js';
import type { ResultMessage } from '../../src/publish/index.js';
import { writeTinyAudioProjector } from '../fixtures/gguf/audioProjector.js';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import { type Collector, collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const MODEL_WAIT = 90_000;
let dir: string;
let model: string;
let projector: string;
let gateway: TestGateway | undefined;
let observer: Collector | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-hear-'));
  model = (await writeTinyGemma3n(join(dir, 'tiny.gguf'), { size: 'small' })).path;
  projector = (await writeTinyAudioProjector(join(dir, 'mmproj-audio.gguf'), { projectionDim: 64 })).path;
});

afterAll(async () => {
  await observer?.end();
  if (gateway) expect(await gateway.stop()).toBe(0);
});

/** A spoken phrase between two seconds of silence, 16 kHz mono. */
function spoken(name: string, words: string): Buffer {
  const raw = join(dir, `${name}-speech.wav`);
  const out = join(dir, `${name}.wav`);
  execFileSync('espeak-ng', ['-w', raw, words]);
  execFileSync('sox', [raw, '-r', '16000', out, 'pad', '1', '1'], { stdio: 'ignore' });
  return readFileSync(out);
}

const audioJobs = () =>
  gateway!.sql<{ state: string; reason: string | null }>(
    "SELECT state, reason FROM jobs WHERE kind = 'audio' ORDER BY rowid",
  );

describe('audio jobs through libmtmd', { timeout: 120_000 }, () => {
  it('wait while the model cannot hear, and run once it can: schema-valid results with a translation', async () => {
    const later = join(dir, 'later', 'mmproj.gguf');
    gateway = await startGateway({
      OUTPOST_MODEL: model,
      OUTPOST_MMPROJ: later,
      OUTPOST_AUDIO_LANGUAGE: 'de',
      OUTPOST_MODEL_CONTEXT_SIZES: '[2048]',
      OUTPOST_MODEL_MAX_TOKENS: '1500',
      OUTPOST_MODEL_THREADS: '1',
      OUTPOST_MODEL_RESERVE: '0',
      OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
      OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
    });
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    const client = await publisher(gateway.mqttUrl);
    await client.publishAsync('audio/shed/clip', spoken('a', 'the pump is leaking'), { qos: 1 });
    await client.publishAsync('audio/shed/clip', spoken('b', 'call the night shift now'), { qos: 1 });
    await client.endAsync();

    await waitFor(
      'both clips to wait for a model that hears',
      () => audioJobs().filter((j) => j.state === 'waiting-capability').length === 2,
      MODEL_WAIT,
    );
    expect(audioJobs()[0]!.reason).toMatch(/takes no audio: the projector file .* is not there/);
    const status = (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as {
      model: { capabilities: { audio: boolean } };
      jobs: { waiting: { state: string; kind: string; reason: string; jobs: number }[] };
    };
    expect(status.model.capabilities.audio).toBe(false);
    expect(status.jobs.waiting).toEqual([
      {
        state: 'waiting-capability',
        kind: 'audio',
        reason: expect.stringMatching(/^the resident model takes no audio: /),
        jobs: 2,
      },
    ]);

    mkdirSync(dirname(later));
    copyFileSync(projector, `${later}.part`);
    renameSync(`${later}.part`, later);
    await waitFor(
      'both results',
      () => observer!.on('outpost/gw-test/results/audio/shed').length === 2,
      MODEL_WAIT,
    );
    const valid = new Ajv({ strict: false }).compile(validationSchema(audioTask('de').schema));
    for (const result of observer.json<ResultMessage>('outpost/gw-test/results/audio/shed')) {
      expect(result.kind).toBe('audio');
      expect(valid(result.output)).toBe(true);
      expect(Object.keys(result.output)).toContain('translation');
      // The clip is the result's media, served as WAV.
      const media = await fetch(`${gateway.httpUrl}${result.media}`);
      expect(media.headers.get('content-type')).toBe('audio/wav');
      expect(
        Buffer.from(await media.arrayBuffer())
          .subarray(0, 4)
          .toString(),
      ).toBe('RIFF');
    }
    expect(audioJobs().map((j) => j.state)).toEqual(['done', 'done']);
  });
});
