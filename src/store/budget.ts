import type { SqliteDatabase } from './database.js';

/**
 * The database's byte budget. When retention by age is not enough (a chatty fleet, a small card), the table
 * that takes the most room gives back its oldest rows first: raw readings and rejects long before the
 * findings, because they are the most and the cheapest. Never rows that are still to be processed or sent:
 * the journal only up to the pipeline's watermark, never the outbox or open jobs.
 */

/** A table the budget may shrink: its ordering key (oldest first) and which rows it may touch. */
interface Shrinkable {
  table: string;
  key: string;
  /** extra condition on the rows that may go */
  where?: string;
  /** the key is a time, not a row counter: the step cuts the oldest span of time */
  time?: boolean;
  /** the names dbstat reports for it (the table and its indexes) */
  parts: readonly string[];
}

const SHRINKABLE: readonly Shrinkable[] = [
  {
    table: 'journal',
    key: 'id',
    // Never past the watermark, and never the newest row (new ids are max(id) + 1: see Store.prune).
    where:
      "id <= (SELECT value FROM pipeline_state WHERE key = 'journal') AND id < (SELECT max(id) FROM journal)",
    parts: ['journal'],
  },
  { table: 'readings', key: 'rowid', parts: ['readings', 'readings_series_ts'] },
  { table: 'rejects', key: 'id', parts: ['rejects', 'rejects_ts'] },
  // WITHOUT ROWID: cut by time (its key starts with the series, its `start` is epoch ms).
  { table: 'windows', key: 'start', time: true, parts: ['windows'] },
  { table: 'events', key: 'id', parts: ['events', 'events_ts', 'events_source_ts'] },
  {
    table: 'results',
    key: 'seq',
    parts: [
      'results',
      'results_kind_ts',
      'results_kind_seq',
      'results_source_seq',
      'results_fts_data',
      'results_fts_idx',
      'results_fts_docsize',
    ],
  },
];

/** Rows one shrink step deletes at most: a short transaction, so ingest never waits long. */
const MAX_ROWS_PER_STEP = 20_000;

export interface ShrinkStep {
  table: string;
  rows: number;
  /** bytes the table and its indexes took before the step */
  tableBytes: number;
}

/** Bytes each shrinkable table takes with its indexes, largest first (reads every page: call rarely). */
export function tableBytes(db: SqliteDatabase): { table: string; bytes: number }[] {
  const rows = db
    .prepare<[], { name: string; bytes: number }>(
      'SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name',
    )
    .all();
  const byName = new Map(rows.map((r) => [r.name, r.bytes]));
  return SHRINKABLE.map((s) => ({
    table: s.table,
    bytes: s.parts.reduce((sum, part) => sum + (byName.get(part) ?? 0), 0),
  })).sort((a, b) => b.bytes - a.bytes);
}

/**
 * Deletes the oldest `fraction` of the rows of the largest shrinkable table that has any to give (at most
 * MAX_ROWS_PER_STEP); undefined when none has. Results take their finished jobs with them.
 */
export function shrinkLargest(db: SqliteDatabase, fraction: number): ShrinkStep | undefined {
  for (const { table, bytes } of tableBytes(db)) {
    if (bytes === 0) continue;
    const s = SHRINKABLE.find((x) => x.table === table)!;
    const where = s.where ? `WHERE ${s.where}` : '';
    const span = db
      .prepare<[], { lo: number | null; hi: number | null }>(
        `SELECT min(${s.key}) AS lo, max(${s.key}) AS hi FROM ${table} ${where}`,
      )
      .get()!;
    if (span.lo === null || span.hi === null) continue;
    const width = Math.max(1, Math.ceil((span.hi - span.lo + 1) * fraction));
    const n = s.time ? width : Math.min(MAX_ROWS_PER_STEP, width);
    const cut = span.lo + n;
    const rows = db.transaction(() => {
      if (table === 'results') {
        db.prepare(
          `DELETE FROM jobs WHERE id IN (SELECT id FROM results WHERE seq < ?) AND state IN ('done', 'failed', 'dropped')`,
        ).run(cut);
      }
      return db.prepare(`DELETE FROM ${table} WHERE ${s.key} < ? ${s.where ? `AND ${s.where}` : ''}`).run(cut)
        .changes;
    })();
    if (rows > 0) return { table, rows, tableBytes: bytes };
  }
  return undefined;
}
