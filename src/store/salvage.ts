/**
 * Salvage of a damaged database into a fresh one (see integrity.ts for the check that sends it here).
 */

import { basename } from 'node:path';
import Database from 'better-sqlite3';
import { fault, message, sizeOf } from './integrity.js';

type Connection = Database.Database;

const MIN_ROWID = -(2n ** 63n);
const MAX_ROWID = 2n ** 63n - 1n;

interface TableInfo {
  name: string;
  withoutRowid: boolean;
}

interface Column {
  name: string;
  type: string;
  pk: number;
}

/**
 * Copies every row that can still be read from the damaged database at `source` into `db`, a fresh
 * database already migrated, table by table, and says per table how many rows it holds and what was lost.
 *
 * - The damaged file is read twice over: by a read-only connection of its own (seeks that locate damage),
 *   and ATTACHed to `db` (bulk INSERT … SELECT, ten times faster than rows through JS). better-sqlite3
 *   is built without URI filenames, so the attachment cannot be read-only; what keeps the file as found
 *   is the read-only connection, held open until after DETACH: while another connection has the file
 *   open, closing the attachment neither checkpoints its WAL into it nor deletes the WAL.
 * - Tables are those of the fresh schema that also exist in the old file, with the columns both have.
 *   Skipped: SQLite's internal tables, virtual tables and their shadow tables (the FTS5 index: it is
 *   rebuilt from the copied rows, by the triggers of migration 4 for its contentless index and by
 *   'rebuild' for an external-content one), and `migrations` (the fresh database's record is the truth).
 * - A table is first copied in one statement. If that fails, a rowid table is read forwards up to the
 *   damage and backwards from the end down to it, then stepped through for readable leaves in between;
 *   each readable stretch is copied by rowid range, split in halves where a row's own content fails. A
 *   WITHOUT ROWID table is read forwards and backwards up to the damage.
 * - AUTOINCREMENT counters are carried over (the higher of old and new), so no id is ever reused.
 * - Rows are written with INSERT OR REPLACE: a salvaged row replaces one a migration seeded.
 */
export function salvage(
  db: Connection,
  source: string,
): { salvaged: Record<string, number>; lost: string[] } {
  const salvaged: Record<string, number> = {};
  if (sizeOf(source) === 0) {
    return { salvaged, lost: [`${basename(source)}: absent or empty, nothing to read`] };
  }
  const lost: string[] = [];
  let old: Connection | undefined;
  let tables: TableInfo[];
  try {
    old = new Database(source, { readonly: true, fileMustExist: true });
    tables = userTables(old);
    db.prepare(`ATTACH DATABASE ? AS ${SOURCE}`).run(source);
  } catch (error) {
    old?.close();
    return { salvaged, lost: [`${basename(source)}: nothing could be read (${message(error)})`] };
  }
  try {
    const targets = new Set(userTables(db).map((t) => t.name));
    for (const table of tables) {
      if (table.name === 'migrations') continue;
      if (!targets.has(table.name)) {
        lost.push(`${table.name}: not in this Outpost's schema; its rows stay in the moved copy`);
        continue;
      }
      try {
        copyTable(old, db, table, lost);
      } catch (error) {
        lost.push(`${table.name}: ${message(error)}`);
      }
      salvaged[table.name] = count(db, table.name);
    }
    copySequences(old, db, lost);
    rebuildExternalContentFts(db);
  } finally {
    db.exec(`DETACH DATABASE ${SOURCE}`);
    old.close();
  }
  return { salvaged, lost };
}

/** The schema name the damaged file is attached under. */
const SOURCE = 'damaged';

function userTables(db: Connection): TableInfo[] {
  const rows = db.pragma('main.table_list') as { name: string; type: string; wr: number }[];
  return rows
    .filter((t) => t.type === 'table' && !t.name.startsWith('sqlite_'))
    .map((t) => ({ name: t.name, withoutRowid: t.wr === 1 }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function columns(db: Connection, table: string): Column[] {
  return db.pragma(`main.table_info(${quote(table)})`) as Column[];
}

function copyTable(old: Connection, db: Connection, table: TableInfo, lost: string[]) {
  const have = new Set(columns(old, table.name).map((c) => c.name));
  const target = columns(db, table.name);
  const shared = target.filter((c) => have.has(c.name));
  if (shared.length === 0) {
    lost.push(`${table.name}: no column in common with this Outpost's schema`);
    return;
  }
  const names = shared.map((c) => quote(c.name)).join(', ');
  const keys = target.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  // A rowid alias (INTEGER PRIMARY KEY) is copied as a column; an implicit rowid is copied explicitly.
  const aliased = keys.length === 1 && keys[0]!.type.toUpperCase() === 'INTEGER';
  const into = table.withoutRowid || aliased ? names : `rowid, ${names}`;
  const all = db.prepare(
    `INSERT OR REPLACE INTO main.${quote(table.name)} (${into}) SELECT ${into} FROM ${SOURCE}.${quote(table.name)}`,
  );
  try {
    all.run();
    return;
  } catch (error) {
    fault(error); // damaged somewhere: find out where, below
  }
  if (table.withoutRowid) {
    const placeholders = shared.map(() => '?').join(', ');
    const insert = db.prepare(
      `INSERT OR REPLACE INTO main.${quote(table.name)} (${names}) VALUES (${placeholders})`,
    );
    db.exec('BEGIN');
    try {
      copyByKey(old, insert, table.name, names, keys.map((c) => quote(c.name)).join(', '), lost);
    } finally {
      db.exec('COMMIT');
    }
  } else {
    const range = db.prepare(`${all.source} WHERE rowid BETWEEN ? AND ?`);
    const one = db.prepare(`${all.source} WHERE rowid = ?`);
    copyByRowid(old, { range, one }, table.name, lost);
  }
}

type Statement = Database.Statement<unknown[]>;

function copyByRowid(
  old: Connection,
  copier: { range: Statement; one: Statement },
  table: string,
  lost: string[],
) {
  const select = (order: 'ASC' | 'DESC', limit = '') =>
    old
      .prepare(
        `SELECT rowid FROM ${quote(table)} WHERE rowid BETWEEN ? AND ? ORDER BY rowid ${order}${limit}`,
      )
      .pluck()
      .safeIntegers(true);
  const forwards = select('ASC');
  const backwards = select('DESC');
  const seek = select('ASC', ' LIMIT 1');
  const gaps: { from: bigint; to: bigint; why: string }[] = [];
  let why = '';

  /** Reads rowids of [from, to] in one direction until the end or the damage; `last`: the last one read. */
  const scan = (statement: Statement, from: bigint, to: bigint) => {
    let last: bigint | undefined;
    try {
      for (const rowid of statement.iterate(from, to)) last = rowid as bigint;
      return { done: true, last };
    } catch (error) {
      why = fault(error);
      return { done: false, last };
    }
  };

  /** Whether a read starting at `at` gets past the seek: it lands on a readable leaf. */
  const readable = (at: bigint, to: bigint) => {
    try {
      seek.get(at, to);
      return true;
    } catch (error) {
      fault(error);
      return false;
    }
  };

  /**
   * The first rowid in [from, to] a read can start at, or undefined. Steps double up to 1/256 of the
   * range, then stay there, and the last step is narrowed by halving: a damaged stretch costs about 256
   * failed seeks (tens of ms) however wide, where splitting it in halves down to single rowids would cost
   * two seeks per rowid in it (seconds, minutes on a Pi for a lost interior page). The price: a readable
   * island narrower than a step, between two damaged stretches close together, may be passed over.
   */
  const firstReadable = (from: bigint, to: bigint): bigint | undefined => {
    const cap = (to - from) / 256n || 1n;
    let failed = from - 1n;
    for (let step = 1n, at = from; at <= to; step = step * 2n > cap ? cap : step * 2n, at += step) {
      if (!readable(at, to)) {
        failed = at;
        continue;
      }
      let ok = at;
      while (ok - failed > 1n) {
        const middle = failed + (ok - failed) / 2n;
        if (readable(middle, to)) ok = middle;
        else failed = middle;
      }
      return ok;
    }
    return undefined;
  };

  /**
   * Copies the rows of [from, to], where `to` is the last rowid of a stretch the scans read. A range scan
   * steps past its last row to see that it is the last, onto the damage right after it: the range stops
   * one short and that row is copied on its own. Where a row's own content fails (an overflow page, a
   * value), the range is split in halves down to that row.
   */
  const copy = (from: bigint, to: bigint): void => {
    if (from < to) copyRange(from, to - 1n);
    copyRange(to, to);
  };
  const copyRange = (from: bigint, to: bigint): void => {
    try {
      if (from === to) copier.one.run(from);
      else copier.range.run(from, to);
    } catch (error) {
      const why = fault(error);
      if (from === to) {
        gaps.push({ from, to, why });
        return;
      }
      const middle = from + (to - from) / 2n;
      copyRange(from, middle);
      copyRange(middle + 1n, to);
    }
  };

  // Forwards until the damage, backwards from the end down to it, then step through what lies between
  // for readable leaves, forwards again from each.
  let from = MIN_ROWID;
  let to = MAX_ROWID;
  while (from <= to) {
    const up = scan(forwards, from, to);
    if (up.last !== undefined) copy(from, up.last);
    if (up.done) break;
    const bad = up.last === undefined ? from : up.last + 1n;
    if (bad > to) break;
    const down = scan(backwards, bad, to);
    if (down.last !== undefined) copyRange(down.last, to);
    if (down.done) break;
    to = down.last === undefined ? to : down.last - 1n;
    if (to < bad) break;
    const next = bad < to ? firstReadable(bad + 1n, to) : undefined;
    gaps.push({ from: bad, to: next === undefined ? to : next - 1n, why });
    if (next === undefined) break;
    from = next;
  }
  for (const gap of merge(gaps.sort((a, b) => (a.from < b.from ? -1 : 1)))) {
    lost.push(`${table}: ${describeRange(gap.from, gap.to)} could not be read (${gap.why})`);
  }
}

/** Joins adjacent gaps (they never overlap). */
function merge<T extends { from: bigint; to: bigint }>(gaps: T[]): T[] {
  const out: T[] = [];
  for (const gap of gaps) {
    const last = out.at(-1);
    if (last && gap.from === last.to + 1n) last.to = gap.to;
    else out.push({ ...gap });
  }
  return out;
}

function describeRange(from: bigint, to: bigint): string {
  if (from === to) return `rowid ${from}`;
  if (from === MIN_ROWID && to === MAX_ROWID) return 'all rows';
  if (to === MAX_ROWID) return `rowids from ${from} on`;
  if (from === MIN_ROWID) return `rowids up to ${to}`;
  return `rowids ${from}-${to}`;
}

/**
 * A WITHOUT ROWID table has no number to seek by: read it from the start, then from the end, up to the
 * damage, through JS (Outpost's one such table, windows, holds aggregates that readings can rebuild).
 */
function copyByKey(
  old: Connection,
  insert: Statement,
  table: string,
  names: string,
  keys: string,
  lost: string[],
) {
  const desc = keys
    .split(', ')
    .map((k) => `${k} DESC`)
    .join(', ');
  let why = '';
  let unwritten = 0;
  /** Copies rows in `order` until the end or the damage; true when it reached the end. */
  const scan = (order: string) => {
    try {
      const statement = old.prepare(`SELECT ${names} FROM ${quote(table)} ORDER BY ${order}`);
      for (const row of statement.raw(true).safeIntegers(true).iterate() as Iterable<unknown[]>) {
        try {
          insert.run(row);
        } catch (error) {
          fault(error);
          unwritten++;
        }
      }
      return true;
    } catch (error) {
      why ||= fault(error);
      return false;
    }
  };
  // Backwards stops at the same damage forwards met (or further up): the two never overlap.
  if (!scan(keys) && !scan(desc)) {
    lost.push(`${table}: the rows between the damage met from the start and from the end (${why})`);
  }
  if (unwritten > 0) lost.push(`${table}: ${unwritten} rows read but not written`);
}

function copySequences(old: Connection, db: Connection, lost: string[]) {
  let rows: { name: string; seq: number | bigint }[];
  try {
    const hasSequence = old.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").get();
    if (!hasSequence) return;
    rows = old.prepare('SELECT name, seq FROM sqlite_sequence').safeIntegers(true).all() as typeof rows;
  } catch (error) {
    lost.push(`sqlite_sequence: ${message(error)}; AUTOINCREMENT ids go on from the highest salvaged one`);
    return;
  }
  const exists = db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").get();
  if (!exists) return;
  const raise = db.prepare('UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?');
  const add = db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)');
  const tables = new Set(userTables(db).map((t) => t.name));
  db.transaction(() => {
    for (const { name, seq } of rows) {
      if (!tables.has(name)) continue;
      if (raise.run(seq, name).changes === 0) add.run(name, seq);
    }
  })();
}

/**
 * An external-content FTS5 index (content='table') is rebuilt from its table. A contentless one (Outpost's
 * results_fts) cannot be rebuilt that way; its triggers filled it row by row as the salvage inserted.
 */
function rebuildExternalContentFts(db: Connection) {
  const fts = db
    .prepare<[], { name: string; sql: string }>(
      "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5%'",
    )
    .all();
  for (const { name, sql } of fts) {
    const content = /\bcontent\s*=\s*(?:'([^']*)'|"([^"]*)"|(\w+))/i.exec(sql);
    const table = content?.[1] ?? content?.[2] ?? content?.[3];
    if (table) db.prepare(`INSERT INTO ${quote(name)} (${quote(name)}) VALUES ('rebuild')`).run();
  }
}

function count(db: Connection, table: string): number {
  return (db.prepare(`SELECT count(*) AS n FROM ${quote(table)}`).get() as { n: number }).n;
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
