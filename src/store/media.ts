import type { Dirent } from 'node:fs';
import { mkdir, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { SqliteDatabase } from './database.js';

/** A file written under the media folder, to be recorded in the transaction that references it. */
export interface MediaFile {
  /** relative to the media folder, '/'-separated */
  path: string;
  source: string;
  kind: 'thumbnail' | 'input' | 'clip';
  bytes: number;
}

export interface MediaTotals {
  files: number;
  bytes: number;
}

export interface MediaRetention {
  /** files created before this are deleted, epoch ms */
  before: number;
  /** past this total the oldest files are deleted, bytes */
  maxBytes: number;
}

/** Relative media paths are built by the stages from validated names; this refuses anything else. */
const SAFE_PATH = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)*[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Thumbnails, model inputs and clips under `<dataDir>/media`, with a row per file in `media`. Files are
 * written (atomically: temp file and rename) before the transaction that records them commits, so a
 * committed row always has its file; a crash in between leaves an orphan file that `sweepOrphans` removes
 * at the next start. Deleting is the reverse: rows go in a transaction, files after it.
 */
export class MediaStore {
  readonly root: string;
  readonly #stmt;

  constructor(db: SqliteDatabase, root: string) {
    this.root = root;
    this.#stmt = {
      insert: db.prepare(
        'INSERT OR REPLACE INTO media (path, source, kind, bytes, created_at) VALUES (?, ?, ?, ?, ?)',
      ),
      remove: db.prepare('DELETE FROM media WHERE path = ?'),
      totals: db.prepare<[], { files: number; bytes: number | null }>(
        'SELECT count(*) AS files, sum(bytes) AS bytes FROM media',
      ),
      oldest: db.prepare<[number], { path: string; bytes: number; created_at: number }>(
        'SELECT path, bytes, created_at FROM media ORDER BY created_at, path LIMIT ?',
      ),
      has: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM media WHERE path = ?'),
    };
  }

  /** Absolute path of a relative media path; throws for a path that could leave the folder. */
  resolve(path: string): string {
    if (!SAFE_PATH.test(path) || path.split('/').some((level) => level === '..' || level === '.'))
      throw new Error(`not a media path: ${JSON.stringify(path).slice(0, 80)}`);
    return join(this.root, ...path.split('/'));
  }

  /** Writes a file (not yet recorded); returns its record for `record` in the committing transaction. */
  async write(file: Omit<MediaFile, 'bytes'>, bytes: Uint8Array): Promise<MediaFile> {
    const target = this.resolve(file.path);
    await mkdir(dirname(target), { recursive: true });
    const temp = `${target}.tmp`;
    await writeFile(temp, bytes);
    await rename(temp, target);
    return { ...file, bytes: bytes.byteLength };
  }

  /** Records written files; call inside the transaction that references them. */
  record(files: readonly MediaFile[], now: number): void {
    for (const f of files) this.#stmt.insert.run(f.path, f.source, f.kind, f.bytes, now);
  }

  /** Forgets files; call inside a transaction, then `unlink` the same paths after it commits. */
  forget(paths: readonly string[]): void {
    for (const path of paths) this.#stmt.remove.run(path);
  }

  /** Deletes the files of forgotten rows; a file already gone is fine. */
  async unlink(paths: readonly string[]): Promise<void> {
    await Promise.all(paths.map((path) => unlink(this.resolve(path)).catch(() => undefined)));
  }

  totals(): MediaTotals {
    const row = this.#stmt.totals.get()!;
    return { files: row.files, bytes: row.bytes ?? 0 };
  }

  /**
   * The oldest files retention no longer keeps (older than `before`, or past `maxBytes` in total),
   * at most `limit`: forget them in a transaction, then unlink them.
   */
  expired(policy: MediaRetention, limit = 1000): string[] {
    let { bytes } = this.totals();
    const out: string[] = [];
    for (const row of this.#stmt.oldest.all(limit)) {
      if (row.created_at >= policy.before && bytes <= policy.maxBytes) break;
      out.push(row.path);
      bytes -= row.bytes;
    }
    return out;
  }

  /**
   * Deletes files no row references (written by a run that crashed before its commit) and stale temp
   * files; returns how many. Run at start, before any stage writes.
   */
  async sweepOrphans(): Promise<number> {
    let removed = 0;
    /** Returns whether anything is kept under `dir`. */
    const walk = async (dir: string): Promise<boolean> => {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return false;
      }
      let kept = 0;
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (await walk(full)) kept += 1;
          continue;
        }
        const path = relative(this.root, full).split(sep).join('/');
        if (entry.name.endsWith('.tmp') || this.#stmt.has.get(path)!.n === 0) {
          await rm(full, { force: true });
          removed += 1;
        } else kept += 1;
      }
      // Day folders emptied by retention go too.
      if (kept === 0 && dir !== this.root) await rm(dir, { recursive: true, force: true });
      return kept > 0;
    };
    await walk(this.root);
    return removed;
  }
}
