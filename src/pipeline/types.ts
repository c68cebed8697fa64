import type { JournalEntry, NewReading, NewWindow } from '../store/index.js';
import type { VoicedClip } from './audioStage.js';
import type { AcceptedFrame } from './frameStage.js';
import type { SensorAnomaly } from './sensorStage.js';

/** A journal entry its stage could not use. */
export interface StageRejection {
  journalId: number;
  code: string;
  reason: string;
}

/** Everything one drain of the journal produced; committed as one transaction by the sink. */
export interface StageBatch {
  /** the last journal entry this batch covers: the sink moves the journal watermark to it */
  throughId?: number | undefined;
  /** journal entries used */
  processed: number[];
  rejected: StageRejection[];
  readings: NewReading[];
  windows: NewWindow[];
  anomalies: SensorAnomaly[];
  /** camera frames the gate let through, their files written */
  frames: AcceptedFrame[];
  /** voiced audio stretches, their clips written */
  clips: VoicedClip[];
  /** processed entries whose payload the journal no longer needs to hold (frames) */
  released: number[];
}

/** Commits a batch atomically: rows, journal states and the messages that report them. */
export interface PipelineSink {
  commit(batch: StageBatch, entries: ReadonlyMap<number, JournalEntry>): void;
}

/** Reads what ingest committed and not yet processed. */
export interface PipelineSource {
  pendingJournal(limit: number, afterId: number): JournalEntry[];
  /** the last entry whose output was committed (by an earlier run too) */
  journalWatermark(): number;
}

export const emptyBatch = (): StageBatch => ({
  processed: [],
  rejected: [],
  readings: [],
  windows: [],
  anomalies: [],
  frames: [],
  clips: [],
  released: [],
});
