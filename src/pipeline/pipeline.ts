import type { Clock, Logger, Timer } from '../common/index.js';
import { TopicFilter } from '../common/index.js';
import type { RouteConfig } from '../config/index.js';
import type { JournalEntry } from '../store/index.js';
import { AudioStage, type AudioStageOptions, type AudioStageStats } from './audioStage.js';
import { FrameStage, type FrameStageOptions, type FrameStageStats } from './frameStage.js';
import { SensorStage, type SensorStageOptions } from './sensorStage.js';
import { emptyBatch, type PipelineSink, type PipelineSource, type StageBatch } from './types.js';

export interface PipelineOptions {
  routes: readonly RouteConfig[];
  source: PipelineSource;
  sink: PipelineSink;
  sensors: SensorStageOptions;
  frames: FrameStageOptions;
  audio: AudioStageOptions;
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
  frames: FrameStageStats;
  audio: AudioStageStats;
}

/** Payload bytes of the entries ingest hands over in memory, at most; past it they are read back. */
const HANDED_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Drains the journal in batches through the stage of each entry's route and commits each batch's
 * output in one transaction. Wakes on `notify()` after a commit, and on a timer for windows that close
 * by time. Sensor entries are handled synchronously; a frame (decoded off the event loop by sharp) is
 * committed in a batch of its own, so nothing else waits uncommitted while it is decoded.
 */
export class Pipeline {
  readonly #sensors: SensorStage;
  readonly #frames: FrameStage;
  readonly #audio: AudioStage;
  readonly #routes: Map<string, { route: RouteConfig; filter: TopicFilter }>;
  readonly #stats = { processed: 0, rejected: 0, readings: 0, anomalies: 0, windows: 0, commitFailures: 0 };
  #scheduled = false;
  #lastId = 0;
  /** Entries ingest just committed, handed over in memory; the journal is read only to fill gaps. */
  #handed: JournalEntry[] = [];
  #handedBytes = 0;
  /** the drain in progress; notify() during it asks for another round */
  #draining: Promise<number> | undefined;
  #again = false;
  #ticker: Timer | undefined;
  #retry: Timer | undefined;
  #stopped = false;

  constructor(private readonly options: PipelineOptions) {
    this.#sensors = new SensorStage(options.sensors);
    this.#frames = new FrameStage(options.frames);
    this.#audio = new AudioStage(options.audio);
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
    if (entries) {
      const bytes = entries.reduce((sum, e) => sum + e.payload.length, 0);
      // Bounded: a backlog beyond this is read from the journal instead.
      if (
        this.#handed.length + entries.length <= this.options.batchSize * 20 &&
        this.#handedBytes + bytes <= HANDED_MAX_BYTES
      ) {
        this.#handed.push(...entries);
        this.#handedBytes += bytes;
      }
    }
    if (this.#draining) this.#again = true;
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.drain();
    });
  }

  /**
   * Processes pending entries now, batch by batch, up to one full batch before yielding to the event loop
   * (it then schedules itself again); resolves with how many entries it handled. One drain runs at a time:
   * a call during one waits for it.
   */
  async drain(): Promise<number> {
    if (this.#draining) return this.#draining;
    this.#draining = this.#drain();
    try {
      return await this.#draining;
    } finally {
      this.#draining = undefined;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.notify();
      }
    }
  }

  async #drain(): Promise<number> {
    let handled = 0;
    for (;;) {
      const entries = this.#next();
      if (entries.length === 0) return handled;
      let batch = emptyBatch();
      let from = 0;
      // Commits entries[from..to) as one batch; false when the commit failed (they stay pending).
      const commit = (to: number) => {
        if (to === from) return true;
        const part = entries.slice(from, to);
        batch.throughId = part.at(-1)!.id;
        if (!this.#commit(batch, part)) return false;
        this.#lastId = batch.throughId;
        handled += part.length;
        from = to;
        batch = emptyBatch();
        return true;
      };
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        const route = this.#route(entry, batch);
        if (route?.kind !== 'frame' && route?.kind !== 'audio') {
          if (route) this.#sensors.process(entry, route.captures, batch);
          continue;
        }
        if (!commit(i)) return handled;
        await this.#media(route.kind, entry, route.captures, batch);
        if (!commit(i + 1)) return handled;
      }
      if (!commit(entries.length)) return handled;
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
      this.#handedBytes = handed.reduce((sum, e) => sum + e.payload.length, 0);
    }
    // Only the run that follows on without a gap (a dropped hand-over leaves one) comes from memory.
    let run = 0;
    while (run < handed.length && run < this.options.batchSize && handed[run]!.id === this.#lastId + 1 + run)
      run += 1;
    if (run > 0) {
      const taken = handed.splice(0, run);
      this.#handedBytes -= taken.reduce((sum, e) => sum + e.payload.length, 0);
      return taken;
    }
    return this.options.source.pendingJournal(this.options.batchSize, this.#lastId);
  }

  /** Stops waking up after draining what is pending; with `flush`, closes every open window into a last batch. */
  async stop(flush: boolean): Promise<void> {
    this.#stopped = true;
    this.#ticker?.cancel();
    this.#retry?.cancel();
    await this.#draining;
    await this.drain();
    await this.#audio.close();
    if (flush) {
      const batch = emptyBatch();
      batch.windows.push(...this.#sensors.closeWindows(this.options.clock.now(), true));
      if (batch.windows.length > 0) this.#commit(batch, []);
    }
  }

  stats(): PipelineStats {
    return {
      ...this.#stats,
      late: this.#sensors.late,
      series: this.#sensors.seriesCount,
      frames: this.#frames.stats(),
      audio: this.#audio.stats(),
    };
  }

  /** The entry's route and its wildcard captures; undefined (and rejected) when it is gone. */
  #route(entry: JournalEntry, batch: StageBatch) {
    const known = this.#routes.get(entry.route);
    const captures = known?.filter.match(entry.topic);
    if (!known || !captures) {
      batch.rejected.push({
        journalId: entry.id,
        code: 'no-route',
        reason: `route "${entry.route}" is no longer configured`,
      });
      return undefined;
    }
    return { kind: known.route.kind, captures };
  }

  /**
   * A frame or clip, in a batch of its own. A failure of our own (its files cannot be written, the audio
   * thread died) rejects it: the pipeline goes on.
   */
  async #media(kind: 'frame' | 'audio', entry: JournalEntry, captures: readonly string[], batch: StageBatch) {
    try {
      if (kind === 'frame') await this.#frames.process(entry, captures, batch);
      else await this.#audio.process(entry, captures, batch);
    } catch (error) {
      this.options.logger.error({ err: error, journalId: entry.id }, `${kind} could not be processed`);
      batch.frames.length = 0;
      batch.clips.length = 0;
      batch.processed.length = 0;
      batch.rejected.push({
        journalId: entry.id,
        code: `${kind}-failed`,
        reason:
          `the ${kind === 'frame' ? 'frame' : 'clip'} could not be processed: ${(error as Error).message}`.slice(
            0,
            199,
          ),
      });
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
