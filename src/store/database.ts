import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreOpenError } from './errors.js';
import { checkIntegrity, type IntegrityReport, moveAside } from './integrity.js';
import { migrations as allMigrations, type Migration } from './migrations.js';
import { salvage } from './salvage.js';

export type SqliteDatabase = Database.Database;

export interface DatabaseOptions {
  /** Path of the SQLite file; its folder is created. */
  file: string;
  /** normal or full, see the `store.synchronous` config key. Default normal. */
  synchronous?: 'normal' | 'full';
  /** Migrations to apply; default: all of Outpost's. */
  migrations?: readonly Migration[];
  /**
   * What to do when the file fails `PRAGMA quick_check` or is not a database at all. true: move it (with its
   * -wal and -shm) into `<folder>/corrupt-<time>/`, start a fresh database and copy into it every row that
   * still reads; the gateway keeps running unattended. false: throw a StoreOpenError that names the
   * problem and the manual steps, touching nothing. Default true.
   */
  recover?: boolean;
  /** Wall-clock time in epoch ms, for the name of the corrupt-<time> folder. Default Date.now. */
  now?: () => number;
}

export interface CheckedDatabase {
  db: SqliteDatabase;
  /** `ok: false` when the file was damaged and recovered: log it at error level. */
  integrity: IntegrityReport;
}

/*
 * Storage policy for SD cards (issue 7). Flash wears per erase block and a Pi's card is slow at random
 * writes and fsync, so the aim is few, coalesced writes, and space that comes back without rewriting the
 * whole file:
 *
 * - auto_vacuum = INCREMENTAL, new databases only. It can only be chosen before the first table is
 *   created, and (measured with better-sqlite3's SQLite 3.51) before journal_mode = WAL as well: after it,
 *   the setting is silently ignored. An existing database keeps what it was created with (NONE for files
 *   made before this policy); converting takes one full VACUUM, an operator's decision, never automatic.
 *   FULL would move pages at every commit, on the hot ingest path; NONE never gives space back, and after
 *   a backlog (an outbox while the broker was away, a burst of frames in the journal) the file would stay
 *   at its high-water mark on a card shared with a 3 GB model and the media. INCREMENTAL costs one
 *   pointer-map page per ~800 pages and lets `maintain()` free pages in bounded steps when we choose.
 * - No automatic full VACUUM: it rewrites every page of the file (a full card-write of wear each time)
 *   and needs up to twice the database's size free while it runs, holding the write lock throughout, so
 *   ingest (which acknowledges only after commit) would stall for its length.
 * - wal_autocheckpoint = 1000 pages (4 MiB at the 4 KiB page size), SQLite's default, set so it is a
 *   choice: a checkpoint writes each page changed since the last one once, so the hot tail pages of the
 *   journal and readings are written to the main file once per ~1000 WAL frames, not once per commit.
 *   With synchronous = NORMAL the checkpoint is also the only fsync. It runs inside the committing call,
 *   on the event loop: a larger interval coalesces a little more but lengthens that stall on a slow card
 *   and the WAL a power cut leaves to replay.
 * - journal_size_limit = 8 MiB: a checkpoint does not shrink the WAL file; the next writer reuses it
 *   from the start and, with this limit, truncates it to 8 MiB. Twice the steady-state WAL, so ordinary
 *   cycles reuse the same blocks in place (no truncate-and-regrow filesystem metadata writes); a large
 *   transaction (retention, a recovery's salvage) no longer leaves a WAL of hundreds of MB behind.
 * - The page size stays at SQLite's 4 KiB, the flash page size of common cards and the OS page size.
 */
/** Checkpoint the WAL into the main file after this many pages (frames); see the policy above. */
export const WAL_AUTOCHECKPOINT_PAGES = 1000;
/** The WAL file is truncated to this many bytes when it is reset after a checkpoint. */
export const JOURNAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024;

/**
 * Opens the database in WAL mode and brings its schema up to date. A damaged file is recovered (see
 * `recover`); use `openDatabaseChecked` to see, and log, the report.
 */
export function openDatabase(options: DatabaseOptions): SqliteDatabase {
  return openDatabaseChecked(options).db;
}

/**
 * Checks the file with `PRAGMA quick_check` before anything writes to it, recovers it when it is damaged
 * (unless `recover: false`), then opens it in WAL mode and migrates. quick_check reads the whole file
 * (seconds for hundreds of MB on a card): affordable once at start, and the one time a damaged page is
 * cheap to handle, before ingest writes on top of it.
 */
export function openDatabaseChecked(options: DatabaseOptions): CheckedDatabase {
  const { file } = options;
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (error) {
    throw new StoreOpenError(file, (error as Error).message);
  }
  let problems: string[];
  try {
    problems = checkIntegrity(file);
  } catch (error) {
    // Not damage we can act on (permissions, an I/O error, a lock held elsewhere): moving the file
    // aside would not help and might lose data, so stop with the cause.
    throw new StoreOpenError(file, (error as Error).message);
  }
  if (problems.length === 0) return { db: open(options), integrity: { ok: true } };
  if (options.recover === false) throw new StoreOpenError(file, manualSteps(file, problems));

  let movedTo: string;
  try {
    movedTo = moveAside(file, (options.now ?? Date.now)());
  } catch (error) {
    throw new StoreOpenError(
      file,
      `it is damaged (${problems[0]}) and could not be moved aside: ${(error as Error).message}`,
    );
  }
  const db = open(options);
  const copied = salvage(db, join(movedTo, basename(file)));
  return {
    db,
    integrity: {
      ok: false,
      problems,
      movedTo,
      salvaged: copied.salvaged,
      lost: copied.lost,
      hint:
        `the damaged database was moved to ${movedTo} and kept; Outpost continues with a fresh one holding ` +
        `the rows that could be read. \`sqlite3 ${join(movedTo, basename(file))} .recover\` can try to get more.`,
    },
  };
}

function manualSteps(file: string, problems: string[]): string {
  const more = problems.length > 1 ? ` (+${problems.length - 1} more)` : '';
  const saved = join(dirname(file), 'corrupt');
  return (
    `it is damaged: ${problems[0]}${more}. It was left untouched. To recover by hand: stop Outpost; ` +
    `mkdir ${saved} && mv ${file} ${file}-wal ${file}-shm ${saved}/ (the -wal and -shm may be absent); ` +
    `sqlite3 ${join(saved, basename(file))} .recover | sqlite3 ${file}; start Outpost. ` +
    'Or let Outpost do this itself by opening with recovery on (the default).'
  );
}

function open(options: DatabaseOptions): SqliteDatabase {
  let db: SqliteDatabase;
  try {
    db = new Database(options.file);
  } catch (error) {
    throw new StoreOpenError(options.file, (error as Error).message);
  }
  try {
    // Before journal_mode and the first table, or it is ignored; a no-op on an existing database.
    if (db.pragma('page_count', { simple: true }) === 0) db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('temp_store = MEMORY');
    db.pragma('cache_size = -16000');
    migrate(db, options.migrations ?? allMigrations);
    return db;
  } catch (error) {
    db.close();
    throw error instanceof StoreOpenError
      ? error
      : new StoreOpenError(options.file, (error as Error).message);
  }
}

function migrate(db: SqliteDatabase, migrations: readonly Migration[]) {
  db.exec(`CREATE TABLE IF NOT EXISTS migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = new Set(
    db
      .prepare<[], { version: number }>('SELECT version FROM migrations')
      .all()
      .map((row) => row.version),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (newest > known) {
    throw new Error(
      `database schema version ${newest} is newer than this Outpost knows (${known}); upgrade Outpost`,
    );
  }
  const record = db.prepare('INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    })();
  }
}
