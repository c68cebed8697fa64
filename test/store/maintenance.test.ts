import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { databaseBytes, maintain } from '../../src/store/index.js';

let dir: string;
let db: SqliteDatabase;

/** `n` journal rows of ~2 KiB each, checkpointed so the main file holds them. */
function fill(target: SqliteDatabase, n: number): void {
  const insert = target.prepare(
    "INSERT INTO journal (received_at, route, topic, payload, digest) VALUES (?, 'r', 't', randomblob(2000), x'00')",
  );
  target.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(i);
  })();
  target.pragma('wal_checkpoint(TRUNCATE)');
}

const size = (file: string) => statSync(file).size;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-maintain-'));
});

afterEach(() => {
  try {
    db?.close();
  } catch {
    // closed by the test
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('maintain', () => {
  it('frees the pages retention emptied, shrinks the file and truncates the WAL', () => {
    const file = join(dir, 'outpost.db');
    db = openDatabase({ file });
    fill(db, 4_000);
    const full = size(file);
    expect(full).toBeGreaterThan(8_000_000);

    db.prepare('DELETE FROM journal WHERE id > 400').run();
    const deleted = databaseBytes(db);
    expect(deleted.walBytes).toBeGreaterThan(0);
    expect(deleted.fileBytes).toBe(full);
    expect(deleted.liveBytes).toBeLessThan(full / 5);

    // Bounded: one call frees no more than asked.
    const first = maintain(db, { vacuumPages: 300, stepPages: 64 });
    expect(first.autoVacuum).toBe('incremental');
    expect(first.freedPages).toBe(300);
    expect(first.freelistPages).toBeGreaterThan(0);
    expect(first.walBytesBefore).toBeGreaterThan(0);
    expect(first.walBytesAfter).toBe(0);
    expect(first.checkpointBusy).toBe(false);
    expect(first.pageCount * first.pageSize).toBe(size(file));
    expect(size(file)).toBe(full - 300 * first.pageSize);

    const rest = maintain(db, { vacuumPages: 1_000_000 });
    expect(rest.freelistPages).toBe(0);
    expect(rest.freedPages).toBeGreaterThan(1_000);
    expect(rest.walBytesAfter).toBe(0);
    expect(size(`${file}-wal`)).toBe(0);
    expect(size(file)).toBeLessThan(full / 5);
    expect(databaseBytes(db)).toEqual({ liveBytes: size(file), fileBytes: size(file), walBytes: 0 });
    expect(db.prepare('SELECT count(*) AS n FROM journal').get()).toEqual({ n: 400 });
    expect(db.pragma('quick_check', { simple: true })).toBe('ok');

    // Nothing left to do: a cheap no-op.
    expect(maintain(db)).toMatchObject({ freedPages: 0, checkpointedPages: 0, walBytesAfter: 0 });
  });

  it('only checkpoints a database created before the policy (auto_vacuum NONE), and says why', () => {
    const file = join(dir, 'old.db');
    const old = new Database(file);
    old.exec('CREATE TABLE kept (x)');
    old.close();
    db = openDatabase({ file });
    fill(db, 1_000);
    db.prepare('DELETE FROM journal').run();
    const before = size(file);
    const report = maintain(db);
    expect(report).toMatchObject({ autoVacuum: 'none', freedPages: 0, walBytesAfter: 0 });
    expect(report.freelistPages).toBeGreaterThan(400);
    expect(size(file)).toBe(before);
  });

  it('reports an in-memory database without touching the filesystem', () => {
    db = openDatabase({ file: ':memory:' });
    expect(databaseBytes(db)).toMatchObject({ fileBytes: 0, walBytes: 0 });
    expect(maintain(db)).toMatchObject({ walBytesBefore: 0, walBytesAfter: 0, checkpointedPages: 0 });
  });
});
