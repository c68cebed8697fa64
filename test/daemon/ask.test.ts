/**
 * Asking the gateway (POST /api/ask and the MQTT `ask` request) through the real daemon: with the tiny
 * generated model the answer names only findings it was offered; without a model the question times out
 * with the reason; with inference off there is nothing to ask.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import { gaussian, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

let model: string;
let gateway: TestGateway | undefined;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-ask-'));
  model = (await writeTinyGemma3n(join(dir, 'tiny.gguf'), { size: 'small' })).path;
});

afterEach(async () => {
  if (gateway) expect(await gateway.stop()).toBe(0);
  gateway = undefined;
});

const ask = async (body: unknown) => {
  const response = await fetch(`${gateway!.httpUrl}/api/ask`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

describe('ask the gateway', { timeout: 120_000 }, () => {
  it('answers from the stored findings, naming only those it was offered, over HTTP and MQTT', async () => {
    gateway = await startGateway({
      OUTPOST_MODEL: model,
      OUTPOST_MODEL_CONTEXT_SIZES: '[2048]',
      OUTPOST_MODEL_MAX_TOKENS: '1500',
      OUTPOST_MODEL_THREADS: '1',
      OUTPOST_MODEL_RESERVE: '0',
      OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
      OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
      OUTPOST_SENSORS_ANOMALY_COOLDOWN: '0.001',
    });
    const sensor = await publisher(gateway.mqttUrl);
    const noise = gaussian(3);
    const start = Date.now() - 30_000;
    for (let i = 0; i < 26; i++) {
      const value = i === 25 ? 500 : 20 + noise();
      await sensor.publishAsync(
        'sensors/pump1/temperature',
        JSON.stringify({ value, ts: start + i * 1000 }),
        {
          qos: 1,
        },
      );
    }
    await sensor.endAsync();
    await waitFor(
      'the explanation',
      () => gateway!.sql("SELECT 1 FROM results WHERE kind = 'anomaly'").length === 1,
      60_000,
    );
    const [finding] = gateway.sql<{ id: string }>("SELECT id FROM results WHERE kind = 'anomaly'");

    const { status, body } = await ask({ question: 'What happened to the pump1 temperature?' });
    expect(status).toBe(200);
    expect(typeof body.answer).toBe('string');
    expect(body.offered).toBeGreaterThanOrEqual(1);
    for (const id of body.results as string[]) expect(id).toBe(finding!.id);
    expect(gateway.sql('SELECT state FROM jobs WHERE id = ?', body.job)).toEqual([{ state: 'done' }]);
    // Only frames: there are none, so nothing is offered.
    const frames = await ask({ question: 'What happened to the pump1 temperature?', kinds: ['frame'] });
    expect([frames.status, frames.body.offered, frames.body.results]).toEqual([200, 0, []]);
    // What the jobs took, in the Prometheus text.
    const metrics = await (await fetch(`${gateway.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^outpost_job_duration_seconds_count\{kind="explain"\} 1$/m);
    expect(metrics).toMatch(/^outpost_jobs\{state="done"\} [1-9]/m);

    // The same question over MQTT, with a transaction echoed.
    const client = await mqtt.connectAsync(gateway.mqttUrl, { protocolVersion: 4 });
    const answers: Record<string, unknown>[] = [];
    client.on('message', (_topic, payload) =>
      answers.push(JSON.parse(payload.toString()) as Record<string, unknown>),
    );
    await client.subscribeAsync('outpost/gw-test/response/ask', { qos: 1 });
    await client.publishAsync(
      'outpost/gw-test/request/ask',
      JSON.stringify({ transaction: 'q-1', question: 'pump1 temperature' }),
      { qos: 1 },
    );
    await waitFor('the MQTT answer', () => answers.length === 1, 60_000);
    expect(answers[0]).toMatchObject({
      status: 'ok',
      transaction: 'q-1',
      result: { answer: expect.any(String) },
    });
    await client.endAsync();
  });

  it('times out with the reason when no model is resident, and refuses an empty question', async () => {
    gateway = await startGateway({
      OUTPOST_INFERENCE_ASK_TIMEOUT: '0.5',
      OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
    });
    expect((await ask({ question: '' })).status).toBe(400);
    const { status, body } = await ask({ question: 'anything?' });
    expect(status).toBe(504);
    expect(body.message).toMatch(
      /no answer within inference.askTimeout \(waiting-model: no model configured/,
    );
    expect(gateway.sql("SELECT state FROM jobs WHERE kind = 'ask'")).toEqual([{ state: 'dropped' }]);
  });

  it('has nothing to ask with inference off', async () => {
    gateway = await startGateway({ OUTPOST_INFERENCE_ENABLED: 'false' });
    expect((await ask({ question: 'anything?' })).status).toBe(503);
  });
});
