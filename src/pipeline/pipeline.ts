import type { Clock, Logger, Timer } from '../common/index.js';
import { TopicFilter } from '../common/index.js';
import type { RouteConfig } from '../config/index.js';
import type { JournalEntry } from '../store/index.js';
import { SensorStage, type SensorStageOptions } from './sensorStage.js';
import { emptyBatch, type PipelineSink, type PipelineSource, type StageBatch } from './types.js';

export interface PipelineOptions {
  routes: readonly RouteConfig[];
  source: PipelineSource;
  sink: PipelineSink;
  sensors: SensorStageOptions;
  /** Journal entries handled per transaction. */
  batchSize: number;
  clock: Clock;
  logger: Logger;
}

export interface PipelineStats {
  processed: number;
  rejected: number;
  readings: number;
  anomalies: number;
  windows: number;
  late: number;
  series: number;
  /** failed batch commits (retried) */
  commitFailures: number;
}

/**
 * Drains the journal in batches through the stage of each entry's route and commits each batch's
 * output in one transaction. Wakes on `notify()` after a commit, and on a timer for windows that close
 * by time.
 */
export class Pipeline {
  readonly #sensors: SensorStage;
  readonly #routes: Map<string, { route: RouteConfig; filter: TopicFilter }>;
  readonly #stats = { processed: 0, rejected: 0, readings: 0, anomalies: 0, windows: 0, commitFailures: 0 };
  #scheduled = false;
  #lastId = 0;
  /** Entries ingest just committed, handed over in memory; the journal is read only to fill gaps. */
  #handed: JournalEntry[] = [];
  #ticker: Timer | undefined;
  #retry: Timer | undefined;
  #stopped = false;

  constructor(private readonly options: PipelineOptions) {
    this.#sensors = new SensorStage(options.sensors);
    this.#routes = new Map(
      options.routes.map((route) => [route.name, { route, filter: new TopicFilter(route.filter) }]),
    );
  }

  /** Processes what the journal holds from earlier runs, then keeps up with new entries. */
  start(): void {
    this.#lastId = this.options.source.journalWatermark();
    const tick = Math.min(this.options.sensors.windowMs, 10_000);
    this.#ticker = this.options.clock.setInterval(() => this.#closeDueWindows(), tick);
    this.notify();
  }

  /**
   * New journal entries were committed. With `entries`, they are processed from memory, not read back;
   * a gap (entries from before a restart, or a dropped hand-over) is filled from the journal.
   */
  notify(entries?: readonly JournalEntry[]): void {
    // Bounded: a backlog beyond this many entries is read from the journal instead.
    if (entries && this.#handed.length + entries.length <= this.options.batchSize * 20)
      this.#handed.push(...entries);
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.drain();
    });
  }

  /** Processes every pending entry now, batch by batch; returns how many entries it handled. */
  drain(): number {
    let handled = 0;
    for (;;) {
      const entries = this.#next();
      if (entries.length === 0) return handled;
      const batch = emptyBatch();
      for (const entry of entries) this.#process(entry, batch);
      batch.throughId = entries.at(-1)!.id;
      if (!this.#commit(batch, entries)) return handled;
      this.#lastId = entries.at(-1)!.id;
      handled += entries.length;
      // Yield to the event loop between batches so acknowledgements keep flowing under a backlog.
      if (entries.length === this.options.batchSize) {
        this.notify();
        return handled;
      }
    }
  }

  /** The next batch after #lastId: from memory when it follows on, else from the journal. */
  #next(): JournalEntry[] {
    let handed = this.#handed;
    if (handed.length > 0 && handed[0]!.id <= this.#lastId) {
      handed = handed.filter((e) => e.id > this.#lastId);
      this.#handed = handed;
    }
    // Only the run that follows on without a gap (a dropped hand-over leaves one) comes from memory.
    let run = 0;
    while (run < handed.length && run < this.options.batchSize && handed[run]!.id === this.#lastId + 1 + run)
      run += 1;
    if (run > 0) return handed.splice(0, run);
    return this.options.source.pendingJournal(this.options.batchSize, this.#lastId);
  }

  /** Stops waking up; with `flush`, closes every open window into a last batch. */
  stop(flush: boolean): void {
    this.#stopped = true;
    this.#ticker?.cancel();
    this.#retry?.cancel();
    this.drain();
    if (flush) {
      const batch = emptyBatch();
      batch.windows.push(...this.#sensors.closeWindows(this.options.clock.now(), true));
      if (batch.windows.length > 0) this.#commit(batch, []);
    }
  }

  stats(): PipelineStats {
    return { ...this.#stats, late: this.#sensors.late, series: this.#sensors.seriesCount };
  }

  #process(entry: JournalEntry, batch: StageBatch) {
    const known = this.#routes.get(entry.route);
    const captures = known?.filter.match(entry.topic);
    if (!known || !captures) {
      batch.rejected.push({
        journalId: entry.id,
        code: 'no-route',
        reason: `route "${entry.route}" is no longer configured`,
      });
      return;
    }
    switch (known.route.kind) {
      case 'sensor':
        this.#sensors.process(entry, captures, batch);
        break;
    }
  }

  #closeDueWindows() {
    const windows = this.#sensors.closeWindows(this.options.clock.now());
    if (windows.length === 0) return;
    const batch = emptyBatch();
    batch.windows.push(...windows);
    this.#commit(batch, []);
  }

  #commit(batch: StageBatch, entries: readonly JournalEntry[]): boolean {
    try {
      this.options.sink.commit(batch, new Map(entries.map((e) => [e.id, e])));
    } catch (error) {
      // Nothing of the batch is committed; its entries stay pending and are retried.
      this.#stats.commitFailures += 1;
      this.options.logger.error({ err: error }, 'pipeline commit failed; retrying in 1 s');
      this.#retry ??= this.options.clock.setTimeout(() => {
        this.#retry = undefined;
        this.notify();
      }, 1000);
      return false;
    }
    this.#stats.processed += batch.processed.length;
    this.#stats.rejected += batch.rejected.length;
    this.#stats.readings += batch.readings.length;
    this.#stats.anomalies += batch.anomalies.length;
    this.#stats.windows += batch.windows.length;
    return true;
  }
}
