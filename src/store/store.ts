import { join } from 'node:path';
import { type ShrinkStep, shrinkLargest } from './budget.js';
import { openDatabaseChecked, type SqliteDatabase } from './database.js';
import type { IntegrityReport } from './integrity.js';
import { JobTable } from './jobs.js';
import {
  type DatabaseBytes,
  databaseBytes,
  type MaintenanceOptions,
  type MaintenanceReport,
  maintain,
} from './maintenance.js';
import { MediaStore } from './media.js';
import { Outbox, type OutboxLimits } from './outbox.js';
import { StoreQueries } from './queries.js';
import type {
  EventRow,
  JournalEntry,
  NewEvent,
  NewJournalEntry,
  NewReading,
  NewReject,
  NewWindow,
} from './types.js';

export interface StoreOptions {
  /** Folder that holds outpost.db. */
  dataDir: string;
  /** SQLite synchronous mode under WAL; see the `store.synchronous` config key. Default normal. */
  synchronous?: 'normal' | 'full';
  outbox: OutboxLimits;
  /** Limits of the uplink's own outbox; absent: no uplink. */
  uplinkOutbox?: OutboxLimits | undefined;
}

export interface RetentionPolicy {
  /** processed journal entries received before this are deleted, epoch ms */
  journalBefore: number;
  readingsBefore: number;
  /** events, windows, rejects and results */
  eventsBefore: number;
}

/**
 * Outpost's SQLite store. All writes are synchronous and short; callers group them with `transaction`
 * so that a batch of readings, its events and their outbox messages commit together or not at all.
 */
export class Store {
  readonly outbox: Outbox;
  /** what waits for the fleet's upstream broker; undefined without an uplink */
  readonly uplinkOutbox: Outbox | undefined;
  readonly queries: StoreQueries;
  readonly jobs: JobTable;
  /** files under <dataDir>/media */
  readonly media: MediaStore;
  readonly file: string;
  /** What the integrity check at open found; `ok: false` (recovered) must be logged at error level. */
  readonly integrity: IntegrityReport;
  readonly #db: SqliteDatabase;
  readonly #series = new Map<string, number>();
  readonly #stmt;
  #closed = false;

  static open(options: StoreOptions): Store {
    return new Store(options);
  }

  private constructor(options: StoreOptions) {
    this.file = join(options.dataDir, 'outpost.db');
    const opened = openDatabaseChecked({ file: this.file, synchronous: options.synchronous ?? 'normal' });
    this.#db = opened.db;
    this.integrity = opened.integrity;
    const db = this.#db;
    this.outbox = new Outbox(db, options.outbox);
    this.uplinkOutbox = options.uplinkOutbox && new Outbox(db, options.uplinkOutbox, 'uplink');
    this.queries = new StoreQueries(db);
    this.jobs = new JobTable(db);
    this.media = new MediaStore(db, join(options.dataDir, 'media'));
    this.#stmt = {
      append: db.prepare(
        'INSERT INTO journal (received_at, route, topic, payload, content_type, digest) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      release: db.prepare("UPDATE journal SET payload = x'' WHERE id = ?"),
      digests: db.prepare<[number, number], { digest: Buffer }>(
        'SELECT digest FROM journal WHERE received_at >= ? ORDER BY id DESC LIMIT ?',
      ),
      pending: db.prepare<[number, number], RawJournal>(
        'SELECT id, received_at, route, topic, payload, content_type FROM journal WHERE id > ? ORDER BY id LIMIT ?',
      ),
      pendingCount: db.prepare<[], { n: number }>(
        "SELECT count(*) AS n FROM journal WHERE id > (SELECT value FROM pipeline_state WHERE key = 'journal')",
      ),
      watermark: db.prepare<[], { value: number }>("SELECT value FROM pipeline_state WHERE key = 'journal'"),
      setWatermark: db.prepare("UPDATE pipeline_state SET value = ? WHERE key = 'journal' AND value < ?"),
      seriesGet: db.prepare<[string, string], { id: number; unit: string | null }>(
        'SELECT id, unit FROM series WHERE device = ? AND metric = ?',
      ),
      seriesAdd: db.prepare('INSERT INTO series (device, metric, unit) VALUES (?, ?, ?)'),
      seriesUnit: db.prepare('UPDATE series SET unit = ? WHERE id = ? AND unit IS NOT ?'),
      reading: db.prepare('INSERT INTO readings (series_id, ts, value, journal_id) VALUES (?, ?, ?, ?)'),
      recent: db.prepare<[number, number], { value: number }>(
        'SELECT value FROM readings WHERE series_id = ? ORDER BY ts DESC LIMIT ?',
      ),
      window: db.prepare(
        'INSERT OR REPLACE INTO windows (series_id, start, end, count, min, max, mean, std) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      event: db.prepare(
        'INSERT INTO events (ts, created_at, source, kind, severity, message, detail) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      reject: db.prepare(
        'INSERT INTO rejects (ts, route, topic, code, reason, size) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      pruneJournal: db.prepare(
        // The newest row always stays: SQLite gives a new row max(id) + 1, so an emptied journal would
        // number new messages from 1 again, below the watermark, and the pipeline would never see them.
        `DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE received_at < ?
           AND id <= (SELECT value FROM pipeline_state WHERE key = 'journal')
           AND id < (SELECT max(id) FROM journal) ORDER BY id LIMIT 5000)`,
      ),
      allSeries: db.prepare<[], { id: number }>('SELECT id FROM series'),
      pruneReadings: db.prepare(
        'DELETE FROM readings WHERE rowid IN (SELECT rowid FROM readings WHERE series_id = ? AND ts < ? LIMIT 5000)',
      ),
      pruneWindows: db.prepare('DELETE FROM windows WHERE series_id = ? AND start < ? AND end < ?'),
      pruneEvents: db.prepare(
        'DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ? ORDER BY ts LIMIT 5000)',
      ),
      pruneResults: db.prepare(
        'DELETE FROM results WHERE seq IN (SELECT seq FROM results WHERE created_at < ? ORDER BY seq LIMIT 5000)',
      ),
      pruneRejects: db.prepare(
        'DELETE FROM rejects WHERE id IN (SELECT id FROM rejects WHERE ts < ? ORDER BY ts LIMIT 5000)',
      ),
    };
  }

  /** Runs `fn` in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    try {
      return this.#db.transaction(fn)();
    } catch (error) {
      // Rolled back: forget in-memory state that may describe rows that no longer exist.
      this.#series.clear();
      this.outbox.resync();
      this.uplinkOutbox?.resync();
      throw error;
    }
  }

  /** Commits one message to the journal (its own transaction when called alone); returns its id. */
  appendJournal(entry: NewJournalEntry): number {
    const info = this.#stmt.append.run(
      entry.receivedAt,
      entry.route,
      entry.topic,
      entry.payload,
      entry.contentType ?? null,
      entry.digest,
    );
    return Number(info.lastInsertRowid);
  }

  /** Digests of the newest journal entries received at or after `since` (epoch ms), newest first. */
  recentDigests(since: number, limit: number): Buffer[] {
    return this.#stmt.digests.all(since, limit).map((row) => row.digest);
  }

  /**
   * Entries after `afterId` (default: the pipeline's watermark), oldest first: at most `limit`, and no
   * more once `maxBytes` of payload are read (always at least one), so a backlog of camera frames is not
   * read into memory at once.
   */
  pendingJournal(
    limit: number,
    afterId = this.journalWatermark(),
    maxBytes = 32 * 1024 * 1024,
  ): JournalEntry[] {
    const out: JournalEntry[] = [];
    let bytes = 0;
    for (const row of this.#stmt.pending.iterate(afterId, limit)) {
      out.push({
        id: row.id,
        receivedAt: row.received_at,
        route: row.route,
        topic: row.topic,
        payload: row.payload,
        contentType: row.content_type,
      });
      bytes += row.payload.length;
      if (bytes >= maxBytes) break;
    }
    return out;
  }

  /**
   * Empties the payloads of processed entries whose bytes are large and no longer needed (camera frames):
   * the row and its digest stay for duplicate recognition until retention. Call in the committing
   * transaction.
   */
  releasePayloads(ids: readonly number[]): void {
    for (const id of ids) this.#stmt.release.run(id);
  }

  pendingJournalCount(): number {
    return this.#stmt.pendingCount.get()!.n;
  }

  /** Id of the last journal entry whose output is committed; entries up to it are never processed again. */
  journalWatermark(): number {
    return this.#stmt.watermark.get()!.value;
  }

  /** Moves the watermark forward (never back); call in the transaction that commits the output. */
  advanceJournalWatermark(id: number): void {
    this.#stmt.setWatermark.run(id, id);
  }

  /** The id of a series, created on first sight; the unit is updated when a reading names a new one. */
  seriesId(device: string, metric: string, unit?: string): number {
    const key = `${device}\0${metric}`;
    let id = this.#series.get(key);
    if (id === undefined) {
      const row = this.#stmt.seriesGet.get(device, metric);
      id = row ? row.id : Number(this.#stmt.seriesAdd.run(device, metric, unit ?? null).lastInsertRowid);
      this.#series.set(key, id);
    }
    if (unit !== undefined) this.#stmt.seriesUnit.run(unit, id, unit);
    return id;
  }

  insertReading(reading: NewReading): void {
    const series = this.seriesId(reading.device, reading.metric, reading.unit);
    this.#stmt.reading.run(series, reading.ts, reading.value, reading.journalId);
  }

  /** The latest `n` values of a series, oldest first (to seed a detector after a restart). */
  recentValues(device: string, metric: string, n: number): number[] {
    const series = this.seriesId(device, metric);
    return this.#stmt.recent
      .all(series, n)
      .map((row) => row.value)
      .reverse();
  }

  insertWindow(window: NewWindow): void {
    const series = this.seriesId(window.device, window.metric);
    const w = window;
    this.#stmt.window.run(series, w.start, w.end, w.count, w.min, w.max, w.mean, w.std);
  }

  insertEvent(event: NewEvent, now: number): EventRow {
    const info = this.#stmt.event.run(
      event.ts,
      now,
      event.source,
      event.kind,
      event.severity,
      event.message,
      JSON.stringify(event.detail),
    );
    return { ...event, id: Number(info.lastInsertRowid), createdAt: now };
  }

  insertReject(reject: NewReject): number {
    const r = reject;
    return Number(
      this.#stmt.reject.run(r.ts, r.route ?? null, r.topic, r.code, r.reason, r.size).lastInsertRowid,
    );
  }

  /** Deletes what retention no longer keeps, in bounded chunks so ingest never waits long; returns rows removed. */
  prune(policy: RetentionPolicy): number {
    let removed = 0;
    const s = this.#stmt;
    // At most 20 chunks a table and series a call: a large backlog is worked off over several calls, not
    // in one long stall of ingest.
    const chunks = (run: () => number) => {
      for (let i = 0, changes = 1; changes > 0 && i < 20; i++, removed += changes) changes = run();
    };
    chunks(() => s.pruneJournal.run(policy.journalBefore).changes);
    for (const { id } of s.allSeries.all()) {
      chunks(() => s.pruneReadings.run(id, policy.readingsBefore).changes);
      removed += s.pruneWindows.run(id, policy.eventsBefore, policy.eventsBefore).changes;
    }
    chunks(() => s.pruneEvents.run(policy.eventsBefore).changes);
    chunks(() => s.pruneRejects.run(policy.eventsBefore).changes);
    chunks(() => s.pruneResults.run(policy.eventsBefore).changes);
    return removed;
  }

  /** What the database takes: pages in use, the file and the WAL. */
  bytes(): DatabaseBytes {
    return databaseBytes(this.#db);
  }

  /** Gives free pages back to the file system and empties the WAL (bounded; see maintenance.ts). */
  maintain(options?: MaintenanceOptions): MaintenanceReport {
    return maintain(this.#db, options);
  }

  /**
   * Deletes the oldest rows of the table that takes the most room (a `fraction` of them, bounded), never
   * rows still to be processed or sent; undefined when nothing is left to give. See budget.ts.
   */
  shrinkLargest(fraction: number): ShrinkStep | undefined {
    return shrinkLargest(this.#db, fraction);
  }

  /** Checkpoints the WAL and closes; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      this.#db.close();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }
}

interface RawJournal {
  id: number;
  received_at: number;
  route: string;
  topic: string;
  payload: Buffer;
  content_type: string | null;
}
