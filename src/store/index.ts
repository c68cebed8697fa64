export type { SqliteDatabase } from './database.js';
export { StoreOpenError } from './errors.js';
export { type JobRow, type JobState, JobTable, type NewJob, type NewResult } from './jobs.js';
export type { MediaFile, MediaRetention, MediaStore, MediaTotals } from './media.js';
export type { Migration } from './migrations.js';
export { Outbox, type OutboxDepth, type OutboxLimits } from './outbox.js';
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
