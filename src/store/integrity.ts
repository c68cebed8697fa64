import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';

type Connection = Database.Database;

/**
 * What the integrity check at open found. `ok: false`: the file was damaged, moved aside and kept, and a
 * fresh database was started with what could be read; log it at error level with `hint`.
 */
export type IntegrityReport =
  | { ok: true }
  | {
      ok: false;
      /** what quick_check (or the attempt to read the file at all) reported, at most 20 lines */
      problems: string[];
      /** folder that now holds the damaged file with its -wal and -shm, never deleted */
      movedTo: string;
      /** rows in the fresh database per table after the salvage */
      salvaged: Record<string, number>;
      /** what could not be read or written, one line per table or per unreadable range of a table */
      lost: string[];
      /** one line for the operator: where the copy is, and `sqlite3 … .recover` to try for more */
      hint: string;
    };

/** SQLite result codes that mean the file's content is damaged, as opposed to unreachable or locked. */
const DAMAGE = /^SQLITE_(CORRUPT|NOTADB)/;
/** Damage, or a row that damage made unfit for the schema: worth narrowing down row by row. */
const ROW_FAULT = /^SQLITE_(CORRUPT|NOTADB|CONSTRAINT|MISMATCH|TOOBIG)/;

/** quick_check lists at most this many problems; the first few say what the operator needs to know. */
const MAX_PROBLEMS = 20;

/**
 * Runs `PRAGMA quick_check` on a read-only connection, which never checkpoints or deletes the -wal on
 * close, so a damaged file stays exactly as found. Returns the problems, none when the file is healthy,
 * absent or empty (a new database). Errors that are not damage (permissions, I/O, a lock) are thrown.
 */
export function checkIntegrity(file: string): string[] {
  if (sizeOf(file) === 0) {
    // SQLite deletes a WAL it finds beside an empty database: keep it, it may be the only copy of its
    // commits (an interrupted moveAside, or a database removed by hand without its WAL).
    const wal = `${file}-wal`;
    return sizeOf(wal) > 0 ? [`${basename(wal)} exists without its database; SQLite would discard it`] : [];
  }
  let db: Connection | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const rows = db.pragma(`quick_check(${MAX_PROBLEMS})`) as { quick_check: string }[];
    if (rows.length === 1 && rows[0]!.quick_check === 'ok') return [];
    // One row may hold several problems, a line each, under a '*** in database main ***' heading.
    return rows
      .flatMap((row) => row.quick_check.split('\n'))
      .filter((line) => line !== '' && !line.startsWith('***'))
      .slice(0, MAX_PROBLEMS);
  } catch (error) {
    // quick_check throws instead of listing when the damage stops it from walking a tree at all.
    if (isDamage(error)) return [(error as Error).message];
    throw error;
  } finally {
    db?.close();
  }
}

export function sizeOf(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

function isDamage(error: unknown, codes = DAMAGE): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && codes.test(code);
}

/**
 * Returns the message of an error that damage explains; rethrows any other (a full card, an I/O error):
 * salvage would only fail the same way on every row, so the table gives up at once.
 */
export function fault(error: unknown): string {
  if (!isDamage(error, ROW_FAULT)) throw error;
  return message(error);
}

/**
 * Moves `file` and its -wal and -shm (and a -journal, should a hand-made rollback-mode file have one)
 * into `<folder>/corrupt-<UTC time>/` under the same names (SQLite finds a WAL by its database's name)
 * and returns that folder. The time has `-` for `:` so the name is valid on the FAT and exFAT sticks a
 * gateway's data may live on. A rename within one folder: no copy, no extra space, atomic per file.
 */
export function moveAside(file: string, now: number): string {
  const stamp = new Date(now).toISOString().replace(/:/g, '-');
  let folder = join(dirname(file), `corrupt-${stamp}`);
  for (let n = 1; existsSync(folder); n++) folder = join(dirname(file), `corrupt-${stamp}-${n}`);
  mkdirSync(folder);
  // The database first: a crash between the renames must not leave it beside no WAL, where it would open
  // as an older, perhaps healthy-looking state; a WAL left without it is caught by checkIntegrity.
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, join(folder, basename(file) + suffix));
  }
  return folder;
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
