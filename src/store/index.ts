export type { SqliteDatabase } from './database.js';
export { StoreOpenError } from './errors.js';
export type { Migration } from './migrations.js';
export { Outbox, type OutboxDepth, type OutboxLimits } from './outbox.js';
export type { EventsQuery, ReadingsQuery, StoreQueries } from './queries.js';
export { type RetentionPolicy, Store, type StoreOptions } from './store.js';
export type * from './types.js';
