import type { Severity } from '../store/index.js';

/**
 * The wire contract: every topic Outpost publishes under `<prefix>/<gatewayId>/` and the payload type it
 * carries. Builders below are the only place topic strings are made.
 */
export interface WireMessages {
  /** retained */
  status: 'online' | 'offline' | 'stopping';
  /** retained, every health.interval */
  health: HealthMessage;
  errors: ErrorMessage;
  events: EventMessage;
  windows: WindowMessage;
  results: ResultMessage;
}

/** One model job's finding, published once. */
export interface ResultMessage {
  /** the job's id, also the result's */
  id: string;
  /** anomaly (an explained sensor event), digest (a device period), frame (a camera frame) */
  kind: string;
  source: string;
  /** ISO 8601 of what it is about */
  ts: string;
  /** model file */
  model: string;
  /** the variant the governor chose */
  variant: string;
  /** from the job's start to its result, ms */
  latencyMs: number;
  /** what the runtime itself reported: tokens generated and its generation time, ms */
  generation: { tokens: number; promptTokens: number; ms: number };
  /** schema-valid answer of the model */
  output: Record<string, unknown>;
  /** where the result's thumbnail (frames) can be fetched from the gateway's HTTP API */
  media?: string;
}

/** A rejected input: never the raw payload. */
export interface ErrorMessage {
  topic: string;
  route: string | null;
  code: string;
  reason: string;
  /** payload bytes */
  size: number;
  /** ISO 8601, when it was received */
  ts: string;
}

export interface EventMessage {
  id: number;
  /** ISO 8601 of the reading (anomaly) or the frame/clip (alert) that raised it */
  ts: string;
  source: string;
  /** anomaly: a sensor reading left its baseline; alert: the model flagged a frame or clip */
  kind: 'anomaly' | 'alert';
  severity: Severity;
  message: string;
  detail: Record<string, unknown>;
}

/** Aggregate of one series over one tumbling window. */
export interface WindowMessage {
  device: string;
  metric: string;
  /** ISO 8601, inclusive */
  start: string;
  /** ISO 8601, exclusive */
  end: string;
  count: number;
  min: number;
  max: number;
  mean: number;
  std: number;
}

export interface HealthMessage {
  ts: string;
  gatewayId: string;
  version: string;
  uptimeSeconds: number;
  memory: { rssBytes: number; heapUsedBytes: number };
  queues: {
    journalPending: number;
    outboxMessages: number;
    outboxBytes: number;
    outboxOldestAgeSeconds: number | null;
    /** what waits for the fleet's upstream broker; null without an uplink */
    uplinkOutboxMessages: number | null;
  };
  /** messages/s over the last health interval */
  rates: { ingest: number; rejects: number };
  drops: { outbox: number; rejected: number; duplicates: number };
  /** the resident model, if any (`state` as in /api/status) */
  model: { state: string; variant: string | null };
  /** the fleet uplink's connection; null without one */
  uplink: { connected: boolean } | null;
  /** free space on the data volume (null before the first check) and the database's size */
  disk: { freeBytes: number | null; low: boolean; databaseBytes: number };
}

export interface WireTopics {
  readonly base: string;
  status(): string;
  health(): string;
  errors(): string;
  events(source: string): string;
  windows(device: string, metric: string): string;
  results(kind: string, source: string): string;
}

export function wireTopics(prefix: string, gatewayId: string): WireTopics {
  const base = `${prefix}/${gatewayId}`;
  return {
    base,
    status: () => `${base}/status`,
    health: () => `${base}/health`,
    errors: () => `${base}/errors`,
    events: (source) => `${base}/events/${source}`,
    windows: (device, metric) => `${base}/windows/${device}/${metric}`,
    results: (kind, source) => `${base}/results/${kind}/${source}`,
  };
}
