import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
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
    await expect(runSimulation({ url, devices: 0 }, signal)).rejects.toThrow(/devices/);
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
});
