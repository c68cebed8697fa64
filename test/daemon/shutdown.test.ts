import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { collect } from '../helpers/gateway.js';
import { freePort, type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { type GatewayProcess, spawnGateway } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const storedValues = (dataDir: string): number[] => {
  const db = new Database(join(dataDir, 'outpost.db'), { readonly: true });
  try {
    return db
      .prepare<[], { value: number }>('SELECT value FROM readings')
      .all()
      .map((r) => r.value);
  } finally {
    db.close();
  }
};

async function ready(httpPort: number) {
  await waitFor(
    'the gateway to be ready',
    async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok,
    20_000,
  );
}

describe('SIGTERM under load', () => {
  let gateway: GatewayProcess | undefined;
  let broker: Mosquitto | undefined;

  afterEach(async () => {
    gateway?.child.kill('SIGKILL');
    await broker?.stop();
    gateway = undefined;
    broker = undefined;
  });

  it('embedded broker: publishes stopping, exits 0 within 5 s, every acknowledged message is stored', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'outpost-sigterm-'));
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    gateway = spawnGateway(
      {
        OUTPOST_DATA_DIR: dataDir,
        OUTPOST_BROKER_PORT: String(mqttPort),
        OUTPOST_HTTP_PORT: String(httpPort),
        OUTPOST_GATEWAY_ID: 'gw',
      },
      dataDir,
    );
    await ready(httpPort);
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    const observer = await collect(url, 'outpost/gw/status');
    const sensor = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
    sensor.on('error', () => {});

    // A sensor publishing as fast as the gateway acknowledges; remember what was acknowledged.
    const acked: number[] = [];
    let seq = 0;
    let stop = false;
    const load = (async () => {
      while (!stop && sensor.connected) {
        const batch = Array.from({ length: 50 }, () => seq++);
        await Promise.all(
          batch.map((n) =>
            sensor.publishAsync(`sensors/dev${n % 5}/load`, JSON.stringify({ value: n }), { qos: 1 }).then(
              () => acked.push(n),
              () => {},
            ),
          ),
        );
      }
    })();
    await waitFor('load to build up', () => acked.length >= 2000, 20_000);

    const signalled = Date.now();
    gateway.child.kill('SIGTERM');
    const code = await gateway.exited;
    const took = Date.now() - signalled;
    stop = true;
    sensor.end(true); // publishes the gateway never answered stay unsettled: do not wait on them
    void load;
    observer.client.end(true);

    expect(code).toBe(0);
    expect(took).toBeLessThan(5000);
    expect(observer.messages.map((m) => m.payload)).toContain('stopping');
    const stored = new Set(storedValues(dataDir));
    const missing = acked.filter((n) => !stored.has(n));
    expect(missing).toEqual([]);
    expect(stored.size).toBe(storedValues(dataDir).length); // no duplicates
    expect(gateway.output()).toContain('"msg":"stopped"');
  });

  it('mosquitto: exits 0 within 5 s mid-backlog; a restart takes the rest, each message exactly once', async () => {
    broker = await startMosquitto();
    const dataDir = mkdtempSync(join(tmpdir(), 'outpost-sigterm-'));
    const httpPort = await freePort();
    const env = {
      OUTPOST_DATA_DIR: dataDir,
      OUTPOST_MQTT_URL: broker.url,
      OUTPOST_HTTP_PORT: String(httpPort),
      OUTPOST_GATEWAY_ID: 'gw',
    };
    gateway = spawnGateway(env, dataDir);
    await ready(httpPort);
    const observer = await collect(broker.url, 'outpost/gw/status');

    const total = 20_000;
    const sensor = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
    const sent = Array.from({ length: total }, (_, n) =>
      sensor.publishAsync(`sensors/dev${n % 5}/load`, JSON.stringify({ value: n }), { qos: 1 }),
    );
    await Promise.all(sent); // mosquitto holds them all in the gateway's session queue
    await sensor.endAsync();

    const signalled = Date.now();
    gateway.child.kill('SIGTERM');
    const code = await gateway.exited;
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    await waitFor('stopping on the status topic', () =>
      observer.messages.some((m) => m.payload === 'stopping'),
    );
    const before = storedValues(dataDir).length;
    expect(before).toBeGreaterThan(0);

    // Same client id, persistent session: the broker delivers what was never acknowledged.
    gateway = spawnGateway(env, dataDir);
    await ready(httpPort);
    await waitFor('every message stored', () => storedValues(dataDir).length >= total, 60_000);
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    const values = storedValues(dataDir);
    expect(values.length).toBe(total);
    expect(new Set(values).size).toBe(total);
    await observer.end();
  }, 90_000);
});
