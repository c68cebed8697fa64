import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreOpenError } from './errors.js';
import { migrations as allMigrations, type Migration } from './migrations.js';

export type SqliteDatabase = Database.Database;

export interface DatabaseOptions {
  /** Path of the SQLite file; its folder is created. */
  file: string;
  /** normal or full, see the `store.synchronous` config key. Default normal. */
  synchronous?: 'normal' | 'full';
  /** Migrations to apply; default: all of Outpost's. */
  migrations?: readonly Migration[];
}

/** Opens the database in WAL mode and brings its schema up to date. */
export function openDatabase(options: DatabaseOptions): SqliteDatabase {
  let db: SqliteDatabase;
  try {
    mkdirSync(dirname(options.file), { recursive: true });
    db = new Database(options.file);
  } catch (error) {
    throw new StoreOpenError(options.file, (error as Error).message);
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('temp_store = MEMORY');
    db.pragma('cache_size = -16000');
    migrate(db, options.migrations ?? allMigrations);
    return db;
  } catch (error) {
    db.close();
    throw error instanceof StoreOpenError
      ? error
      : new StoreOpenError(options.file, (error as Error).message);
  }
}

function migrate(db: SqliteDatabase, migrations: readonly Migration[]) {
  db.exec(`CREATE TABLE IF NOT EXISTS migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = new Set(
    db
      .prepare<[], { version: number }>('SELECT version FROM migrations')
      .all()
      .map((row) => row.version),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (newest > known) {
    throw new Error(
      `database schema version ${newest} is newer than this Outpost knows (${known}); upgrade Outpost`,
    );
  }
  const record = db.prepare('INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    })();
  }
}
