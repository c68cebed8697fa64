/**
 * Model tier: the real worker process and node-llama-cpp runtime with tiny generated gemma3n models (no
 * mock of the runtime). Only the memory readings are injected, to drive the governor.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MemorySample } from '../../src/inference/index.js';
import type { ResultMessage } from '../../src/publish/index.js';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import {
  type Collector,
  collect,
  gaussian,
  publisher,
  startGateway,
  type TestGateway,
} from '../helpers/gateway.js';
import { modelEnv, writeTinyModels } from '../helpers/models.js';
import { waitFor } from '../helpers/wait.js';

const MB = 1024 * 1024;
let models: { small: string; large: string };

beforeAll(async () => {
  models = await writeTinyModels('outpost-models-');
});

/** 25 normal readings of a device, then one far outside: one anomaly event, one explain job. */
async function raiseAnomaly(gateway: TestGateway, device: string, spacingMs = 1000) {
  const sensor = await publisher(gateway.mqttUrl);
  const noise = gaussian(device.length);
  const start = Date.now() - 26 * spacingMs;
  for (let i = 0; i < 26; i++) {
    const value = i === 25 ? 500 : 20 + noise();
    await sensor.publishAsync(
      `sensors/${device}/temperature`,
      JSON.stringify({ value, unit: 'C', ts: start + i * spacingMs }),
      {
        qos: 1,
      },
    );
  }
  await sensor.endAsync();
}

const status = async (gateway: TestGateway) =>
  (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as {
    model: {
      state: string;
      reason: string | null;
      variant: string | null;
      worker: { pid: number | null; crashes: number };
    };
    jobs: Record<string, number>;
  };

describe('model jobs through the real runtime', () => {
  let gateway: TestGateway | undefined;
  let observer: Collector | undefined;

  afterEach(async () => {
    await observer?.end();
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
    observer = undefined;
  });

  it('explains an anomaly: schema-valid result stored and published once, with model and variant named', async () => {
    gateway = await startGateway(modelEnv({ OUTPOST_MODEL: models.small }));
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    await raiseAnomaly(gateway, 'pump1');

    await waitFor('the result on MQTT', () => observer!.messages.length === 1, 60_000);
    const [result] = observer.json<ResultMessage>('outpost/gw-test/results/anomaly/pump1');
    expect(result).toMatchObject({
      kind: 'anomaly',
      source: 'pump1',
      model: 'tiny-small.gguf',
      variant: 'tiny-small.gguf',
    });
    expect(Object.keys(result!.output).sort()).toEqual(['action', 'likelyCause', 'severity', 'summary']);
    expect(['info', 'warning', 'critical']).toContain(result!.output.severity);
    for (const key of ['summary', 'likelyCause', 'action']) {
      expect(typeof result!.output[key]).toBe('string');
      expect((result!.output[key] as string).length).toBeLessThanOrEqual(160);
    }
    const rows = gateway.sql<{ id: string; output: string; model: string }>(
      'SELECT id, output, model FROM results',
    );
    expect(rows).toEqual([
      { id: result!.id, output: JSON.stringify(result!.output), model: 'tiny-small.gguf' },
    ]);
    expect(gateway.sql('SELECT state, attempts FROM jobs')).toEqual([{ state: 'done', attempts: 1 }]);
  });

  it('follows the memory budget: smaller file when it drops, larger back after it held, unloads below all', async () => {
    let available = 100 * MB;
    const sample = (): MemorySample => ({ memAvailable: available, total: 1024 * MB });
    gateway = await startGateway(
      modelEnv({ OUTPOST_MODEL: models.large, OUTPOST_MODEL_VARIANTS: JSON.stringify([models.small]) }),
      {
        memoryProbe: { sample },
        workerRss: () => 0,
      },
    );
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    const variants = () => observer!.json<ResultMessage>('outpost/gw-test/results/').map((r) => r.variant);

    await raiseAnomaly(gateway, 'd1');
    await waitFor('job 1', () => variants().length === 1, 60_000);
    expect(variants()).toEqual(['tiny-large.gguf']);

    available = 20 * MB; // the large one (corrected by what its worker really used) no longer fits
    await raiseAnomaly(gateway, 'd2');
    await waitFor('job 2', () => variants().length === 2, 60_000);
    expect(variants()[1]).toBe('tiny-small.gguf');

    available = 100 * MB; // room again: not at once (hysteresis) ...
    await raiseAnomaly(gateway, 'd3');
    await waitFor('job 3', () => variants().length === 3, 60_000);
    expect(variants()[2]).toBe('tiny-small.gguf');
    await new Promise((resolve) => setTimeout(resolve, 400)); // ... but once it has held
    await raiseAnomaly(gateway, 'd4');
    await waitFor('job 4', () => variants().length === 4, 60_000);
    expect(variants()[3]).toBe('tiny-large.gguf');

    available = 1 * MB; // below every variant: unloaded, the job waits, visibly
    await raiseAnomaly(gateway, 'd5');
    await waitFor(
      'the job waiting',
      async () => (await status(gateway!)).jobs['waiting-model'] === 1,
      30_000,
    );
    expect((await status(gateway)).model.state).toBe('over-budget');
    available = 100 * MB;
    await waitFor('job 5 after memory returned', () => variants().length === 5, 60_000);
    expect(gateway.sql('SELECT state, count(*) AS n FROM jobs GROUP BY state')).toEqual([
      { state: 'done', n: 5 },
    ]);
    expect(gateway.sql<{ n: number }>('SELECT count(*) AS n FROM results')[0]!.n).toBe(5);
  });

  it('a worker killed mid-job is restarted and the job completes once', async () => {
    gateway = await startGateway(modelEnv({ OUTPOST_MODEL: models.small }));
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    await raiseAnomaly(gateway, 'warmup');
    await waitFor('the model resident', () => observer!.messages.length === 1, 60_000);
    const { pid } = (await status(gateway)).model.worker;
    expect(pid).toBeGreaterThan(0);
    // The OOM killer's first choice is the worker, not the daemon.
    expect(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()).toBe('500');

    // Frozen, the worker takes the next job and cannot answer: it is mid-job when it is killed.
    process.kill(pid!, 'SIGSTOP');
    await raiseAnomaly(gateway, 'pump9');
    await waitFor(
      'the job running',
      () => gateway!.sql<{ n: number }>("SELECT count(*) AS n FROM jobs WHERE state = 'running'")[0]!.n === 1,
    );
    process.kill(pid!, 'SIGKILL');

    await waitFor('the retried job done', () => observer!.messages.length === 2, 60_000);
    const after = await status(gateway);
    expect(after.model.worker.pid).not.toBe(pid);
    expect(after.model.worker.crashes).toBe(1);
    expect(observer.json<ResultMessage>('outpost/gw-test/results/anomaly/pump9')).toHaveLength(1);
    const job = gateway.sql<{ state: string; attempts: number }>(
      "SELECT state, attempts FROM jobs WHERE source = 'pump9'",
    );
    expect(job).toEqual([{ state: 'done', attempts: 2 }]);
  });

  it('without a model, jobs wait in waiting-model and run when the file appears', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-later-'));
    const later = join(dir, 'arrives-later.gguf');
    gateway = await startGateway(modelEnv({ OUTPOST_MODEL: later }));
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    await raiseAnomaly(gateway, 'pump2');
    await waitFor(
      'the job waiting',
      async () => (await status(gateway!)).jobs['waiting-model'] === 1,
      30_000,
    );
    const waiting = await status(gateway);
    expect(waiting.model.state).toBe('no-model');
    expect(waiting.model.reason).toContain('arrives-later.gguf');
    expect(gateway.sql<{ reason: string }>('SELECT reason FROM jobs')[0]!.reason).toContain('check the path');

    await writeTinyGemma3n(later, { size: 'small' });
    await waitFor('the waiting job done', () => observer!.messages.length === 1, 60_000);
    expect(observer.json<ResultMessage>('outpost/gw-test/results/')[0]).toMatchObject({
      variant: 'arrives-later.gguf',
    });
  });

  it("uses a route's own prompt and schema, and writes periodic device digests", async () => {
    const routes = [
      {
        name: 'pumps',
        filter: 'sensors/+/+',
        kind: 'sensor',
        tasks: {
          explain: {
            prompt: 'Pump alarm: {{input}}',
            schema: { type: 'object', properties: { note: { type: 'string', maxLength: 20 } } },
          },
        },
      },
    ];
    gateway = await startGateway(
      modelEnv({
        OUTPOST_MODEL: models.small,
        OUTPOST_INGEST_ROUTES: JSON.stringify(routes),
        OUTPOST_INFERENCE_DIGEST_INTERVAL: '2',
      }),
    );
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    await raiseAnomaly(gateway, 'pump7', 10); // readings of the last moment: the next 2 s digest covers them

    await waitFor(
      'the explanation',
      () => observer!.on('outpost/gw-test/results/anomaly/pump7').length === 1,
      60_000,
    );
    const [explained] = observer.json<ResultMessage>('outpost/gw-test/results/anomaly/pump7');
    expect(Object.keys(explained!.output)).toEqual(['note']);
    expect((explained!.output.note as string).length).toBeLessThanOrEqual(20);

    await waitFor('a digest', () => observer!.on('outpost/gw-test/results/digest/pump7').length > 0, 60_000);
    const [digest] = observer.json<ResultMessage>('outpost/gw-test/results/digest/pump7');
    expect(Object.keys(digest!.output).sort()).toEqual(['highlights', 'status', 'summary']);
    expect(['normal', 'attention', 'fault']).toContain(digest!.output.status);
  }, 90_000);
});
