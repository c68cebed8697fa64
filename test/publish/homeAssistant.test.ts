import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../src/ingest/index.js';
import { type DiscoveryStore, HomeAssistantDiscovery } from '../../src/publish/homeAssistant.js';
import {
  anomalyTemplate,
  discoveryConfigs,
  type KnownSources,
  TEMPLATES,
} from '../../src/publish/homeAssistantConfigs.js';
import { wireTopics } from '../../src/publish/topics.js';
import { render, renderWithJinja } from '../helpers/jinja.js';
import { waitFor } from '../helpers/wait.js';

const GW = 'gw-ha';
const topics = wireTopics('outpost', GW);
const logger = createLogger({ level: 'silent', format: 'json' });
const DISCOVERY = /^homeassistant\/(sensor|binary_sensor)\/outpost_gw-ha\/[A-Za-z0-9_-]+\/config$/;
/** Home Assistant's entity id check (homeassistant/core.py valid_entity_id). */
const ENTITY_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;

// Templates are checked by rendering them (test/helpers/jinja.ts): a small evaluator of the Jinja subset the
// templates use runs always; where python3 with jinja2 is installed, real Jinja renders the same cases and
// must agree, so the subset cannot drift from Jinja's semantics.

// ---------------------------------------------------------------------------------------------------------
// Sample payloads, shaped like the wire types of src/publish/topics.ts
// ---------------------------------------------------------------------------------------------------------

const health = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    ts: '2025-01-01T00:00:00.000Z',
    gatewayId: GW,
    version: '0.1.0',
    uptimeSeconds: 60,
    memory: { rssBytes: 123_456_789, heapUsedBytes: 40_000_000 },
    queues: { journalPending: 3, outboxMessages: 4, outboxBytes: 900, outboxOldestAgeSeconds: null },
    rates: { ingest: 1.5, rejects: 0 },
    drops: { outbox: 0, rejected: 0, duplicates: 0 },
    ...extra,
  });
const result = (kind: string, source: string, output: Record<string, unknown>) =>
  JSON.stringify({
    id: 'job-1',
    kind,
    source,
    ts: '2025-01-01T00:00:01.000Z',
    model: 'gemma-3n-E2B-it-Q4_K_M.gguf',
    variant: 'e2b-q4',
    latencyMs: 4200,
    generation: { tokens: 40, promptTokens: 300, ms: 3900.5 },
    output,
    media: '/api/results/job-1/media',
  });
const event = (kind: 'anomaly' | 'alert', detail: Record<string, unknown>) =>
  JSON.stringify({
    id: 7,
    ts: '2025-01-01T00:00:02.000Z',
    source: 'pump1',
    kind,
    severity: 'warning',
    message: 'x',
    detail,
  });
const longText = 'the quick brown fox jumps over the lazy dog '.repeat(10); // 440 characters
const WEIRD_METRIC = "t'emp}}.°C";

/** [template, payload, expected state (or, for attribute templates, the expected JSON object)] */
const CASES: [string, string, string | Record<string, unknown>][] = [
  ['{{ value }}', 'online', 'online'],
  ['{{ value }}', 'stopping', 'stopping'],
  [TEMPLATES.variant, health(), 'none'],
  [TEMPLATES.variant, health({ model: { state: 'ready', variant: 'e4b-q4' } }), 'e4b-q4'],
  [TEMPLATES.variant, health({ model: { state: 'loading', variant: null } }), 'none'],
  [TEMPLATES.queueDepth, health(), '7'],
  [TEMPLATES.memoryRss, health(), '117.7'],
  [TEMPLATES.memoryRss, health({ memory: { rssBytes: 157_286_400, heapUsedBytes: 1 } }), '150.0'],
  [
    '{{ value_json.queues | tojson }}',
    health(),
    { journalPending: 3, outboxMessages: 4, outboxBytes: 900, outboxOldestAgeSeconds: null },
  ],
  [
    TEMPLATES.description,
    result('frame', 'yard', { description: 'Two people at the gate.' }),
    'Two people at the gate.',
  ],
  [TEMPLATES.description, result('frame', 'yard', { description: longText }), longText.slice(0, 255).trim()],
  [TEMPLATES.description, result('frame', 'yard', { description: 'é'.repeat(300) }), 'é'.repeat(255)],
  [TEMPLATES.description, result('frame', 'yard', { description: null }), ''],
  [TEMPLATES.description, result('frame', 'yard', {}), ''],
  [TEMPLATES.alert, result('frame', 'yard', { alert: true, alertReason: 'smoke' }), 'ON'],
  [TEMPLATES.alert, result('frame', 'yard', { alert: false, alertReason: '' }), 'OFF'],
  [TEMPLATES.alert, result('frame', 'yard', {}), 'OFF'],
  [
    TEMPLATES.alertAttributes,
    result('frame', 'yard', { alert: true, alertReason: 'smoke' }),
    { reason: 'smoke', ts: '2025-01-01T00:00:01.000Z' },
  ],
  [
    TEMPLATES.alertAttributes,
    result('frame', 'yard', { alert: false }),
    { reason: '', ts: '2025-01-01T00:00:01.000Z' },
  ],
  [
    TEMPLATES.resultAttributes,
    result('frame', 'yard', { description: 'a cat', people: 0, alert: false, confidence: 80 }),
    {
      description: 'a cat',
      people: 0,
      alert: false,
      confidence: 80,
      ts: '2025-01-01T00:00:01.000Z',
      model: 'gemma-3n-E2B-it-Q4_K_M.gguf',
      variant: 'e2b-q4',
    },
  ],
  [
    TEMPLATES.transcript,
    result('audio', 'mic1', { transcript: 'help, over here', language: 'en' }),
    'help, over here',
  ],
  [TEMPLATES.transcript, result('audio', 'mic1', { transcript: '', sounds: ['engine'] }), ''],
  [TEMPLATES.transcript, result('audio', 'mic1', { transcript: longText }), longText.slice(0, 255).trim()],
  [anomalyTemplate('temp'), event('anomaly', { device: 'pump1', metric: 'temp', value: 91 }), 'ON'],
  [anomalyTemplate('temp'), event('anomaly', { device: 'pump1', metric: 'pressure', value: 2 }), ''],
  [anomalyTemplate('temp'), event('alert', { resultId: 'j', resultKind: 'frame', alert: true }), ''],
  [anomalyTemplate(WEIRD_METRIC), event('anomaly', { device: 'pump1', metric: WEIRD_METRIC }), 'ON'],
  [anomalyTemplate(WEIRD_METRIC), event('anomaly', { device: 'pump1', metric: 'temp' }), ''],
  ['{{ value_json.mean }}', JSON.stringify({ device: 'pump1', metric: 'temp', mean: 21.25 }), '21.25'],
];

describe('Home Assistant value templates', () => {
  it('render the sample payloads to the expected states (Jinja subset evaluator)', () => {
    for (const [template, payload, expected] of CASES) {
      const out = render(template, payload);
      if (typeof expected === 'string') expect(out, template).toBe(expected);
      else expect(JSON.parse(out), template).toEqual(expected);
    }
  });

  it('render the same with real Jinja2 (python3 jinja2 sandbox)', () => {
    const real = renderWithJinja(CASES.map(([template, payload]) => ({ template, payload })));
    CASES.forEach(([template, payload, expected], i) => {
      const out = real[i]!;
      if (typeof expected === 'string') expect(out, template).toBe(expected);
      else expect(JSON.parse(out), template).toEqual(expected);
      const ours = render(template, payload);
      if (typeof expected === 'string') expect(ours).toBe(out);
    });
  });

  it('the evaluator refuses what Jinja refuses: attributes of an undefined value', () => {
    expect(() => render('{{ value_json.nothing.here }}', '{}')).toThrow(/undefined/);
  });

  it('every template in the configs is one of the checked ones', () => {
    const checked = new Set(CASES.map(([t]) => t));
    const configs = discoveryConfigs(
      { gatewayId: GW, topics, version: '0.1.0' },
      {
        cameras: ['yard'],
        series: [
          { device: 'pump1', metric: 'temp', unit: '°C' },
          { device: 'pump1', metric: WEIRD_METRIC },
        ],
        audioSources: ['mic1'],
      },
    );
    for (const { payload } of configs) {
      for (const key of ['value_template', 'json_attributes_template'] as const) {
        const template = payload[key];
        if (typeof template === 'string') expect(checked.has(template), template).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Discovery against a real broker: the embedded aedes broker and real mqtt.js clients
// ---------------------------------------------------------------------------------------------------------

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

class MemoryStore implements DiscoveryStore {
  topics: string[] = [];
  load(): string[] {
    return [...this.topics];
  }
  save(topics: string[]): void {
    this.topics = [...topics];
  }
}

let broker: EmbeddedBroker;
let clients: MqttClient[];
let disposables: HomeAssistantDiscovery[];

beforeEach(async () => {
  broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });
  clients = [];
  disposables = [];
});

afterEach(async () => {
  for (const d of disposables) await d.dispose();
  for (const c of clients) await c.endAsync(true);
  await broker.close();
});

async function client(): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

/** A subscriber to every discovery config (as Home Assistant is): what it received, in order. */
async function listen(): Promise<Received[]> {
  const c = await client();
  const received: Received[] = [];
  c.on('message', (topic, payload, packet) =>
    received.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await c.subscribeAsync('homeassistant/+/+/+/config', { qos: 1 });
  return received;
}

/** The retained configs a new subscriber gets, once `count` of them came. */
async function retained(count: number): Promise<Map<string, Record<string, unknown>>> {
  const received = await listen();
  await waitFor(`${count} retained configs`, () => received.length >= count);
  await new Promise((resolve) => setTimeout(resolve, 100)); // none beyond them
  expect(received).toHaveLength(count);
  expect(received.every((m) => m.retain)).toBe(true);
  return new Map(received.map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));
}

async function gateway(sources: KnownSources, store: DiscoveryStore, failOn?: (topic: string) => boolean) {
  const c = await client();
  const calls: { topic: string; payload: string; opts: unknown }[] = [];
  const discovery = new HomeAssistantDiscovery({
    gatewayId: GW,
    topics,
    version: '0.1.0',
    publish: async (topic, payload, opts) => {
      calls.push({ topic, payload, opts });
      if (failOn?.(topic)) throw new Error('broker away');
      await c.publishAsync(topic, payload, opts);
    },
    known: () => sources,
    store,
    logger,
    republishDelayMs: 100,
  });
  disposables.push(discovery);
  // The daemon's part: subscribe to Home Assistant's status and hand its messages over.
  c.on('message', (topic, payload) => discovery.onMessage(topic, payload));
  await c.subscribeAsync(discovery.statusTopic, { qos: 1 });
  return { discovery, calls };
}

const sources = (): KnownSources => ({
  cameras: ['yard', 'gate'],
  series: [
    { device: 'pump1', metric: 'temp', unit: '°C' },
    { device: 'pump1', metric: 'pressure', unit: 'bar' },
  ],
  audioSources: ['mic1'],
});
/** 4 gateway entities + 2 per camera, series and audio source */
const COUNT = 4 + 2 * 2 + 2 * 2 + 2;

describe('HomeAssistantDiscovery', () => {
  it('announces every entity retained, under the discovery scheme, with component-appropriate keys', async () => {
    const store = new MemoryStore();
    const { discovery, calls } = await gateway(sources(), store);
    await discovery.announce();
    expect(calls).toHaveLength(COUNT);
    expect(calls.every((c) => JSON.stringify(c.opts) === JSON.stringify({ retain: true, qos: 1 }))).toBe(
      true,
    );

    const configs = await retained(COUNT);
    expect(store.topics.sort()).toEqual([...configs.keys()].sort());
    const ids = new Set<string>();
    for (const [topic, config] of configs) {
      expect(topic).toMatch(DISCOVERY);
      const component = topic.split('/')[1]!;
      expect(config.unique_id).toMatch(/^outpost_gw-ha_[A-Za-z0-9_-]+$/);
      expect(topic.split('/')[3]).toBe(String(config.unique_id).slice('outpost_gw-ha_'.length));
      ids.add(String(config.unique_id));
      expect(config.default_entity_id).toMatch(ENTITY_ID);
      expect(String(config.default_entity_id).startsWith(`${component}.`)).toBe(true);
      expect(config.name).toEqual(expect.any(String));
      const device = config.device as Record<string, unknown>;
      expect(device.manufacturer).toBe('Outpost');
      expect(device.sw_version).toBe('0.1.0');
      expect(device.identifiers).toEqual([expect.stringMatching(/^outpost_gw-ha(_|$)/)]);
      if (device.identifiers !== undefined && (device.identifiers as string[])[0] !== 'outpost_gw-ha') {
        expect(device.via_device).toBe('outpost_gw-ha');
      }
      expect(config.state_topic).toMatch(/^outpost\/gw-ha\//);
      expect(config.value_template).toEqual(expect.stringMatching(/^\{\{.*\}\}$/));
      if (config.unique_id !== 'outpost_gw-ha_status') {
        expect(config.availability).toEqual([
          { topic: 'outpost/gw-ha/status', payload_available: 'online', payload_not_available: 'offline' },
        ]);
      } else {
        expect(config.availability).toBeUndefined(); // it shows `offline` itself
      }
      if (component === 'binary_sensor') {
        expect(config).toMatchObject({ payload_on: 'ON', payload_off: 'OFF' });
      }
    }
    expect(ids.size).toBe(COUNT);

    const byId = (id: string) => [...configs.values()].find((c) => c.unique_id === `outpost_gw-ha_${id}`)!;
    expect(byId('status')).toMatchObject({
      state_topic: 'outpost/gw-ha/status',
      device: { identifiers: ['outpost_gw-ha'], name: 'Outpost gw-ha', model: 'Outpost field gateway' },
    });
    for (const id of ['model_variant', 'queue_depth', 'memory_rss']) {
      expect(byId(id)).toMatchObject({ state_topic: 'outpost/gw-ha/health', entity_category: 'diagnostic' });
    }
    expect(byId('memory_rss')).toMatchObject({ unit_of_measurement: 'MiB', device_class: 'data_size' });
    expect(byId('camera_yard_description')).toMatchObject({
      state_topic: 'outpost/gw-ha/results/frame/yard',
      value_template: TEMPLATES.description,
      json_attributes_topic: 'outpost/gw-ha/results/frame/yard',
      device: { identifiers: ['outpost_gw-ha_camera_yard'], name: 'yard', via_device: 'outpost_gw-ha' },
    });
    expect(byId('camera_yard_alert')).toMatchObject({
      state_topic: 'outpost/gw-ha/results/frame/yard',
      value_template: TEMPLATES.alert,
    });
    expect(byId('series_pump1_temp_anomaly')).toMatchObject({
      state_topic: 'outpost/gw-ha/events/pump1',
      value_template: anomalyTemplate('temp'),
      off_delay: 300,
      device: { identifiers: ['outpost_gw-ha_sensor_pump1'], via_device: 'outpost_gw-ha' },
    });
    expect(byId('series_pump1_temp_mean')).toMatchObject({
      state_topic: 'outpost/gw-ha/windows/pump1/temp',
      unit_of_measurement: '°C',
    });
    expect(byId('audio_mic1_transcript')).toMatchObject({
      state_topic: 'outpost/gw-ha/results/audio/mic1',
      value_template: TEMPLATES.transcript,
    });
    expect([...configs.keys()]).toContain(
      'homeassistant/binary_sensor/outpost_gw-ha/camera_gate_alert/config',
    );
    expect([...configs.keys()]).toContain('homeassistant/sensor/outpost_gw-ha/status/config');
  });

  it('republishes everything once when Home Assistant comes online, debounced', async () => {
    const { discovery, calls } = await gateway(sources(), new MemoryStore());
    await discovery.announce();
    const ha = await client();
    const received = await listen();
    await waitFor('retained configs', () => received.length === COUNT);
    calls.length = 0;

    await ha.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor('the republish', () => calls.length === COUNT);
    await waitFor('Home Assistant receiving it', () => received.length === 2 * COUNT);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(calls).toHaveLength(COUNT); // one republish for two `online`s, none for `offline`
    expect(new Set(received.slice(COUNT).map((m) => m.topic)).size).toBe(COUNT);
  });

  it('removes a source gone between two announces with an empty retained config', async () => {
    const known = sources();
    const store = new MemoryStore();
    const { discovery, calls } = await gateway(known, store);
    await discovery.announce();
    const live = await listen();
    await waitFor('retained configs', () => live.length === COUNT);

    known.cameras = ['gate'];
    calls.length = 0;
    await discovery.announce();
    const gone = [
      'homeassistant/sensor/outpost_gw-ha/camera_yard_description/config',
      'homeassistant/binary_sensor/outpost_gw-ha/camera_yard_alert/config',
    ];
    const empties = calls.filter((c) => c.payload === '');
    expect(empties.map((c) => c.topic).sort()).toEqual([...gone].sort());
    expect(empties.every((c) => JSON.stringify(c.opts) === JSON.stringify({ retain: true, qos: 1 }))).toBe(
      true,
    );
    await waitFor('the removals', () => live.filter((m) => m.payload === '').length === 2);
    expect(store.topics).not.toContain(gone[0]);
    expect(store.topics).toHaveLength(COUNT - 2);
    // The empty retained message cleared the broker's copy: a new subscriber gets only what is current.
    const now = await retained(COUNT - 2);
    for (const topic of gone) expect(now.has(topic)).toBe(false);
  });

  it('after a restart, removes the configs the store remembers and the sources no longer have', async () => {
    const store = new MemoryStore();
    const first = await gateway(sources(), store);
    await first.discovery.announce();
    await first.discovery.dispose();

    const fewer = { ...sources(), audioSources: [] };
    const second = await gateway(fewer, store);
    await second.discovery.announce();
    const empties = second.calls.filter((c) => c.payload === '').map((c) => c.topic);
    expect(empties.sort()).toEqual([
      'homeassistant/binary_sensor/outpost_gw-ha/audio_mic1_alert/config',
      'homeassistant/sensor/outpost_gw-ha/audio_mic1_transcript/config',
    ]);
    await retained(COUNT - 2);
  });

  it('refresh publishes only new configs and removals', async () => {
    const known = sources();
    const { discovery, calls } = await gateway(known, new MemoryStore());
    await discovery.refresh(); // nothing announced yet: everything
    expect(calls).toHaveLength(COUNT);

    calls.length = 0;
    await discovery.refresh();
    expect(calls).toHaveLength(0);

    known.cameras = [...known.cameras, 'dock'];
    known.series = known.series.filter((s) => s.metric !== 'pressure');
    await discovery.refresh();
    expect(calls.filter((c) => c.payload !== '').map((c) => c.topic)).toEqual([
      'homeassistant/sensor/outpost_gw-ha/camera_dock_description/config',
      'homeassistant/binary_sensor/outpost_gw-ha/camera_dock_alert/config',
    ]);
    expect(calls.filter((c) => c.payload === '').map((c) => c.topic)).toEqual([
      'homeassistant/binary_sensor/outpost_gw-ha/series_pump1_pressure_anomaly/config',
      'homeassistant/sensor/outpost_gw-ha/series_pump1_pressure_mean/config',
    ]);
    await retained(COUNT);
  });

  it('keeps a removal that failed in the store and sends it again next time', async () => {
    const store = new MemoryStore();
    const known = sources();
    let away = false;
    const { discovery, calls } = await gateway(known, store, (topic) => away && topic.includes('mic1'));
    await discovery.announce();
    known.audioSources = [];
    away = true;
    await discovery.announce();
    expect(store.topics.filter((t) => t.includes('mic1'))).toHaveLength(2);

    away = false;
    calls.length = 0;
    await discovery.refresh();
    expect(calls.map((c) => [c.topic.includes('mic1'), c.payload])).toEqual([
      [true, ''],
      [true, ''],
    ]);
    expect(store.topics.filter((t) => t.includes('mic1'))).toHaveLength(0);
  });
});

describe('discoveryConfigs ids', () => {
  it('are valid, stable and distinct for names that sanitize alike', () => {
    const input = { gatewayId: 'gate way.01', topics: wireTopics('outpost', 'gate way.01'), version: '1' };
    const odd: KnownSources = {
      cameras: ['front door', 'front_door', 'front.door', 'Front door', '门'],
      series: [
        { device: 'a_b', metric: 'c' },
        { device: 'a', metric: 'b_c' },
        { device: 'a', metric: 'b_c' }, // twice: one entity
      ],
      audioSources: ['front door'],
    };
    const configs = discoveryConfigs(input, odd);
    expect(configs).toHaveLength(4 + 5 * 2 + 2 * 2 + 2);
    const ids = configs.map((c) => c.uniqueId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(configs.map((c) => c.topic)).size).toBe(configs.length);
    for (const c of configs) {
      expect(c.topic).toMatch(
        /^homeassistant\/(sensor|binary_sensor)\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/config$/,
      );
      expect(c.payload.default_entity_id).toMatch(ENTITY_ID);
    }
    expect(configs.map((c) => c.uniqueId)).toEqual(discoveryConfigs(input, odd).map((c) => c.uniqueId));
    expect(configs[0]!.payload.device).toMatchObject({ name: 'Outpost gate way.01' });
  });
});
