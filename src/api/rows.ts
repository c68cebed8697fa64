import type { EventRow, ResultRow } from '../store/index.js';

/** A result as the API and MQTT answers show it. */
export interface ResultJson {
  id: string;
  kind: string;
  source: string;
  /** ISO 8601 */
  ts: string;
  /** ISO 8601, when it was stored */
  createdAt: string;
  model: string | null;
  variant: string | null;
  latencyMs: number | null;
  output: Record<string, unknown>;
  /** `/api/results/<id>/media`, or null without a thumbnail or clip */
  media: string | null;
}

export function resultJson(row: ResultRow): ResultJson {
  return {
    id: row.id,
    kind: row.kind,
    source: row.source,
    ts: new Date(row.ts).toISOString(),
    createdAt: new Date(row.createdAt).toISOString(),
    model: row.model,
    variant: row.variant,
    latencyMs: row.latencyMs,
    output: row.output,
    media: row.media ? `/api/results/${encodeURIComponent(row.id)}/media` : null,
  };
}

/** The response item schema of a result (OpenAPI, and fastify's serializer). */
export const RESULT_SCHEMA = {
  type: 'object',
  required: ['id', 'kind', 'source', 'ts', 'createdAt', 'model', 'variant', 'latencyMs', 'output', 'media'],
  properties: {
    id: { type: 'string' },
    kind: { type: 'string' },
    source: { type: 'string' },
    ts: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    model: { type: ['string', 'null'] },
    variant: { type: ['string', 'null'] },
    latencyMs: { type: ['integer', 'null'] },
    output: { type: 'object', additionalProperties: true },
    media: { type: ['string', 'null'] },
  },
} as const;

/** An event (sensor anomaly, alert) as the API shows it. */
export interface EventJson {
  id: number;
  /** ISO 8601 */
  ts: string;
  /** ISO 8601, when it was stored */
  createdAt: string;
  source: string;
  kind: string;
  severity: string;
  message: string;
  detail: Record<string, unknown>;
}

export function eventJson(row: EventRow): EventJson {
  return {
    id: row.id,
    ts: new Date(row.ts).toISOString(),
    createdAt: new Date(row.createdAt).toISOString(),
    source: row.source,
    kind: row.kind,
    severity: row.severity,
    message: row.message,
    detail: row.detail,
  };
}

export const EVENT_SCHEMA = {
  type: 'object',
  required: ['id', 'ts', 'createdAt', 'source', 'kind', 'severity', 'message', 'detail'],
  properties: {
    id: { type: 'integer' },
    ts: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    source: { type: 'string' },
    kind: { type: 'string' },
    severity: { type: 'string', enum: ['info', 'warning', 'critical'] },
    message: { type: 'string' },
    detail: { type: 'object', additionalProperties: true },
  },
} as const;
