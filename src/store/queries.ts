import type Database from 'better-sqlite3';
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

/** A stored model result. */
export interface ResultRow {
  /** insertion order, never reused: the cursor of result listings and of the live stream */
  seq: number;
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
  seq: number;
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

/** The filters of a page of results (newest stored first); every one given must match. */
export interface ResultsQuery {
  kind?: string | undefined;
  source?: string | undefined;
  /** epoch ms of the result's `ts`, inclusive */
  since?: number | undefined;
  /** epoch ms of the result's `ts`, exclusive */
  until?: number | undefined;
  /** a frame object's label (`output.objects[].label`), case-insensitive (ASCII) */
  label?: string | undefined;
  /**
   * Words to find in what the result says (description, transcript, translation, summary, cause, action,
   * alert reason, highlights): plain words, never FTS5 syntax (see `ftsMatchExpression`); a word ending in
   * `*` matches as a prefix. With no word in it, nothing matches.
   */
  text?: string | undefined;
  /** Match results with any of the words rather than all of them. Default false. */
  anyWord?: boolean | undefined;
  /** only results stored before this one (its `seq`): the previous page's `next` */
  before?: number | undefined;
  /** most results in the page, at least 1 */
  limit: number;
}

export interface ResultPage {
  results: ResultRow[];
  /** `before` of the next page; null when this page is the last */
  next: number | null;
}

/** The newest `seq` of results and `id` of events: where a live stream starts. */
export interface StreamCursors {
  result: number;
  event: number;
}

/** Most words of a full-text query that are used; the rest are ignored. */
const MAX_TEXT_WORDS = 16;

/**
 * Plain words as an FTS5 query that cannot be anything else: every whitespace-separated chunk with a letter
 * or digit in it becomes a quoted string (its quotes doubled), so FTS5 operators, column filters, NEAR( and
 * parentheses in the user's text are only characters; a trailing `*` becomes a prefix query of that chunk.
 * Chunks are ANDed (or ORed with `any`). Undefined when there is no word to search for.
 */
export function ftsMatchExpression(text: string, any = false): string | undefined {
  const terms: string[] = [];
  for (const chunk of text.split(/\s+/)) {
    if (terms.length === MAX_TEXT_WORDS) break;
    if (!/[\p{L}\p{N}]/u.test(chunk)) continue;
    const prefix = chunk.endsWith('*');
    const word = (prefix ? chunk.replace(/\*+$/, '') : chunk).replaceAll('"', '""');
    terms.push(prefix ? `"${word}" *` : `"${word}"`);
  }
  if (terms.length === 0) return undefined;
  return terms.join(any ? ' OR ' : ' ');
}

/** The filters of a results query as SQL; each a constant fragment with named parameters. */
const RESULT_FILTERS = {
  kind: 'kind = @kind',
  source: 'source = @source',
  since: 'ts >= @since',
  until: 'ts < @until',
  // CASE, not AND: SQLite does not promise to short-circuit, and json_extract of a non-object fails.
  label: `EXISTS (SELECT 1 FROM json_each(iif(json_valid(results.output), results.output, '{}'), '$.objects') AS o
            WHERE lower(CASE WHEN o.type = 'object' THEN json_extract(o.value, '$.label') END) = lower(@label))`,
  match: 'seq IN (SELECT rowid FROM results_fts WHERE results_fts MATCH @match)',
  before: 'seq < @before',
} as const;

/** The read side of the store, for the HTTP API, MQTT requests and status. Every filter is a bound parameter. */
export class StoreQueries {
  readonly #db: SqliteDatabase;
  readonly #resultPages = new Map<string, Database.Statement<Record<string, unknown>, RawResult>>();
  readonly #stmt;

  constructor(db: SqliteDatabase) {
    this.#db = db;
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
      resultsAfter: db.prepare<[number, number], RawResult>(
        'SELECT * FROM results WHERE seq > ? ORDER BY seq LIMIT ?',
      ),
      eventsAfter: db.prepare<[number, number], RawEvent>(
        'SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?',
      ),
      heads: db.prepare<[], StreamCursors>(
        `SELECT (SELECT coalesce(max(seq), 0) FROM results) AS result,
                (SELECT coalesce(max(id), 0) FROM events) AS event`,
      ),
      // Rows are stored in time order give or take a clock step: the last ones stored before `t`. A scan,
      // but only when a stream starts from a time.
      headsBefore: db.prepare<[number, number], StreamCursors>(
        `SELECT (SELECT coalesce(max(seq), 0) FROM results WHERE created_at < ?) AS result,
                (SELECT coalesce(max(id), 0) FROM events WHERE created_at < ?) AS event`,
      ),
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
    return row ? toResult(row) : undefined;
  }

  /** A page of results matching every given filter, newest first (by insertion, not by `ts`). */
  results(q: ResultsQuery): ResultPage {
    const match = q.text === undefined ? undefined : ftsMatchExpression(q.text, q.anyWord === true);
    if (q.text !== undefined && match === undefined) return { results: [], next: null };
    const params: Record<string, string | number> = {};
    const where: string[] = [];
    const values = {
      kind: q.kind,
      source: q.source,
      since: q.since,
      until: q.until,
      label: q.label,
      match,
      before: q.before,
    };
    for (const name of Object.keys(RESULT_FILTERS) as (keyof typeof RESULT_FILTERS)[]) {
      const value = values[name];
      if (value === undefined) continue;
      where.push(RESULT_FILTERS[name]);
      params[name] = value;
    }
    const limit = Math.max(1, Math.floor(q.limit));
    // One row more than asked tells whether there is a next page, so the last page says so itself.
    params.limit = limit + 1;
    const rows = this.#resultPage(where).all(params).map(toResult);
    const more = rows.length > limit;
    if (more) rows.length = limit;
    return { results: rows, next: more ? rows.at(-1)!.seq : null };
  }

  /** Results stored after `afterSeq`, oldest first. */
  resultsAfter(afterSeq: number, limit: number): ResultRow[] {
    return this.#stmt.resultsAfter.all(afterSeq, limit).map(toResult);
  }

  /** Events stored after `afterId`, oldest first. */
  eventsAfter(afterId: number, limit: number): EventRow[] {
    return this.#stmt.eventsAfter.all(afterId, limit).map(toEvent);
  }

  /** The newest result and event; with `storedBefore` (epoch ms), the newest stored before that time. */
  streamCursors(storedBefore?: number): StreamCursors {
    return storedBefore === undefined
      ? this.#stmt.heads.get()!
      : this.#stmt.headsBefore.get(storedBefore, storedBefore)!;
  }

  recentRejects(limit: number): RejectRow[] {
    return this.#stmt.rejects.all(limit);
  }

  /** The statement of one combination of filters (at most 2^7, prepared on first use). */
  #resultPage(where: readonly string[]) {
    const key = where.join(' AND ');
    let stmt = this.#resultPages.get(key);
    if (!stmt) {
      stmt = this.#db.prepare<Record<string, unknown>, RawResult>(
        `SELECT * FROM results ${where.length > 0 ? `WHERE ${key}` : ''} ORDER BY seq DESC LIMIT @limit`,
      );
      this.#resultPages.set(key, stmt);
    }
    return stmt;
  }
}

function toResult(row: RawResult): ResultRow {
  return {
    seq: row.seq,
    id: row.id,
    kind: row.kind,
    source: row.source,
    ts: row.ts,
    createdAt: row.created_at,
    model: row.model,
    variant: row.variant,
    latencyMs: row.latency_ms,
    output: parseOutput(row.output),
    media: row.media,
  };
}

/** Outputs are written as JSON; a row that is not (edited by hand) reads as empty, not as a failed page. */
function parseOutput(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : { value };
  } catch {
    return {};
  }
}
