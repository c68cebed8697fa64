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

/** The read side of the store, for the HTTP API and status. Every filter is a bound parameter. */
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
      .map((row) => ({
        id: row.id,
        ts: row.ts,
        createdAt: row.created_at,
        source: row.source,
        kind: row.kind,
        severity: row.severity as Severity,
        message: row.message,
        detail: JSON.parse(row.detail) as Record<string, unknown>,
      }));
  }

  series(): SeriesRow[] {
    return this.#stmt.series.all();
  }

  recentRejects(limit: number): RejectRow[] {
    return this.#stmt.rejects.all(limit);
  }
}
