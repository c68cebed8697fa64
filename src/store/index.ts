export type { ShrinkStep } from './budget.js';
export type { SqliteDatabase } from './database.js';
export { StoreOpenError } from './errors.js';
export type { IntegrityReport } from './integrity.js';
export { type JobRow, type JobState, JobTable, type NewJob, type NewResult } from './jobs.js';
export {
  type DatabaseBytes,
  databaseBytes,
  type MaintenanceOptions,
  type MaintenanceReport,
  maintain,
} from './maintenance.js';
export type { MediaFile, MediaRetention, MediaStore, MediaTotals } from './media.js';
export type { Migration } from './migrations.js';
export {
  type ClassDepth,
  OUTBOX_CLASSES,
  Outbox,
  type OutboxDepth,
  type OutboxLimits,
  type OutboxPolicy,
  type OutboxTarget,
} from './outbox.js';
export {
  type DeviceSeriesSummary,
  type EventsQuery,
  ftsMatchExpression,
  type ReadingsQuery,
  type ResultPage,
  type ResultRow,
  type ResultsQuery,
  type StoreQueries,
  type StreamCursors,
} from './queries.js';
export { type RetentionPolicy, Store, type StoreOptions } from './store.js';
export type * from './types.js';
