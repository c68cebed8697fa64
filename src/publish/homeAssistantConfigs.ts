import { createHash } from 'node:crypto';
import type { WireTopics } from './topics.js';

/** A sensor series the gateway knows: one metric of one device. */
export interface KnownSeries {
  device: string;
  metric: string;
  /** unit of the readings, shown on the series' mean sensor */
  unit?: string | undefined;
}

/** The sources the gateway currently knows, each of which gets its entities. */
export interface KnownSources {
  cameras: readonly string[];
  series: readonly KnownSeries[];
  audioSources: readonly string[];
}

export type DiscoveryComponent = 'sensor' | 'binary_sensor';

/** One entity's discovery message. */
export interface DiscoveryConfig {
  component: DiscoveryComponent;
  /** `<prefix>/<component>/<node_id>/<object_id>/config` */
  topic: string;
  uniqueId: string;
  payload: Record<string, unknown>;
}

export interface DiscoveryConfigInput {
  /** Home Assistant's discovery prefix. Default 'homeassistant'. */
  prefix?: string | undefined;
  gatewayId: string;
  topics: WireTopics;
  /** Outpost's version, the devices' sw_version */
  version: string;
  /** Seconds an anomaly binary sensor stays on after its series' last anomaly event. Default 300. */
  anomalyHoldSeconds?: number | undefined;
  /** The gateway's web page, linked from its Home Assistant device page. Default none. */
  configurationUrl?: string | undefined;
}

/** Home Assistant's state strings are at most 255 characters; a longer one is refused. */
const MAX_STATE = 255;

/**
 * The discovery configs of a gateway and its sources (pure). Entities:
 * - gateway device: status, model variant, queue depth, memory RSS (sensors);
 * - per camera: latest description (sensor), alert (binary_sensor);
 * - per series: anomaly (binary_sensor), window mean (sensor);
 * - per audio source: latest transcript (sensor), alert (binary_sensor).
 *
 * Each camera, sensor device and audio source is its own Home Assistant device, linked to the gateway by
 * `via_device`: Home Assistant assigns areas per device, so a camera can sit in "Yard" while the gateway is
 * in the cabinet, its device page gathers its entities, and the device goes when its last entity is removed.
 */
export function discoveryConfigs(input: DiscoveryConfigInput, sources: KnownSources): DiscoveryConfig[] {
  const prefix = input.prefix ?? 'homeassistant';
  const { topics, version } = input;
  const node = nodeId(input.gatewayId);
  const availability = [
    { topic: topics.status(), payload_available: 'online', payload_not_available: 'offline' },
  ];
  const origin = { name: 'Outpost', sw_version: version };
  const gateway = {
    identifiers: [node],
    name: `Outpost ${input.gatewayId}`,
    manufacturer: 'Outpost',
    model: 'Outpost field gateway',
    sw_version: version,
    ...(input.configurationUrl ? { configuration_url: input.configurationUrl } : {}),
  };
  const child = (kind: string, id: string, name: string, model: string) => ({
    identifiers: [`${node}_${kind}_${id}`],
    name,
    manufacturer: 'Outpost',
    model,
    sw_version: version,
    via_device: node,
  });

  const out: DiscoveryConfig[] = [];
  const add = (
    component: DiscoveryComponent,
    objectId: string,
    name: string,
    device: Record<string, unknown>,
    fields: Record<string, unknown>,
    { available = true } = {},
  ) => {
    const uniqueId = `${node}_${objectId}`;
    out.push({
      component,
      topic: `${prefix}/${component}/${node}/${objectId}/config`,
      uniqueId,
      payload: {
        name,
        unique_id: uniqueId,
        default_entity_id: `${component}.${entityObjectId(uniqueId)}`,
        device,
        origin,
        ...(available ? { availability } : {}),
        qos: 1,
        ...fields,
      },
    });
  };
  const onOff = { payload_on: 'ON', payload_off: 'OFF' };

  // The status sensor has no availability: it is the entity that must show `offline`, which availability
  // tied to the same topic would turn into "unavailable".
  add(
    'sensor',
    'status',
    'Status',
    gateway,
    {
      state_topic: topics.status(),
      value_template: '{{ value }}',
      device_class: 'enum',
      options: ['online', 'offline', 'stopping'],
      entity_category: 'diagnostic',
      icon: 'mdi:lan-connect',
    },
    { available: false },
  );
  add('sensor', 'model_variant', 'Model variant', gateway, {
    state_topic: topics.health(),
    value_template: TEMPLATES.variant,
    entity_category: 'diagnostic',
    icon: 'mdi:brain',
  });
  add('sensor', 'queue_depth', 'Queue depth', gateway, {
    state_topic: topics.health(),
    value_template: TEMPLATES.queueDepth,
    json_attributes_topic: topics.health(),
    json_attributes_template: '{{ value_json.queues | tojson }}',
    unit_of_measurement: 'messages',
    state_class: 'measurement',
    entity_category: 'diagnostic',
    icon: 'mdi:tray-full',
  });
  add('sensor', 'memory_rss', 'Memory RSS', gateway, {
    state_topic: topics.health(),
    value_template: TEMPLATES.memoryRss,
    unit_of_measurement: 'MiB',
    device_class: 'data_size',
    state_class: 'measurement',
    entity_category: 'diagnostic',
  });

  for (const camera of unique(sources.cameras)) {
    const id = slug([camera]);
    const device = child('camera', id, camera, 'Camera, analysed by Outpost');
    const state = topics.results('frame', camera);
    add('sensor', `camera_${id}_description`, 'Description', device, {
      state_topic: state,
      value_template: TEMPLATES.description,
      json_attributes_topic: state,
      json_attributes_template: TEMPLATES.resultAttributes,
      icon: 'mdi:cctv',
    });
    add('binary_sensor', `camera_${id}_alert`, 'Alert', device, {
      state_topic: state,
      value_template: TEMPLATES.alert,
      ...onOff,
      json_attributes_topic: state,
      json_attributes_template: TEMPLATES.alertAttributes,
      device_class: 'safety',
    });
  }

  const series = new Map<string, KnownSeries>();
  for (const s of sources.series) {
    const key = `${s.device}\u0000${s.metric}`;
    if (!series.has(key)) series.set(key, s);
  }
  for (const { device: name, metric, unit } of [...series.values()].sort(bySeries)) {
    const device = child('sensor', slug([name]), name, 'Sensor device, watched by Outpost');
    const id = slug([name, metric]);
    add('binary_sensor', `series_${id}_anomaly`, `${metric} anomaly`, device, {
      state_topic: topics.events(name),
      value_template: anomalyTemplate(metric),
      ...onOff,
      off_delay: input.anomalyHoldSeconds ?? 300,
      device_class: 'problem',
    });
    const windows = topics.windows(name, metric);
    add('sensor', `series_${id}_mean`, metric, device, {
      state_topic: windows,
      value_template: '{{ value_json.mean }}',
      // The window message itself: start, end, count, min, max, mean, std.
      json_attributes_topic: windows,
      state_class: 'measurement',
      ...(unit ? { unit_of_measurement: unit } : {}),
    });
  }

  for (const source of unique(sources.audioSources)) {
    const id = slug([source]);
    const device = child('audio', id, source, 'Microphone, analysed by Outpost');
    const state = topics.results('audio', source);
    add('sensor', `audio_${id}_transcript`, 'Transcript', device, {
      state_topic: state,
      value_template: TEMPLATES.transcript,
      json_attributes_topic: state,
      json_attributes_template: TEMPLATES.resultAttributes,
      icon: 'mdi:microphone-message',
    });
    add('binary_sensor', `audio_${id}_alert`, 'Alert', device, {
      state_topic: state,
      value_template: TEMPLATES.alert,
      ...onOff,
      json_attributes_topic: state,
      json_attributes_template: TEMPLATES.alertAttributes,
      device_class: 'safety',
    });
  }
  return out;
}

/**
 * The Jinja templates Home Assistant renders against the wire payloads (`value` is the payload text,
 * `value_json` its JSON). Strings pass `string` before `truncate`: truncate of a non-string (null, a list)
 * does not shorten it, and Home Assistant refuses states longer than 255 characters.
 */
export const TEMPLATES = {
  /** HealthMessage `model.variant` when the health message carries the engine's status; else 'none' */
  variant:
    "{{ (value_json.model.variant if value_json.model is mapping else none) | default('none', true) }}",
  /** messages waiting: journal (in) + outbox (out) */
  queueDepth: '{{ value_json.queues.journalPending + value_json.queues.outboxMessages }}',
  memoryRss: '{{ (value_json.memory.rssBytes / 1048576) | round(1) }}',
  description: `{{ value_json.output.description | default('', true) | string | truncate(${MAX_STATE}, true, '', 0) }}`,
  transcript: `{{ value_json.output.transcript | default('', true) | string | truncate(${MAX_STATE}, true, '', 0) }}`,
  alert: "{{ 'ON' if value_json.output.alert else 'OFF' }}",
  /** the model's answer, flattened, with when and by which model it was made */
  resultAttributes:
    '{{ dict(value_json.output, ts=value_json.ts, model=value_json.model, variant=value_json.variant) | tojson }}',
  alertAttributes:
    "{{ dict(reason=value_json.output.alertReason | default('', true), ts=value_json.ts) | tojson }}",
} as const;

/**
 * ON for an anomaly event of this metric; empty (which Home Assistant's binary sensor ignores) for any other
 * event on the device's topic: other metrics' anomalies and alerts. `off_delay` turns it off.
 */
export function anomalyTemplate(metric: string): string {
  return `{{ 'ON' if value_json.kind == 'anomaly' and value_json.detail.metric == ${jinjaString(metric)} else '' }}`;
}

/** A Jinja string literal: anything but letters, digits, space, '_' and '-' is escaped (braces included). */
function jinjaString(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (/[A-Za-z0-9 _-]/.test(ch)) out += ch;
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return `'${out}'`;
}

/** `outpost_<gw>`: the gateway device's identifier and the configs' node_id. */
function nodeId(gatewayId: string): string {
  return `outpost_${slug([gatewayId])}`;
}

/**
 * An id for topics and unique_ids from source names: `[a-zA-Z0-9_-]` only, as discovery topics require.
 * A name that had to change, or a pair whose `_` would make the join ambiguous, gets a short hash of the
 * original, so two names never share an id and a name always gets the same one.
 */
function slug(parts: readonly string[]): string {
  const clean = parts.map((p) => p.replace(/[^A-Za-z0-9_-]/g, '_'));
  const joined = clean.join('_');
  const exact =
    joined.length > 0 &&
    parts.every((p, i) => p === clean[i]) &&
    (parts.length === 1 || parts.every((p) => !p.includes('_')));
  if (exact) return joined;
  const hash = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 8);
  return `${joined}_${hash}`;
}

/** Home Assistant's object id: lowercase `[a-z0-9_]`, no double, leading or trailing `_`. */
function entityObjectId(uniqueId: string): string {
  return uniqueId
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_|_$/g, '');
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)].sort();
}

function bySeries(a: KnownSeries, b: KnownSeries): number {
  return a.device === b.device ? a.metric.localeCompare(b.metric) : a.device.localeCompare(b.device);
}
