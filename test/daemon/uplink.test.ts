import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates } from '../helpers/certificates.js';
import { gaussian, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

interface UplinkStatus {
  connected: boolean;
  outbox: { messages: number; published: number; classes: Record<string, { messages: number }> };
}

async function status(gateway: TestGateway) {
  const response = await fetch(`${gateway.httpUrl}/api/status`);
  return (await response.json()) as { uplink: UplinkStatus; queues: { outbox: { messages: number } } };
}

/** 25 quiet readings, then one far out: one anomaly event for `device`. */
async function raiseAnomaly(url: string, device: string) {
  const sensor = await publisher(url);
  const noise = gaussian(device.length);
  const start = Date.now() - 26_000;
  for (let i = 0; i < 26; i++) {
    const value = i === 25 ? 500 : 20 + noise();
    const payload = JSON.stringify({ value, ts: start + i * 1000 });
    await sensor.publishAsync(`sensors/${device}/temperature`, payload, { qos: 1 });
  }
  await sensor.endAsync();
}

async function sendGarbage(url: string, devices: string[]) {
  const sensor = await publisher(url);
  await Promise.all(devices.map((d) => sensor.publishAsync(`sensors/${d}/x`, 'not a number', { qos: 1 })));
  await sensor.endAsync();
}

describe('fleet uplink to an upstream broker over mqtts with its own credentials', () => {
  let upstream: Mosquitto;
  let file: (name: string) => string;
  let gateway: TestGateway;
  let fleet: mqtt.MqttClient;
  const received: { topic: string; payload: string; retain: boolean }[] = [];

  beforeAll(async () => {
    file = makeCertificates(mkdtempSync(join(tmpdir(), 'outpost-uplink-')));
    upstream = await startMosquitto({
      listener: [
        `cafile ${file('ca.crt')}`,
        `certfile ${file('server.crt')}`,
        `keyfile ${file('server.key')}`,
        `password_file ${file('passwd')}`,
        'allow_anonymous false',
      ],
    });
    gateway = await startGateway({
      OUTPOST_INFERENCE_ENABLED: 'false',
      OUTPOST_UPLINK_URL: upstream.url,
      OUTPOST_UPLINK_CA: file('ca.crt'),
      OUTPOST_UPLINK_USERNAME: 'fleet',
      OUTPOST_UPLINK_PASSWORD: 'battery-staple',
      OUTPOST_UPLINK_TOPIC_PREFIX: 'fleet',
      OUTPOST_UPLINK_FORWARD: '["events","errors"]',
      OUTPOST_UPLINK_RECONNECT_MIN: '0.2',
      OUTPOST_UPLINK_RECONNECT_MAX: '1',
    });
    // The fleet's consumer: a persistent session, so what arrives while it reconnects waits for it.
    fleet = await mqtt.connectAsync(upstream.url, {
      ca: readFileSync(file('ca.crt')),
      username: 'fleet',
      password: 'battery-staple',
      clientId: 'fleet-consumer',
      clean: false,
      reconnectPeriod: 200,
    });
    fleet.on('message', (topic, payload, packet) =>
      received.push({ topic, payload: payload.toString(), retain: packet.retain }),
    );
    await fleet.subscribeAsync('fleet/#', { qos: 1 });
  });

  afterAll(async () => {
    await fleet?.endAsync();
    if (gateway) expect(await gateway.stop()).toBe(0);
    await upstream?.stop();
  });

  const on = (prefix: string) => received.filter((m) => m.topic.startsWith(prefix));

  it('forwards events and errors under its prefix (not windows), with its own retained status', async () => {
    await waitFor('the uplink online', () => on('fleet/gw-test/status').some((m) => m.payload === 'online'));
    await raiseAnomaly(gateway.mqttUrl, 'boiler');
    await sendGarbage(gateway.mqttUrl, ['bad1', 'bad2', 'bad3']);
    await waitFor(
      'the event and the errors upstream',
      () => on('fleet/gw-test/events/').length === 1 && on('fleet/gw-test/errors').length === 3,
    );
    const [event] = on('fleet/gw-test/events/boiler').map((m) => JSON.parse(m.payload) as { kind: string });
    expect(event).toMatchObject({ kind: 'anomaly', source: 'boiler' });
    expect(on('fleet/gw-test/windows')).toEqual([]);
    expect(on('fleet/gw-test/results')).toEqual([]);
    // Acknowledged messages leave the outbox on the drain's next turn: wait for it rather than race it.
    const s = await waitFor('the uplink outbox empty', async () => {
      const now = await status(gateway);
      return now.uplink.outbox.messages === 0 ? now : undefined;
    });
    expect(s.uplink).toMatchObject({ connected: true, outbox: { messages: 0 } });
    expect(s.uplink.outbox.published).toBeGreaterThanOrEqual(4);
  });

  it('holds what comes while the upstream broker is away and sends each message once when it returns', async () => {
    await upstream.stop();
    await waitFor('the uplink down', async () => !(await status(gateway)).uplink.connected);
    const bad = Array.from({ length: 50 }, (_, n) => `away${n}`);
    await raiseAnomaly(gateway.mqttUrl, 'pump');
    await sendGarbage(gateway.mqttUrl, bad);
    const held = await waitFor('51 held for upstream', async () => {
      const s = await status(gateway);
      // The local broker is there: nothing waits for it.
      return s.uplink.outbox.messages === 51 && s.queues.outbox.messages === 0 ? s : undefined;
    });
    expect(held.uplink.outbox.classes).toMatchObject({ events: { messages: 1 }, errors: { messages: 50 } });

    await upstream.restart();
    await waitFor(
      'everything upstream',
      () => on('fleet/gw-test/events/pump').length >= 1 && on('fleet/gw-test/errors').length >= 53,
      30_000,
    );
    await waitFor(
      'the uplink outbox empty',
      async () => (await status(gateway)).uplink.outbox.messages === 0,
    );
    const errors = on('fleet/gw-test/errors').map((m) => (JSON.parse(m.payload) as { topic: string }).topic);
    expect(errors).toHaveLength(53);
    expect(new Set(errors).size).toBe(53);
    expect(on('fleet/gw-test/events/')).toHaveLength(2);
  }, 60_000);
});
