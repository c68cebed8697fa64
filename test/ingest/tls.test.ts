import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificates } from '../helpers/certificates.js';
import { startGateway } from '../helpers/gateway.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

describe('external broker over mqtts with a client certificate and a password', () => {
  let broker: Mosquitto;
  let file: (name: string) => string;

  beforeAll(async () => {
    file = makeCertificates(mkdtempSync(join(tmpdir(), 'outpost-tls-')));
    broker = await startMosquitto({
      listener: [
        `cafile ${file('ca.crt')}`,
        `certfile ${file('server.crt')}`,
        `keyfile ${file('server.key')}`,
        'require_certificate true',
        `password_file ${file('passwd')}`,
        'allow_anonymous false',
      ],
    });
  });
  afterAll(() => broker.stop());

  const tlsEnv = (password: string) => ({
    OUTPOST_MQTT_URL: broker.url,
    OUTPOST_MQTT_CA: file('ca.crt'),
    OUTPOST_MQTT_CERT: file('client.crt'),
    OUTPOST_MQTT_KEY: file('client.key'),
    OUTPOST_MQTT_USERNAME: 'gateway',
    OUTPOST_MQTT_PASSWORD: password,
  });

  it('connects, subscribes and stores what a TLS sensor publishes', async () => {
    expect(broker.url).toMatch(/^mqtts:/);
    const gateway = await startGateway(tlsEnv('correct-horse'));
    try {
      const sensor = await mqtt.connectAsync(broker.url, {
        ca: readFileSync(file('ca.crt')),
        cert: readFileSync(file('client.crt')),
        key: readFileSync(file('client.key')),
        username: 'gateway',
        password: 'correct-horse',
      });
      await sensor.publishAsync('sensors/tank/level', '{"value": 0.73, "unit": "m"}', { qos: 1 });
      await sensor.endAsync();
      await waitFor('the reading', () => gateway.sql('SELECT * FROM readings').length === 1);
      expect(gateway.sql('SELECT value FROM readings')).toEqual([{ value: 0.73 }]);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });

  it('reports a refused password in its status and keeps running', async () => {
    const gateway = await startGateway(tlsEnv('wrong'), { waitConnected: false });
    try {
      const status = await waitFor('the refusal in the status', async () => {
        const s = (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as {
          broker: { connected: boolean; lastError: string | null };
        };
        return s.broker.lastError ? s : undefined;
      });
      expect(status.broker.connected).toBe(false);
      expect(status.broker.lastError).toMatch(/not authori[sz]ed|bad user ?name or password/i);
      expect(JSON.stringify(status)).not.toContain('wrong'); // the password is never shown
      expect((await fetch(`${gateway.httpUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${gateway.httpUrl}/healthz`)).status).toBe(200);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});
