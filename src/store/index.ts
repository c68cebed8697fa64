export type { SqliteDatabase } from './database.js';
export { StoreOpenError } from './errors.js';
export { type JobRow, type JobState, JobTable, type NewJob, type NewResult } from './jobs.js';
export type { Migration } from './migrations.js';
export { Outbox, type OutboxDepth, type OutboxLimits } from './outbox.js';
export type { DeviceSeriesSummary, EventsQuery, ReadingsQuery, StoreQueries } from './queries.js';
export { type RetentionPolicy, Store, type StoreOptions } from './store.js';
export type * from './types.js';
