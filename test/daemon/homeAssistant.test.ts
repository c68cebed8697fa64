/**
 * Home Assistant discovery in the running gateway (embedded broker, real mqtt.js clients): the gateway's
 * configs are retained on connect, the sources the store knows are announced after a restart, and
 * Home Assistant's `online` on homeassistant/status makes the gateway announce again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

let gateway: TestGateway | undefined;

afterEach(async () => {
  if (gateway) expect(await gateway.stop()).toBe(0);
  gateway = undefined;
});

interface Config {
  unique_id: string;
  state_topic: string;
  availability: { topic: string }[];
  device: { identifiers: string[] } | undefined;
}

describe('Home Assistant discovery', () => {
  it('announces the gateway on connect, its sensor series after a restart, and again when HA comes online', async () => {
    gateway = await startGateway({ OUTPOST_INFERENCE_ENABLED: 'false' });
    const ha = await collect(gateway.mqttUrl, 'homeassistant/#');
    await waitFor(
      'the gateway configs',
      () => ha.on('homeassistant/sensor/outpost_gw-test/status/config').length > 0,
    );
    const status = JSON.parse(
      ha.on('homeassistant/sensor/outpost_gw-test/status/config')[0]!.payload,
    ) as Config;
    expect(status.state_topic).toBe('outpost/gw-test/status');
    expect(ha.messages.every((m) => m.payload === '' || m.retain || !m.topic.endsWith('/config'))).toBe(true);

    const sensor = await publisher(gateway.mqttUrl);
    await sensor.publishAsync('sensors/pump7/temperature', '21.5', { qos: 1 });
    await sensor.endAsync();
    await waitFor('the reading stored', () => gateway!.sql('SELECT 1 FROM readings').length === 1);
    await ha.end();
    const dataDir = gateway.dataDir;
    expect(await gateway.stop()).toBe(0);

    gateway = await startGateway({ OUTPOST_INFERENCE_ENABLED: 'false', OUTPOST_DATA_DIR: dataDir });
    const after = await collect(gateway.mqttUrl, 'homeassistant/#');
    const anomalyTopic = (m: { topic: string }) =>
      /^homeassistant\/binary_sensor\/outpost_gw-test\/series_pump7_temperature.*anomaly\/config$/.test(
        m.topic,
      );
    await waitFor('the series anomaly config', () => after.messages.some(anomalyTopic));
    const anomaly = JSON.parse(after.messages.find(anomalyTopic)!.payload) as Config;
    expect(anomaly.state_topic).toBe('outpost/gw-test/events/pump7');
    expect(anomaly.availability[0]!.topic).toBe('outpost/gw-test/status');

    const before = after.messages.length;
    const homeAssistant = await publisher(gateway.mqttUrl);
    await homeAssistant.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await homeAssistant.endAsync();
    await waitFor('the republish', () => after.messages.length >= 2 * before, 10_000);
    await after.end();
  });
});
