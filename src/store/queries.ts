import type { SqliteDatabase } from './database.js';
import type { EventRow, ReadingBucket, RejectRow, SeriesRow, Severity } from './types.js';

export interface ReadingsQuery {
  device: string;
  metric: string;
  /** epoch ms, inclusive */
  from: number;
  /** epoch ms, exclusive */
  to: number;
  /** bucket length, ms */
  bucketMs: number;
}

export interface EventsQuery {
  source?: string | undefined;
  kind?: string | undefined;
  /** epoch ms, inclusive */
  since?: number | undefined;
  /** epoch ms, exclusive */
  until?: number | undefined;
  /** only events with an id below this (paging backwards, newest first) */
  before?: number | undefined;
  limit: number;
}

interface RawEvent {
  id: number;
  ts: number;
  created_at: number;
  source: string;
  kind: string;
  severity: string;
  message: string;
  detail: string;
}

export interface DeviceSeriesSummary {
  metric: string;
  unit: string | null;
  count: number;
  min: number;
  max: number;
  mean: number;
}

const toEvent = (row: RawEvent): EventRow => ({
  id: row.id,
  ts: row.ts,
  createdAt: row.created_at,
  source: row.source,
  kind: row.kind,
  severity: row.severity as Severity,
  message: row.message,
  detail: JSON.parse(row.detail) as Record<string, unknown>,
});

/** The read side of the store, for the HTTP API and status. Every filter is a bound parameter. */
/** A stored model result. */
export interface ResultRow {
  id: string;
  kind: string;
  source: string;
  /** epoch ms of what it is about */
  ts: number;
  createdAt: number;
  model: string | null;
  variant: string | null;
  latencyMs: number | null;
  output: Record<string, unknown>;
  /** media path of its thumbnail or clip */
  media: string | null;
}

interface RawResult {
  id: string;
  kind: string;
  source: string;
  ts: number;
  created_at: number;
  model: string | null;
  variant: string | null;
  latency_ms: number | null;
  output: string;
  media: string | null;
}

export class StoreQueries {
  readonly #stmt;

  constructor(db: SqliteDatabase) {
    this.#stmt = {
      buckets: db.prepare<[number, number, number, string, string, number, number], ReadingBucket>(
        `SELECT (ts - ((ts % ?) + ?) % ?) AS t, count(*) AS count, min(value) AS min, max(value) AS max,
                avg(value) AS mean
           FROM readings WHERE series_id = (SELECT id FROM series WHERE device = ? AND metric = ?)
            AND ts >= ? AND ts < ?
          GROUP BY t ORDER BY t`,
      ),
      events: db.prepare<Record<string, unknown>, RawEvent>(
        `SELECT * FROM events
          WHERE (@source IS NULL OR source = @source) AND (@kind IS NULL OR kind = @kind)
            AND (@since IS NULL OR ts >= @since) AND (@until IS NULL OR ts < @until)
            AND (@before IS NULL OR id < @before)
          ORDER BY id DESC LIMIT @limit`,
      ),
      series: db.prepare<[], SeriesRow>('SELECT device, metric, unit FROM series ORDER BY device, metric'),
      event: db.prepare<[number], RawEvent>('SELECT * FROM events WHERE id = ?'),
      recent: db.prepare<[string, string, number, number], { ts: number; value: number }>(
        `SELECT ts, value FROM readings WHERE series_id = (SELECT id FROM series WHERE device = ? AND metric = ?)
            AND ts <= ? ORDER BY ts DESC LIMIT ?`,
      ),
      deviceSummary: db.prepare<[string, number, number], DeviceSeriesSummary>(
        `SELECT s.metric AS metric, s.unit AS unit, count(*) AS count, min(r.value) AS min, max(r.value) AS max,
                avg(r.value) AS mean
           FROM series s JOIN readings r ON r.series_id = s.id
          WHERE s.device = ? AND r.ts >= ? AND r.ts < ? GROUP BY s.id ORDER BY s.metric`,
      ),
      activeDevices: db.prepare<[number, number], { device: string }>(
        `SELECT DISTINCT s.device AS device FROM series s
          WHERE EXISTS (SELECT 1 FROM readings r WHERE r.series_id = s.id AND r.ts >= ? AND r.ts < ?)
          ORDER BY s.device`,
      ),
      eventCount: db.prepare<[string, number, number], { n: number }>(
        'SELECT count(*) AS n FROM events WHERE source = ? AND ts >= ? AND ts < ?',
      ),
      result: db.prepare<[string], RawResult>('SELECT * FROM results WHERE id = ?'),
      rejects: db.prepare<[number], RejectRow>(
        'SELECT id, ts, route, topic, code, reason, size FROM rejects ORDER BY id DESC LIMIT ?',
      ),
    };
  }

  /** Aggregates of one series per bucket; buckets are aligned to multiples of bucketMs since epoch. */
  readingBuckets(q: ReadingsQuery): ReadingBucket[] {
    // ((ts % b) + b) % b is a non-negative remainder for any ts, so buckets align below zero too.
    return this.#stmt.buckets.all(q.bucketMs, q.bucketMs, q.bucketMs, q.device, q.metric, q.from, q.to);
  }

  events(q: EventsQuery): EventRow[] {
    return this.#stmt.events
      .all({
        source: q.source ?? null,
        kind: q.kind ?? null,
        since: q.since ?? null,
        until: q.until ?? null,
        before: q.before ?? null,
        limit: q.limit,
      })
      .map(toEvent);
  }

  event(id: number): EventRow | undefined {
    const row = this.#stmt.event.get(id);
    return row ? toEvent(row) : undefined;
  }

  /** The latest `limit` readings of a series at or before `until`, oldest first. */
  recentReadings(
    device: string,
    metric: string,
    until: number,
    limit: number,
  ): { ts: number; value: number }[] {
    return this.#stmt.recent.all(device, metric, until, limit).reverse();
  }

  /** Per series of a device: count/min/max/mean over [from, to). */
  deviceSummary(device: string, from: number, to: number): DeviceSeriesSummary[] {
    return this.#stmt.deviceSummary.all(device, from, to);
  }

  /** Devices with readings in [from, to). */
  activeDevices(from: number, to: number): string[] {
    return this.#stmt.activeDevices.all(from, to).map((row) => row.device);
  }

  eventCount(source: string, from: number, to: number): number {
    return this.#stmt.eventCount.get(source, from, to)!.n;
  }

  series(): SeriesRow[] {
    return this.#stmt.series.all();
  }

  result(id: string): ResultRow | undefined {
    const row = this.#stmt.result.get(id);
    return row
      ? {
          id: row.id,
          kind: row.kind,
          source: row.source,
          ts: row.ts,
          createdAt: row.created_at,
          model: row.model,
          variant: row.variant,
          latencyMs: row.latency_ms,
          output: JSON.parse(row.output) as Record<string, unknown>,
          media: row.media,
        }
      : undefined;
  }

  recentRejects(limit: number): RejectRow[] {
    return this.#stmt.rejects.all(limit);
  }
}
