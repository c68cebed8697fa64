import { Counter, Gauge, type Labels, type MetricsRegistry, renderMetrics } from './metricsRegistry.js';

/**
 * The mapping of the /api/status snapshot (totals the stages already keep) to Prometheus metric families
 * at scrape time, rendered together with the registry's own metrics.
 */

type Count = number | null | undefined;
type Counts = Readonly<Record<string, Count>>;

/** One topic class of an outbox in /api/status. */
interface OutboxClassSnapshot {
  messages?: Count;
  bytes?: Count;
  /** ISO 8601 or epoch ms; null when none waits */
  oldestAt?: string | number | null;
  dropped?: Count;
}

/** The parts of the daemon's /api/status object the metrics read; every part may be missing. */
export interface GatewayStatusSnapshot {
  gatewayId?: string;
  version?: string;
  /** ISO 8601 */
  startedAt?: string;
  state?: string;
  broker?: { connected?: boolean; reconnects?: Count };
  ingest?: { accepted?: Counts; rejected?: Counts; duplicates?: Count; bytes?: Count };
  pipeline?: {
    processed?: Count;
    readings?: Count;
    anomalies?: Count;
    late?: Count;
    commitFailures?: Count;
  };
  /** rejections by code */
  rejects?: Counts;
  queues?: {
    journalPending?: Count;
    outbox?: {
      messages?: Count;
      bytes?: Count;
      /** ISO 8601 (or epoch ms) of the oldest waiting message; null when empty */
      oldestAt?: string | number | null;
      inflight?: Count;
      published?: Count;
      dropped?: Count;
      classes?: Readonly<Record<string, OutboxClassSnapshot | undefined>>;
    };
  };
  uplink?: {
    connected?: boolean;
    reconnects?: Count;
    outbox?: {
      inflight?: Count;
      published?: Count;
      classes?: Readonly<Record<string, OutboxClassSnapshot | undefined>>;
    };
  } | null;
  disk?: {
    freeBytes?: Count;
    low?: boolean;
    emergencyPrunes?: Count;
    budgetPrunes?: Count;
    database?: { usedBytes?: Count; fileBytes?: Count; walBytes?: Count };
  };
  process?: { eventLoopDelayMs?: { p50?: Count; p99?: Count; max?: Count }; resources?: Counts };
  memory?: { rssBytes?: Count; heapUsedBytes?: Count };
  media?: { files?: Count; bytes?: Count; maxBytes?: Count };
  frames?: {
    cameras?: Readonly<Record<string, { decisions?: Counts; rejected?: Count } | undefined>>;
    decoded?: Count;
    superseded?: Count;
  };
  audio?: {
    sources?: Readonly<
      Record<
        string,
        | { clips?: Count; rejected?: Count; seconds?: Count; voicedSeconds?: Count; droppedSeconds?: Count }
        | undefined
      >
    >;
    realTimeFactor?: Count;
    /** audio jobs dropped before they ran */
    dropped?: Count;
  };
  model?: {
    state?: string;
    variant?: string | null;
    runtime?: string | null;
    contextSize?: Count;
    capabilities?: Readonly<Record<string, boolean>> | null;
    worker?: { crashes?: Count } | null;
    governor?: { budgetBytes?: Count; workerRssBytes?: Count; memAvailableBytes?: Count } | null;
  };
  /** job counts by state, next to `waiting` and `runner` */
  jobs?: {
    waiting?: readonly { state?: string; kind?: string; jobs?: Count }[];
    runner?: { done?: Count; failed?: Count; retried?: Count } | null;
    [state: string]: unknown;
  };
}

type Pick = (s: GatewayStatusSnapshot) => unknown;

/** Unlabelled counters read from one snapshot field each: name, help, field. */
const COUNTERS: readonly (readonly [string, string, Pick])[] = [
  [
    'outpost_disk_emergency_prunes_total',
    'Emergency prunes for low free space.',
    (s) => s.disk?.emergencyPrunes,
  ],
  ['outpost_database_budget_prunes_total', 'Prunes for store.maxDatabaseBytes.', (s) => s.disk?.budgetPrunes],
  ['outpost_broker_reconnects_total', 'MQTT reconnections since start.', (s) => s.broker?.reconnects],
  [
    'outpost_ingest_duplicates_total',
    'MQTT redeliveries acknowledged without a second journal row.',
    (s) => s.ingest?.duplicates,
  ],
  ['outpost_ingest_bytes_total', 'Payload bytes received.', (s) => s.ingest?.bytes],
  ['outpost_pipeline_processed_total', 'Journal entries processed.', (s) => s.pipeline?.processed],
  ['outpost_pipeline_readings_total', 'Sensor readings stored.', (s) => s.pipeline?.readings],
  ['outpost_pipeline_anomalies_total', 'Sensor anomalies found.', (s) => s.pipeline?.anomalies],
  ['outpost_pipeline_late_total', 'Readings that came after their window closed.', (s) => s.pipeline?.late],
  [
    'outpost_pipeline_commit_failures_total',
    'Failed batch commits (retried).',
    (s) => s.pipeline?.commitFailures,
  ],
  ['outpost_frames_decoded_total', 'Frames decoded and resized.', (s) => s.frames?.decoded],
  [
    'outpost_frames_superseded_total',
    'Frame jobs dropped before they ran for a newer frame of their camera.',
    (s) => s.frames?.superseded,
  ],
  [
    'outpost_audio_jobs_dropped_total',
    'Audio jobs dropped before they ran: too many of their source waited.',
    (s) => s.audio?.dropped,
  ],
  ['outpost_jobs_retried_total', 'Job attempts retried after a failure.', (s) => s.jobs?.runner?.retried],
  ['outpost_outbox_published_total', 'Outbox messages published.', (s) => s.queues?.outbox?.published],
  [
    'outpost_outbox_dropped_total',
    'Outbox messages dropped over its limits.',
    (s) => s.queues?.outbox?.dropped,
  ],
  ['outpost_model_worker_crashes_total', 'Inference worker crashes.', (s) => s.model?.worker?.crashes],
];

/** Unlabelled gauges read from one snapshot field each: name, help, field. */
const GAUGES: readonly (readonly [string, string, Pick])[] = [
  ['outpost_disk_free_bytes', 'Free space on the data volume, bytes.', (s) => s.disk?.freeBytes],
  ['outpost_disk_low', '1 while free space stays below store.minFreeBytes.', (s) => s.disk?.low],
  ['outpost_database_used_bytes', 'Database pages in use, bytes.', (s) => s.disk?.database?.usedBytes],
  ['outpost_database_file_bytes', 'Database file on disk, bytes.', (s) => s.disk?.database?.fileBytes],
  ['outpost_database_wal_bytes', 'Database WAL file, bytes.', (s) => s.disk?.database?.walBytes],
  [
    'outpost_start_time_seconds',
    'Daemon start, Unix time, seconds.',
    (s) => Date.parse(s.startedAt ?? '') / 1000,
  ],
  ['outpost_broker_connected', '1 while the MQTT session is connected, else 0.', (s) => s.broker?.connected],
  [
    'outpost_audio_real_time_factor',
    'Mean audio processing time per second of audio (under 1 keeps up).',
    (s) => s.audio?.realTimeFactor,
  ],
  ['outpost_journal_pending', 'Journal entries not yet processed.', (s) => s.queues?.journalPending],
  ['outpost_outbox_messages', 'Messages waiting in the outbox.', (s) => s.queues?.outbox?.messages],
  ['outpost_outbox_bytes', 'Payload bytes waiting in the outbox.', (s) => s.queues?.outbox?.bytes],
  [
    'outpost_outbox_inflight',
    'Outbox messages published, not yet acknowledged.',
    (s) => s.queues?.outbox?.inflight,
  ],
  [
    'outpost_process_resident_memory_bytes',
    'Resident memory of the daemon, bytes.',
    (s) => s.memory?.rssBytes,
  ],
  ['outpost_process_heap_used_bytes', 'V8 heap in use by the daemon, bytes.', (s) => s.memory?.heapUsedBytes],
  ['outpost_media_files', 'Stored media files.', (s) => s.media?.files],
  ['outpost_media_bytes', 'Stored media, bytes.', (s) => s.media?.bytes],
  ['outpost_media_max_bytes', 'Media retention limit, bytes.', (s) => s.media?.maxBytes],
  [
    'outpost_model_context_tokens',
    'Context size of the resident model, tokens.',
    (s) => s.model?.contextSize,
  ],
  [
    'outpost_model_memory_budget_bytes',
    'Memory the governor allows the model worker, bytes.',
    (s) => s.model?.governor?.budgetBytes,
  ],
  [
    'outpost_model_worker_resident_memory_bytes',
    'Resident memory of the model worker, bytes.',
    (s) => s.model?.governor?.workerRssBytes,
  ],
  [
    'outpost_memory_available_bytes',
    'Memory available on the board, bytes.',
    (s) => s.model?.governor?.memAvailableBytes,
  ],
];

/** Audio source counters: name, help, field of the source's stats. */
const AUDIO: readonly (readonly [
  string,
  string,
  'clips' | 'rejected' | 'seconds' | 'voicedSeconds' | 'droppedSeconds',
])[] = [
  ['outpost_audio_clips_total', 'Audio clips received, by source.', 'clips'],
  ['outpost_audio_clips_rejected_total', 'Audio clips rejected, by source.', 'rejected'],
  ['outpost_audio_received_seconds_total', 'Audio received, seconds, by source.', 'seconds'],
  [
    'outpost_audio_voiced_seconds_total',
    'Audio kept as voiced segments, seconds, by source.',
    'voicedSeconds',
  ],
  ['outpost_audio_dropped_seconds_total', 'Silence dropped, seconds, by source.', 'droppedSeconds'],
];

/** Frame gate reasons that let a frame through; every other reason is a drop. */
const GATE_PASSES = new Set(['first', 'changed', 'forced', 'ungated']);

const finite = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

const entries = <T>(record: Readonly<Record<string, T>> | null | undefined): [string, T][] =>
  record && typeof record === 'object' ? Object.entries(record) : [];

/**
 * One scrape's families from the snapshot. A family appears once it has a value: a part missing from the
 * snapshot (no model, no cameras yet) leaves its families out rather than showing zeros.
 */
class SnapshotFamilies {
  readonly metrics: (Counter | Gauge)[] = [];
  readonly #byName = new Map<string, Counter | Gauge>();

  put(type: 'counter' | 'gauge', name: string, help: string, value: unknown, labels: Labels = {}): void {
    const n = typeof value === 'boolean' ? Number(value) : finite(value);
    if (n === undefined || (type === 'counter' && n < 0)) return;
    let family = this.#byName.get(name);
    if (!family) {
      const options = { name, help, labelNames: Object.keys(labels) };
      family = type === 'counter' ? new Counter(options) : new Gauge(options);
      this.#byName.set(name, family);
      this.metrics.push(family);
    }
    if (family instanceof Counter) family.inc(labels, n);
    else family.set(labels, n);
  }
}

/**
 * The gateway's metrics: families mapped from the /api/status snapshot, then the registry's own, in one
 * exposition ordered by name. `now` (epoch ms) dates the outbox's oldest message.
 */
export function renderGatewayMetrics(
  status: GatewayStatusSnapshot,
  registry: MetricsRegistry,
  now: number = Date.now(),
): string {
  const f = new SnapshotFamilies();
  const { ingest, frames, audio, model, jobs } = status;
  for (const [name, help, pick] of COUNTERS) f.put('counter', name, help, pick(status));
  for (const [name, help, pick] of GAUGES) f.put('gauge', name, help, pick(status));

  if (status.version !== undefined || status.gatewayId !== undefined) {
    f.put('gauge', 'outpost_gateway_info', 'Constant 1; gateway id, version and run state as labels.', 1, {
      gateway_id: status.gatewayId ?? '',
      version: status.version ?? '',
      state: status.state ?? '',
    });
  }
  for (const [route, n] of entries(ingest?.accepted)) {
    f.put('counter', 'outpost_ingest_messages_total', 'Messages committed to the journal, by route.', n, {
      route,
    });
  }
  for (const [route, n] of entries(ingest?.rejected)) {
    const help = 'Messages turned away before the journal (over the size limit), by route.';
    f.put('counter', 'outpost_ingest_rejected_total', help, n, { route });
  }
  for (const [code, n] of entries(status.rejects)) {
    const help = 'Rejections at every stage (ingest, pipeline, model), by reject code.';
    f.put('counter', 'outpost_rejects_total', help, n, { code });
  }

  for (const [camera, stats] of entries(frames?.cameras)) {
    for (const [reason, n] of entries(stats?.decisions)) {
      const [name, help] = GATE_PASSES.has(reason)
        ? ['outpost_frame_gate_passed_total', 'Frames the change gate let through, by camera and reason.']
        : ['outpost_frame_gate_drops_total', 'Frames the change gate dropped, by camera and reason.'];
      f.put('counter', name, help, n, { camera, reason });
    }
    const help = 'Frames whose payload failed its checks, by camera.';
    f.put('counter', 'outpost_frames_rejected_total', help, stats?.rejected, { camera });
  }
  for (const [source, stats] of entries(audio?.sources)) {
    for (const [name, help, field] of AUDIO) f.put('counter', name, help, stats?.[field], { source });
  }

  for (const [state, n] of entries(jobs)) {
    if (state === 'waiting' || state === 'runner') continue;
    const help = 'Jobs in the store by state (done, failed and dropped until pruned).';
    f.put('gauge', 'outpost_jobs', help, n, { state });
  }
  // status lists waiting jobs by state, kind and reason; the reason is free text, so it is summed away.
  const waiting = new Map<string, { state: string; kind: string; n: number }>();
  for (const w of Array.isArray(jobs?.waiting) ? jobs.waiting : []) {
    const n = finite(w?.jobs);
    if (n === undefined || typeof w.state !== 'string' || typeof w.kind !== 'string') continue;
    const key = JSON.stringify([w.state, w.kind]);
    waiting.set(key, { state: w.state, kind: w.kind, n: (waiting.get(key)?.n ?? 0) + n });
  }
  for (const { state, kind, n } of waiting.values()) {
    f.put('gauge', 'outpost_jobs_waiting', 'Unfinished jobs by state and job kind.', n, { state, kind });
  }
  for (const result of ['done', 'failed'] as const) {
    const help = 'Jobs the runner finished, by result.';
    f.put('counter', 'outpost_jobs_finished_total', help, jobs?.runner?.[result], { result });
  }

  const oldestAt = status.queues?.outbox?.oldestAt;
  if (oldestAt !== undefined) {
    const at = typeof oldestAt === 'string' ? Date.parse(oldestAt) : oldestAt;
    // An empty outbox has nothing waiting: age 0, so `age > threshold` alerts resolve.
    const help = 'Age of the oldest waiting outbox message, seconds; 0 when empty.';
    f.put(
      'gauge',
      'outpost_outbox_oldest_age_seconds',
      help,
      at === null ? 0 : Math.max(0, (now - at) / 1000),
    );
  }

  const outboxes: [string, Readonly<Record<string, OutboxClassSnapshot | undefined>> | undefined][] = [
    ['local', status.queues?.outbox?.classes],
    ['uplink', status.uplink?.outbox?.classes],
  ];
  for (const [target, classes] of outboxes) {
    for (const [name, c] of entries(classes)) {
      const labels = { target, class: name };
      f.put(
        'gauge',
        'outpost_outbox_class_messages',
        'Messages waiting, by outbox and topic class.',
        c?.messages,
        labels,
      );
      f.put(
        'gauge',
        'outpost_outbox_class_bytes',
        'Payload bytes waiting, by outbox and topic class.',
        c?.bytes,
        labels,
      );
      const at = typeof c?.oldestAt === 'string' ? Date.parse(c.oldestAt) : c?.oldestAt;
      f.put(
        'gauge',
        'outpost_outbox_class_oldest_age_seconds',
        'Age of the oldest waiting message, by outbox and topic class, seconds; 0 when none waits.',
        at === undefined ? undefined : at === null ? 0 : Math.max(0, (now - at) / 1000),
        labels,
      );
      const help = 'Messages dropped unsent for the outbox limits or age, by outbox and topic class.';
      f.put('counter', 'outpost_outbox_class_dropped_total', help, c?.dropped, labels);
    }
  }
  if (status.uplink) {
    const u = status.uplink;
    f.put('gauge', 'outpost_uplink_connected', '1 while the fleet uplink is connected.', u.connected);
    f.put('counter', 'outpost_uplink_reconnects_total', 'Reconnects of the fleet uplink.', u.reconnects);
    f.put(
      'counter',
      'outpost_uplink_published_total',
      'Messages the upstream broker acknowledged.',
      u.outbox?.published,
    );
    f.put(
      'gauge',
      'outpost_uplink_inflight',
      'Uplink messages published, not yet acknowledged.',
      u.outbox?.inflight,
    );
  }
  const delay = status.process?.eventLoopDelayMs;
  for (const [quantile, value] of [
    ['0.5', delay?.p50],
    ['0.99', delay?.p99],
    ['1', delay?.max],
  ] as const) {
    const help = 'Event-loop delay over the last 10 s window, seconds, by quantile (1: the maximum).';
    f.put(
      'gauge',
      'outpost_event_loop_delay_seconds',
      help,
      finite(value) === undefined ? undefined : value! / 1000,
      { quantile },
    );
  }
  for (const [type, n] of entries(status.process?.resources)) {
    f.put(
      'gauge',
      'outpost_process_resources',
      'Handles and requests keeping the event loop alive, by type.',
      n,
      { type },
    );
  }

  if (typeof model?.state === 'string') {
    const help = 'Constant 1; resident model variant, runtime and engine state as labels.';
    f.put('gauge', 'outpost_model_info', help, 1, {
      variant: model.variant ?? '',
      runtime: model.runtime ?? '',
      state: model.state,
    });
  }
  for (const [capability, able] of entries(model?.capabilities)) {
    const help = '1 if the resident model takes this kind of input, else 0.';
    f.put('gauge', 'outpost_model_capability', help, able, { capability });
  }

  return renderMetrics([...f.metrics, ...registry.metrics]);
}
