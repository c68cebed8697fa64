/**
 * Fault tier: real daemon processes (`outpost start` through tsx), a real mosquitto, a real model worker
 * with a tiny generated gemma3n, loopback only. Each test is bounded in time and prints what it measured.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/common/index.js';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import { gaussian } from '../helpers/gateway.js';
import { freePort, type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { type GatewayProcess, spawnGateway } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

let model: string;

/** What the gateway logged from the moment it began to stop: why a stop failed. */
const stopLog = (output: string) =>
  output.slice(output.indexOf('stopping: intake paused') - 80).slice(0, 6000);

beforeAll(async () => {
  model = (
    await writeTinyGemma3n(join(mkdtempSync(join(tmpdir(), 'outpost-faults-')), 'tiny.gguf'), {
      size: 'small',
    })
  ).path;
});

/** Fast model jobs, quick reconnects, anomalies from a short baseline. */
const faultEnv = (dataDir: string, httpPort: number, env: Record<string, string>) => ({
  OUTPOST_DATA_DIR: dataDir,
  OUTPOST_HTTP_PORT: String(httpPort),
  OUTPOST_GATEWAY_ID: 'gw',
  OUTPOST_MODEL: model,
  OUTPOST_MODEL_CONTEXT_SIZES: '[256]',
  OUTPOST_MODEL_THREADS: '1',
  OUTPOST_MODEL_RESERVE: '0',
  OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
  OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
  OUTPOST_MQTT_RECONNECT_MIN: '0.3',
  OUTPOST_MQTT_RECONNECT_MAX: '1',
  ...env,
});

function sql<T>(dataDir: string, query: string): T[] {
  const db = new Database(join(dataDir, 'outpost.db'), { readonly: true });
  try {
    return db.prepare(query).all() as T[];
  } finally {
    db.close();
  }
}

async function ready(httpPort: number, timeoutMs = 60_000) {
  await waitFor(
    'the gateway to be ready',
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok;
      } catch {
        return false;
      }
    },
    timeoutMs,
  );
}

async function status(httpPort: number) {
  const response = await fetch(`http://127.0.0.1:${httpPort}/api/status`);
  return (await response.json()) as {
    queues: { journalPending: number; outbox: { messages: number } };
    jobs: Record<string, number>;
  };
}

/**
 * The n-th message of a run, stamped `base + n` ms: the stamp identifies it, so losses and duplicates can be
 * counted in the readings. Every 400th reading of a device is far outside its baseline (an anomaly).
 */
function reading(n: number, base: number, noise: () => number, every = 400) {
  const device = `dev${n % 20}`;
  const value = Math.floor(n / 20) % every === every - 1 ? 10_000 + n : 20 + noise();
  return { topic: `sensors/${device}/load`, payload: JSON.stringify({ value, ts: base + n }) };
}

describe('faults under load', () => {
  let gateway: GatewayProcess | undefined;
  let broker: Mosquitto | undefined;
  const clients: mqtt.MqttClient[] = [];

  afterEach(async () => {
    gateway?.child.kill('SIGKILL');
    for (const client of clients.splice(0)) await client.endAsync(true);
    await broker?.stop(true);
    gateway = undefined;
    broker = undefined;
  });

  it('broker SIGKILLed for 30 s under 10k QoS 1 messages: every result and event published once, outbox empty', async () => {
    broker = await startMosquitto();
    const dataDir = mkdtempSync(join(tmpdir(), 'outpost-brokerkill-'));
    const httpPort = await freePort();
    gateway = spawnGateway(faultEnv(dataDir, httpPort, { OUTPOST_MQTT_URL: broker.url }), dataDir);
    await ready(httpPort);

    // The operator's consumer: a persistent session, so what comes while it reconnects waits for it.
    const seen = new Map<string, number>();
    const consumer = await mqtt.connectAsync(broker.url, {
      clientId: 'ops-consumer',
      clean: false,
      reconnectPeriod: 200,
    });
    clients.push(consumer);
    consumer.on('message', (topic, payload) => {
      const { id } = JSON.parse(payload.toString()) as { id: string | number };
      const key = `${topic.split('/')[2]}:${id}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    });
    await consumer.subscribeAsync(['outpost/gw/results/#', 'outpost/gw/events/#'], { qos: 1 });

    const sensor = await mqtt.connectAsync(broker.url, {
      clientId: 'field-sensors',
      clean: false,
      reconnectPeriod: 200,
    });
    clients.push(sensor);
    const noise = gaussian(3);
    const total = 10_000;
    const acked: Promise<unknown>[] = [];
    const started = Date.now();
    const base = started - total;
    let killedAt = 0;
    let restartedAt = 0;
    // 10k messages over about 30 s; the broker goes down at 6 s for 30 s. Publishes made while it is away
    // wait in the sensor client's queue, as a real sensor's would.
    for (let n = 0; n < total; n++) {
      const { topic, payload } = reading(n, base, noise);
      acked.push(sensor.publishAsync(topic, payload, { qos: 1 }));
      if (n % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 300));
      if (!killedAt && Date.now() - started > 6000) {
        // Let an autosave of the broker's sessions pass, as a broker that ran a while would have had.
        await new Promise((resolve) => setTimeout(resolve, 1200));
        await broker.stop(true);
        killedAt = Date.now();
      }
      if (killedAt && !restartedAt && Date.now() - killedAt > 30_000) {
        await broker.restart();
        restartedAt = Date.now();
      }
    }
    if (!restartedAt) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 30_000 - (Date.now() - killedAt))));
      await broker.restart();
      restartedAt = Date.now();
    }
    await Promise.all(acked);

    // Settled: nothing left to process, to run or to send.
    await waitFor(
      'the gateway settled',
      async () => {
        const s = await status(httpPort);
        const open = (s.jobs.queued ?? 0) + (s.jobs.running ?? 0) + (s.jobs['waiting-model'] ?? 0);
        return s.queues.journalPending === 0 && s.queues.outbox.messages === 0 && open === 0;
      },
      150_000,
    );
    const results = sql<{ id: string }>(dataDir, 'SELECT id FROM results').map((r) => `results:${r.id}`);
    const events = sql<{ id: number }>(dataDir, 'SELECT id FROM events').map((r) => `events:${r.id}`);
    await waitFor('every result and event at the consumer', () =>
      [...results, ...events].every((key) => seen.has(key)),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000)); // late duplicates would arrive by now
    const readings = sql<{ n: number }>(dataDir, 'SELECT count(*) AS n FROM readings')[0]!.n;
    const duplicates = [...seen].filter(([, count]) => count > 1);
    console.log(
      `broker down ${((restartedAt - killedAt) / 1000).toFixed(0)} s: ${readings}/${total} readings stored, ` +
        `${results.length} results and ${events.length} events, each received once: ${duplicates.length === 0}`,
    );
    expect(results.length).toBeGreaterThan(5);
    expect(events.length).toBeGreaterThan(5);
    expect(duplicates).toEqual([]);
    expect(seen.size).toBe(results.length + events.length);
    // mosquitto acknowledges before its own disk write (autosave every second): what it acknowledged in
    // its last second dies with it. Everything it delivered, the gateway kept.
    expect(readings).toBeGreaterThan(total - 200);
    const journal = sql<{ n: number }>(dataDir, 'SELECT count(*) AS n FROM journal')[0]!.n;
    expect(journal).toBe(readings);
    gateway.child.kill('SIGTERM');
    const code = await gateway.exited;
    expect(code, stopLog(gateway.output())).toBe(0);
  }, 300_000);

  it('daemon SIGKILLed 10 times under load: every acknowledged message stored once, every job one result', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'outpost-sigkill-'));
    const [httpPort, brokerPort] = [await freePort(), await freePort()];
    // The embedded broker: a sensor's PUBACK means its message is committed to the journal.
    const env = faultEnv(dataDir, httpPort, { OUTPOST_BROKER_PORT: String(brokerPort) });
    gateway = spawnGateway(env, dataDir);
    await ready(httpPort);

    const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, {
      clientId: 'field-sensors',
      clean: false,
      reconnectPeriod: 100,
      protocolVersion: 4,
    });
    clients.push(sensor);
    const noise = gaussian(5);
    const random = mulberry32(42);
    const total = 4000;
    const base = Date.now() - total;
    const ackedAt: number[] = [];
    const refused: number[] = [];
    const all: Promise<unknown>[] = [];
    let sent = 0;
    const pump = (async () => {
      for (; sent < total; sent++) {
        const { topic, payload } = reading(sent, base, noise, 100);
        const n = sent;
        // mqtt.js fails a publish it had not sent yet when the connection drops while it replays its
        // store: never acknowledged, so the sensor knows it was not taken (a real one sends it again).
        all.push(
          sensor.publishAsync(topic, payload, { qos: 1 }).then(
            () => ackedAt.push(n),
            () => refused.push(n),
          ),
        );
        // About 100 a second: the load lasts through the ten kills.
        if (sent % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const kills: number[] = [];
    for (let k = 0; k < 10; k++) {
      await new Promise((resolve) => setTimeout(resolve, 300 + random() * 1500));
      if (k % 2 === 1) {
        // Every other kill lands mid-job when one runs within a few seconds: that job must resume.
        const running = () =>
          sql<{ n: number }>(dataDir, "SELECT count(*) AS n FROM jobs WHERE state = 'running'")[0]!.n > 0;
        await waitFor('a job running', running, 4000).catch(() => undefined);
      }
      gateway.child.kill('SIGKILL');
      await gateway.exited;
      kills.push(ackedAt.length);
      gateway = spawnGateway(env, dataDir);
      await ready(httpPort);
    }
    await pump;
    await Promise.all(all);
    await waitFor(
      'the gateway settled',
      async () => {
        const s = await status(httpPort);
        const open = (s.jobs.queued ?? 0) + (s.jobs.running ?? 0) + (s.jobs['waiting-model'] ?? 0);
        return s.queues.journalPending === 0 && open === 0;
      },
      150_000,
    );

    const stored = sql<{ n: number }>(dataDir, `SELECT ts - ${base} AS n FROM readings`);
    const readings = sql<{ c: number }>(dataDir, 'SELECT count(*) AS c FROM readings')[0]!.c;
    const counts = new Map<number, number>();
    for (const { n } of stored) counts.set(n, (counts.get(n) ?? 0) + 1);
    const missing = ackedAt.filter((n) => !counts.has(n));
    const twice = [...counts].filter(([, c]) => c > 1);
    const jobs = sql<{ state: string; n: number }>(
      dataDir,
      'SELECT state, count(*) AS n FROM jobs GROUP BY state',
    );
    const perJob = sql<{ id: string; results: number }>(
      dataDir,
      "SELECT j.id, (SELECT count(*) FROM results r WHERE r.id = j.id) AS results FROM jobs j WHERE j.state = 'done'",
    );
    const resumed = sql<{ n: number }>(dataDir, 'SELECT count(*) AS n FROM jobs WHERE attempts > 1')[0]!.n;
    console.log(
      `10 SIGKILLs (after ${kills.join(', ')} acks): ${ackedAt.length} acknowledged, ${refused.length} ` +
        `refused by the client, ${readings} readings, ` +
        `${missing.length} missing, ${twice.length} twice; jobs ${JSON.stringify(jobs)}, ${resumed} ran again after a kill`,
    );
    expect(ackedAt.length + refused.length).toBe(total);
    expect(ackedAt.length).toBeGreaterThan(total / 2);
    expect(missing).toEqual([]);
    expect(twice).toEqual([]);
    // What was refused was never sent: nothing of it may be stored either.
    expect(readings).toBe(ackedAt.length);
    expect(jobs.every((j) => j.state === 'done')).toBe(true);
    expect(perJob.length).toBeGreaterThan(0);
    expect(perJob.every((j) => j.results === 1)).toBe(true);
    gateway.child.kill('SIGTERM');
    const code = await gateway.exited;
    expect(code, stopLog(gateway.output())).toBe(0);
  }, 360_000);
});
