import { existsSync, statSync } from 'node:fs';
import type { SqliteDatabase } from './database.js';

export interface MaintenanceOptions {
  /**
   * At most this many free pages are given back to the filesystem in one call (4 KiB each), so one call
   * costs a bounded amount of writing however much retention deleted. Default 2048 (8 MiB).
   */
  vacuumPages?: number;
  /** Pages per `incremental_vacuum` statement, each its own short write transaction. Default 256. */
  stepPages?: number;
}

export interface MaintenanceReport {
  /** bytes of the -wal file before and after; 0 after a checkpoint that no reader held up */
  walBytesBefore: number;
  walBytesAfter: number;
  /** WAL frames copied into the main file by this call's checkpoint, and frames the WAL held */
  checkpointedPages: number;
  walPages: number;
  /** true when a reader kept the checkpoint from finishing (it is retried by the next call) */
  checkpointBusy: boolean;
  /** pages taken off the end of the file by incremental_vacuum in this call */
  freedPages: number;
  /** free pages still in the file (reused by later writes, or freed by later calls) */
  freelistPages: number;
  pageCount: number;
  pageSize: number;
  /** a database created before the SD-card policy is 'none': incremental_vacuum does nothing there */
  autoVacuum: 'none' | 'full' | 'incremental';
}

const AUTO_VACUUM = ['none', 'full', 'incremental'] as const;

/**
 * Gives free pages back and empties the WAL, for a quiet moment after retention (no full VACUUM ever:
 * see the SD-card policy in database.ts).
 *
 * First `incremental_vacuum` in steps of `stepPages` up to `vacuumPages`: each step moves pages from the
 * end of the file into free slots and truncates, in the WAL. Then `wal_checkpoint(TRUNCATE)`: it copies
 * those pages into the main file, which is where the file actually shrinks, and leaves a zero-byte WAL,
 * so the space is on the card again and a power cut right after has nothing to replay. TRUNCATE rather
 * than PASSIVE because this runs rarely and Outpost is the database's only connection: there are no
 * readers to wait for, except an operator's sqlite3 shell, bounded by busy_timeout and reported as
 * `checkpointBusy`. PASSIVE would leave the WAL file at its size (journal_size_limit only trims it to
 * 8 MiB at the next reset). Day-to-day checkpoints stay the automatic PASSIVE ones (wal_autocheckpoint).
 */
export function maintain(db: SqliteDatabase, options: MaintenanceOptions = {}): MaintenanceReport {
  const budget = Math.max(0, Math.floor(options.vacuumPages ?? 2048));
  const step = Math.max(1, Math.floor(options.stepPages ?? 256));
  const walBytesBefore = walBytes(db);
  const autoVacuum = AUTO_VACUUM[db.pragma('auto_vacuum', { simple: true }) as number] ?? 'none';
  const pageCount = () => db.pragma('page_count', { simple: true }) as number;
  const freelist = () => db.pragma('freelist_count', { simple: true }) as number;

  let freedPages = 0;
  if (autoVacuum === 'incremental') {
    while (freedPages < budget && freelist() > 0) {
      const before = pageCount();
      // exec steps the statement to the end: stepped once (prepare().run()) it frees a single page.
      db.exec(`PRAGMA incremental_vacuum(${Math.min(step, budget - freedPages)})`);
      const freed = before - pageCount();
      if (freed <= 0) break;
      freedPages += freed;
    }
  }

  const [checkpoint] = db.pragma('wal_checkpoint(TRUNCATE)') as {
    busy: number;
    log: number;
    checkpointed: number;
  }[];
  return {
    walBytesBefore,
    walBytesAfter: walBytes(db),
    // -1 when the database is not in WAL mode (an in-memory one).
    checkpointedPages: Math.max(0, checkpoint?.checkpointed ?? 0),
    walPages: Math.max(0, checkpoint?.log ?? 0),
    checkpointBusy: checkpoint?.busy === 1,
    freedPages,
    freelistPages: freelist(),
    pageCount: pageCount(),
    pageSize: db.pragma('page_size', { simple: true }) as number,
    autoVacuum,
  };
}

export interface DatabaseBytes {
  /** bytes in pages that hold data: (page_count - freelist_count) * page_size */
  liveBytes: number;
  /** size of the main file on disk (0 for an in-memory database) */
  fileBytes: number;
  /** size of the -wal file on disk */
  walBytes: number;
}

/** How much of the database is data, and how much the card holds for it. */
export function databaseBytes(db: SqliteDatabase): DatabaseBytes {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  const free = db.pragma('freelist_count', { simple: true }) as number;
  return {
    liveBytes: (pages - free) * pageSize,
    fileBytes: db.memory ? 0 : fileSize(db.name),
    walBytes: walBytes(db),
  };
}

function walBytes(db: SqliteDatabase): number {
  return db.memory ? 0 : fileSize(`${db.name}-wal`);
}

function fileSize(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}
