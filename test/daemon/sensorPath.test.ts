import { afterEach, describe, expect, it } from 'vitest';
import type { EventMessage, WindowMessage } from '../../src/publish/index.js';
import { collect, gaussian, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const brokers = [
  { name: 'embedded aedes broker', mosquitto: false },
  { name: 'real mosquitto process', mosquitto: true },
];

describe.each(brokers)('sensor path end to end on the $name', ({ mosquitto: useMosquitto }) => {
  let gateway: TestGateway | undefined;
  let broker: Mosquitto | undefined;

  afterEach(async () => {
    await gateway?.stop();
    await broker?.stop();
    gateway = undefined;
    broker = undefined;
  });

  it('stores 300 readings, raises one event for the one outlier, publishes windows', async () => {
    broker = useMosquitto ? await startMosquitto() : undefined;
    gateway = await startGateway(broker ? { OUTPOST_MQTT_URL: broker.url } : {});
    const observer = await collect(gateway.mqttUrl, 'outpost/gw-test/#');
    const sensor = await publisher(gateway.mqttUrl);

    // 300 readings one second apart, aligned so they fill five whole 60 s windows (and one 5 min bucket).
    const start = Math.floor((Date.now() - 7200_000) / 3600_000) * 3600_000;
    const noise = gaussian(42);
    for (let i = 0; i < 300; i++) {
      const value = i === 150 ? 80 : 50 + noise();
      await sensor.publishAsync(
        'sensors/pump1/temperature',
        JSON.stringify({ value, unit: 'C', ts: start + i * 1000 }),
        {
          qos: 1,
        },
      );
    }
    await sensor.endAsync();

    await waitFor(
      '300 readings',
      () => gateway!.sql<{ n: number }>('SELECT count(*) AS n FROM readings')[0]!.n === 300,
    );
    await waitFor('the anomaly event on MQTT', () => observer.on('outpost/gw-test/events/').length === 1);
    // The first four windows closed when a reading of the next window arrived.
    await waitFor('4 window results', () => observer.on('outpost/gw-test/windows/').length >= 4);

    const [event] = observer.json<EventMessage>('outpost/gw-test/events/pump1');
    expect(event).toMatchObject({
      source: 'pump1',
      kind: 'anomaly',
      ts: new Date(start + 150_000).toISOString(),
    });
    expect(event!.detail).toMatchObject({ metric: 'temperature', value: 80, unit: 'C' });
    expect(event!.message).toContain('pump1/temperature read 80 C');

    const api = (await (await fetch(`${gateway.httpUrl}/api/events`)).json()) as { events: { id: number }[] };
    expect(api.events).toHaveLength(1);
    expect(api.events[0]!.id).toBe(event!.id);

    const windows = observer.json<WindowMessage>('outpost/gw-test/windows/pump1/temperature');
    expect(windows.slice(0, 4).map((w) => [w.start, w.count])).toEqual(
      [0, 1, 2, 3].map((k) => [new Date(start + k * 60_000).toISOString(), 60]),
    );
    const plain = windows.find((w) => w.start === new Date(start).toISOString())!;
    expect(plain.mean).toBeGreaterThan(49);
    expect(plain.mean).toBeLessThan(51);
    expect(windows[2]!.max).toBe(80); // the window that holds the outlier

    const readings = (await (
      await fetch(
        `${gateway.httpUrl}/api/readings?series=pump1/temperature&from=${start}&to=${start + 300_000}&bucket=5m`,
      )
    ).json()) as { points: { count: number; max: number }[] };
    expect(readings.points).toEqual([expect.objectContaining({ count: 300, max: 80 })]);

    // The last window closes at shutdown and is published then.
    expect(await gateway.stop()).toBe(0);
    await waitFor('the fifth window at shutdown', () => observer.on('outpost/gw-test/windows/').length === 5);
    expect(observer.on('outpost/gw-test/status').map((m) => m.payload)).toEqual([
      'online',
      'stopping',
      'offline',
    ]);
    await observer.end();
    gateway = undefined;
  });
});
