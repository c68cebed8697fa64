import { statfs } from 'node:fs/promises';
import type { Clock, Logger } from '../common/index.js';
import type { Store } from '../store/index.js';

/** Free and total bytes of the volume that holds `path`. */
export type DiskProbe = (path: string) => Promise<{ freeBytes: number; totalBytes: number }>;

/** statfs(2): what an unprivileged process may still write (bavail), as `df` shows it. */
export const statfsProbe: DiskProbe = async (path) => {
  const s = await statfs(path);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
};

export interface DiskGuardOptions {
  store: Store;
  dataDir: string;
  /** keep at least this free on the data volume; 0: no check */
  minFreeBytes: number;
  /** the database uses at most this */
  maxDatabaseBytes: number;
  probe?: DiskProbe;
  clock: Clock;
  logger: Logger;
}

export interface DiskStatus {
  freeBytes: number | null;
  totalBytes: number | null;
  minFreeBytes: number;
  /** free space is below minFreeBytes even after an emergency prune */
  low: boolean;
  database: { usedBytes: number; fileBytes: number; walBytes: number; maxBytes: number };
  emergencyPrunes: number;
  budgetPrunes: number;
  /** ISO 8601 and what the last emergency or budget prune removed */
  lastPrune: { at: string; reason: string; mediaFiles: number; rows: number; freedBytes: number } | null;
}

/** Free space an emergency prune aims for, as a multiple of minFreeBytes: room before the next one. */
const EMERGENCY_TARGET = 1.25;
/** Shrink steps one check takes at most (each a short transaction), so one check never stalls ingest long. */
const MAX_STEPS = 50;

/**
 * Keeps the data volume and the database within bounds between the age-based retention runs.
 *
 * Database budget: past `maxDatabaseBytes` in use, the largest table gives back its oldest tenth, step by
 * step, then the freed pages go back to the file system. Low disk: below `minFreeBytes` free, the oldest
 * media go first (a file deleted is space at once), then the oldest rows in larger steps with their pages
 * returned, until 1.25x minFreeBytes is free or nothing more may go. What is still to be processed or sent
 * is never touched; if the card is still full, a journal commit fails, nothing is acknowledged, and the
 * broker keeps the messages (at-least-once holds).
 */
export class DiskGuard {
  #free: number | null = null;
  #total: number | null = null;
  #low = false;
  #emergencyPrunes = 0;
  #budgetPrunes = 0;
  #last: DiskStatus['lastPrune'] = null;
  #running = false;

  constructor(private readonly o: DiskGuardOptions) {}

  /** One check; concurrent calls return at once. */
  async check(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      this.#budget();
      if (this.o.minFreeBytes > 0) await this.#freeSpace();
    } finally {
      this.#running = false;
    }
  }

  /** Free space stayed below minFreeBytes after the last check's prune. */
  get low(): boolean {
    return this.#low;
  }

  status(): DiskStatus {
    const bytes = this.o.store.bytes();
    return {
      freeBytes: this.#free,
      totalBytes: this.#total,
      minFreeBytes: this.o.minFreeBytes,
      low: this.#low,
      database: {
        usedBytes: bytes.liveBytes,
        fileBytes: bytes.fileBytes,
        walBytes: bytes.walBytes,
        maxBytes: this.o.maxDatabaseBytes,
      },
      emergencyPrunes: this.#emergencyPrunes,
      budgetPrunes: this.#budgetPrunes,
      lastPrune: this.#last,
    };
  }

  #budget() {
    const { store, maxDatabaseBytes, logger } = this.o;
    const before = store.bytes().liveBytes;
    if (before <= maxDatabaseBytes) return;
    let rows = 0;
    const tables = new Set<string>();
    for (let i = 0; i < MAX_STEPS && store.bytes().liveBytes > maxDatabaseBytes; i++) {
      const step = store.shrinkLargest(0.1);
      if (!step) break;
      rows += step.rows;
      tables.add(step.table);
    }
    store.maintain({ vacuumPages: 65_536 });
    this.#budgetPrunes += 1;
    const after = store.bytes().liveBytes;
    this.#record('database budget', 0, rows, before - after);
    logger.warn(
      { usedBytes: after, maxBytes: maxDatabaseBytes, rows, tables: [...tables] },
      'database over store.maxDatabaseBytes: oldest rows of the largest tables pruned',
    );
  }

  async #freeSpace() {
    const { store, dataDir, minFreeBytes, logger } = this.o;
    const probe = this.o.probe ?? statfsProbe;
    const read = async () => {
      const disk = await probe(dataDir);
      this.#free = disk.freeBytes;
      this.#total = disk.totalBytes;
      return disk.freeBytes;
    };
    const start = await read();
    if (start >= minFreeBytes) {
      if (this.#low) logger.info({ freeBytes: start }, 'free space on the data volume is back');
      this.#low = false;
      return;
    }
    const target = minFreeBytes * EMERGENCY_TARGET;
    let free = start;
    let mediaFiles = 0;
    let rows = 0;
    // Media first: the oldest files, as many bytes as are missing.
    const media = store.media.totals();
    if (media.bytes > 0) {
      const paths = store.media.expired(
        { before: Number.NEGATIVE_INFINITY, maxBytes: Math.max(0, media.bytes - (target - free)) },
        100_000,
      );
      if (paths.length > 0) {
        store.transaction(() => store.media.forget(paths));
        await store.media.unlink(paths);
        mediaFiles = paths.length;
        free = await read();
      }
    }
    // Then rows, a quarter of the largest table at a time, their pages given back each round.
    for (let i = 0; i < MAX_STEPS && free < target; i++) {
      const step = store.shrinkLargest(0.25);
      if (!step) break;
      rows += step.rows;
      store.maintain({ vacuumPages: 65_536 });
      free = await read();
    }
    this.#emergencyPrunes += 1;
    this.#low = free < minFreeBytes;
    this.#record('low disk', mediaFiles, rows, free - start);
    logger.warn(
      { freeBytes: free, minFreeBytes, mediaFiles, rows, stillLow: this.#low },
      'low disk: emergency prune of the oldest media and rows',
    );
  }

  #record(reason: string, mediaFiles: number, rows: number, freedBytes: number) {
    const at = new Date(this.o.clock.now()).toISOString();
    this.#last = { at, reason, mediaFiles, rows, freedBytes: Math.max(0, freedBytes) };
  }
}
