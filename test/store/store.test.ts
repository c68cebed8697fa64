import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { type JournalEntry, Store, StoreOpenError } from '../../src/store/index.js';
import { migrations } from '../../src/store/migrations.js';
import { outboxLimits } from '../helpers/outbox.js';

const limits = outboxLimits();

let dir: string;
const opened: { close(): void }[] = [];

function openStore(dataDir = dir, synchronous?: 'normal' | 'full'): Store {
  const store = Store.open({ dataDir, outbox: limits, ...(synchronous ? { synchronous } : {}) });
  opened.push(store);
  return store;
}

/** A second connection to the store's file, as an operator's sqlite3 shell would be. */
function raw(file = join(dir, 'outpost.db')): SqliteDatabase {
  const db = new Database(file);
  opened.push(db);
  return db;
}

const digest = (text: string) => createHash('sha1').update(text).digest();

function journal(store: Store, topic: string, receivedAt = 1_000): number {
  return store.appendJournal({
    receivedAt,
    route: 'sensors',
    topic,
    payload: Buffer.from(`{"topic":"${topic}"}`),
    contentType: 'application/json',
    digest: digest(topic),
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-store-'));
});

afterEach(() => {
  for (const db of opened.splice(0).reverse()) {
    try {
      db.close();
    } catch {
      // already closed by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('opening the database', () => {
  it('uses WAL with synchronous NORMAL by default and FULL when asked', () => {
    const normal = openDatabase({ file: join(dir, 'a.db') });
    opened.push(normal);
    expect(normal.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(normal.pragma('synchronous', { simple: true })).toBe(1); // NORMAL

    const full = openDatabase({ file: join(dir, 'b.db'), synchronous: 'full' });
    opened.push(full);
    expect(full.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(full.pragma('synchronous', { simple: true })).toBe(2); // FULL
  });

  it('leaves the store file in WAL mode, in a folder it creates', () => {
    const store = openStore(join(dir, 'nested', 'data'));
    expect(store.file).toBe(join(dir, 'nested', 'data', 'outpost.db'));
    expect(raw(store.file).pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('records each migration once and applies nothing twice on reopen', () => {
    const file = join(dir, 'm.db');
    const next = migrations.length + 1;
    const extra = {
      version: next,
      name: 'test table',
      // No IF NOT EXISTS: running it a second time would fail the open.
      sql: 'CREATE TABLE extra (id INTEGER PRIMARY KEY); INSERT INTO extra (id) VALUES (1);',
    };
    openDatabase({ file, migrations }).close();
    const first = openDatabase({ file, migrations: [...migrations, extra] });
    first.close();
    const again = openDatabase({ file, migrations: [extra, ...migrations] });
    opened.push(again);
    const recorded = again
      .prepare<[], { version: number; name: string }>('SELECT version, name FROM migrations ORDER BY version')
      .all();
    expect(recorded).toEqual([
      ...migrations.map((m) => ({ version: m.version, name: m.name })),
      { version: next, name: 'test table' },
    ]);
    expect(again.prepare('SELECT count(*) AS n FROM extra').get()).toEqual({ n: 1 });
  });

  it('keeps its data across a reopen of the store', () => {
    const store = openStore();
    journal(store, 'sensors/a/t');
    store.close();
    const reopened = openStore();
    expect(reopened.pendingJournalCount()).toBe(1);
    expect(raw().prepare('SELECT count(*) AS n FROM migrations').get()).toEqual({ n: migrations.length });
  });

  it('refuses a database written by a newer Outpost with a StoreOpenError', () => {
    openStore().close();
    const db = raw();
    db.prepare('INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)').run(99, 'future', 0);
    db.close();
    let error: unknown;
    try {
      openStore();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreOpenError);
    const open = error as StoreOpenError;
    expect(open.code).toBe('OUTPOST_STORE_OPEN');
    expect(open.file).toBe(join(dir, 'outpost.db'));
    expect(open.message).toContain(join(dir, 'outpost.db'));
    expect(open.message).toMatch(/version 99 is newer/);
  });

  it('names the file when its folder cannot be created', () => {
    const blocker = join(dir, 'not-a-folder');
    writeFileSync(blocker, 'a plain file where the data folder should be');
    const dataDir = join(blocker, 'data');
    expect(() => openStore(dataDir)).toThrow(StoreOpenError);
    expect(() => openStore(dataDir)).toThrow(join(dataDir, 'outpost.db'));
  });

  it('moves a file that is not a database aside and starts a fresh one', () => {
    writeFileSync(join(dir, 'outpost.db'), Buffer.alloc(4096, 'x'));
    const store = openStore();
    expect(store.integrity.ok).toBe(false);
    const report = store.integrity as Extract<typeof store.integrity, { ok: false }>;
    expect(report.movedTo).toContain(join(dir, 'corrupt-'));
    expect(readFileSync(join(report.movedTo, 'outpost.db'))).toEqual(Buffer.alloc(4096, 'x'));
    expect(journal(store, 'fresh/start', 1)).toBe(1);
    expect(store.pendingJournal(10).map((e) => e.topic)).toEqual(['fresh/start']);
  });
});

describe('journal', () => {
  it('round-trips entries and hides those up to the watermark from pending', () => {
    const store = openStore();
    const ids = ['a', 'b', 'c', 'd', 'e'].map((d, i) => journal(store, `sensors/${d}/t`, 1_000 + i));
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(store.journalWatermark()).toBe(0);

    const all = store.pendingJournal(10);
    expect(all.map((e) => e.id)).toEqual(ids);
    expect(all[0]).toEqual<JournalEntry>({
      id: ids[0]!,
      receivedAt: 1_000,
      route: 'sensors',
      topic: 'sensors/a/t',
      payload: Buffer.from('{"topic":"sensors/a/t"}'),
      contentType: 'application/json',
    });

    store.advanceJournalWatermark(ids[2]!);
    expect(store.pendingJournal(10).map((e) => e.id)).toEqual([ids[3], ids[4]]);
    expect(store.pendingJournalCount()).toBe(2);
    // Never back.
    store.advanceJournalWatermark(ids[0]!);
    expect(store.journalWatermark()).toBe(ids[2]);
    expect(store.pendingJournalCount()).toBe(2);

    store.close();
    const reopened = openStore();
    expect(reopened.journalWatermark()).toBe(ids[2]);
    expect(reopened.pendingJournal(10).map((e) => e.topic)).toEqual(['sensors/d/t', 'sensors/e/t']);
  });

  it('pages pending entries with limit and afterId', () => {
    const store = openStore();
    const ids = Array.from({ length: 7 }, (_, i) => journal(store, `sensors/d${i}/t`));
    store.advanceJournalWatermark(ids[0]!);
    const first = store.pendingJournal(3);
    expect(first.map((e) => e.id)).toEqual([ids[1], ids[2], ids[3]]);
    const second = store.pendingJournal(3, first.at(-1)!.id);
    expect(second.map((e) => e.id)).toEqual([ids[4], ids[5], ids[6]]);
    expect(store.pendingJournal(3, ids[6]!)).toEqual([]);
  });

  it('stores a missing content type as null', () => {
    const store = openStore();
    store.appendJournal({
      receivedAt: 5,
      route: 'r',
      topic: 't',
      payload: new Uint8Array([1, 2, 3]),
      digest: digest('t'),
    });
    const [entry] = store.pendingJournal(1);
    expect(entry?.contentType).toBeNull();
    expect(entry?.payload).toEqual(Buffer.from([1, 2, 3]));
  });

  it('lists recent digests only at or after `since`, newest first, at most `limit`', () => {
    const store = openStore();
    journal(store, 'sensors/a/t', 9_000);
    journal(store, 'sensors/b/t', 10_000);
    journal(store, 'sensors/c/t', 11_000);
    const hex = (digests: Buffer[]) => digests.map((d) => d.toString('hex'));
    const of = (...topics: string[]) => topics.map((t) => digest(t).toString('hex'));
    expect(hex(store.recentDigests(0, 10))).toEqual(of('sensors/c/t', 'sensors/b/t', 'sensors/a/t'));
    expect(hex(store.recentDigests(10_000, 10))).toEqual(of('sensors/c/t', 'sensors/b/t'));
    expect(hex(store.recentDigests(10_001, 10))).toEqual(of('sensors/c/t'));
    expect(hex(store.recentDigests(0, 2))).toEqual(of('sensors/c/t', 'sensors/b/t'));
    expect(store.recentDigests(11_001, 10)).toEqual([]);
  });
});

describe('series and readings', () => {
  it('gives a series a stable id, also after a reopen, and keeps the latest unit', () => {
    let store = openStore();
    const temp = store.seriesId('pump1', 'temperature', 'C');
    const pressure = store.seriesId('pump1', 'pressure');
    expect(store.seriesId('pump1', 'temperature')).toBe(temp);
    expect(pressure).not.toBe(temp);
    expect(store.seriesId('pump2', 'temperature')).not.toBe(temp);

    store.seriesId('pump1', 'temperature', 'F');
    store.seriesId('pump1', 'temperature'); // no unit named: the known one stays
    expect(store.queries.series()).toEqual([
      { device: 'pump1', metric: 'pressure', unit: null },
      { device: 'pump1', metric: 'temperature', unit: 'F' },
      { device: 'pump2', metric: 'temperature', unit: null },
    ]);

    store.close();
    store = openStore();
    expect(store.seriesId('pump1', 'temperature')).toBe(temp);
    store.insertReading({ device: 'pump1', metric: 'pressure', unit: 'bar', ts: 1, value: 2, journalId: 0 });
    expect(store.queries.series()[0]).toEqual({ device: 'pump1', metric: 'pressure', unit: 'bar' });
  });

  it('returns the newest n values of one series, oldest first', () => {
    const store = openStore();
    // Inserted out of time order; another series interleaved.
    for (const ts of [5, 1, 9, 3, 7, 2, 8, 4, 6]) {
      store.insertReading({ device: 'd', metric: 'm', ts, value: ts * 10, journalId: ts });
      store.insertReading({ device: 'd', metric: 'other', ts: ts + 100, value: -1, journalId: ts });
    }
    expect(store.recentValues('d', 'm', 4)).toEqual([60, 70, 80, 90]);
    expect(store.recentValues('d', 'm', 100)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(store.recentValues('nobody', 'm', 4)).toEqual([]);
  });

  it('aggregates readings into aligned buckets', () => {
    const store = openStore();
    const bucketMs = 60_000;
    const base = 28_333_333 * bucketMs; // 2023-11-14, a bucket boundary
    const from = base + 12_345; // not aligned: the first bucket starts before `from`
    const to = base + 10 * bucketMs + 5_000;
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const rows: { ts: number; value: number }[] = [];
    for (let i = 0; i < 600; i++) {
      // Some before `from` and some at or after `to`: those must be left out.
      const ts = base - 30_000 + Math.floor(random() * (12 * bucketMs));
      const value = Math.round((random() * 200 - 100) * 1000) / 1000;
      rows.push({ ts, value });
      store.insertReading({ device: 'pump1', metric: 'temperature', ts, value, journalId: i });
      store.insertReading({ device: 'pump1', metric: 'pressure', ts, value: value + 1_000, journalId: i });
      store.insertReading({ device: 'pump2', metric: 'temperature', ts, value: value - 1_000, journalId: i });
    }
    rows.push({ ts: from, value: 500 }, { ts: to - 1, value: -500 });
    store.insertReading({ device: 'pump1', metric: 'temperature', ts: from, value: 500, journalId: 0 });
    store.insertReading({ device: 'pump1', metric: 'temperature', ts: to, value: 999, journalId: 0 });
    store.insertReading({ device: 'pump1', metric: 'temperature', ts: to - 1, value: -500, journalId: 0 });

    const expected = new Map<number, number[]>();
    for (const { ts, value } of rows) {
      if (ts < from || ts >= to) continue;
      const t = Math.floor(ts / bucketMs) * bucketMs;
      expected.set(t, [...(expected.get(t) ?? []), value]);
    }

    const buckets = store.queries.readingBuckets({
      device: 'pump1',
      metric: 'temperature',
      from,
      to,
      bucketMs,
    });
    expect(buckets.map((b) => b.t)).toEqual([...expected.keys()].sort((a, b) => a - b));
    expect(buckets[0]!.t).toBe(base);
    expect(buckets.at(-1)!.t).toBe(base + 10 * bucketMs);
    for (const bucket of buckets) {
      expect(bucket.t % bucketMs).toBe(0);
      const values = expected.get(bucket.t)!;
      expect(bucket.count).toBe(values.length);
      expect(bucket.min).toBe(Math.min(...values));
      expect(bucket.max).toBe(Math.max(...values));
      expect(bucket.mean).toBeCloseTo(values.reduce((s, v) => s + v, 0) / values.length, 9);
    }
    expect(buckets.reduce((n, b) => n + b.count, 0)).toBe([...expected.values()].flat().length);
    expect(Math.max(...buckets.map((b) => b.max))).toBe(500);
    expect(Math.min(...buckets.map((b) => b.min))).toBe(-500);

    expect(
      store.queries.readingBuckets({ device: 'pump9', metric: 'temperature', from, to, bucketMs }),
    ).toEqual([]);
  });
});

describe('events', () => {
  it('filters by source, kind and time, pages with `before`, newest first', () => {
    const store = openStore();
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      const row = store.insertEvent(
        {
          ts: 1_000 * i,
          source: i % 2 === 0 ? 'pump1' : 'pump2',
          kind: i % 3 === 0 ? 'anomaly' : 'status',
          severity: i === 9 ? 'critical' : 'warning',
          message: `event ${i}`,
          detail: { i, nested: { ok: true } },
        },
        50_000 + i,
      );
      expect(row.createdAt).toBe(50_000 + i);
      ids.push(row.id);
    }
    const q = store.queries;
    const msgs = (rows: { message: string }[]) => rows.map((r) => r.message);

    const all = q.events({ limit: 100 });
    expect(msgs(all)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => `event ${i}`));
    expect(all[0]).toEqual({
      id: ids[9],
      ts: 9_000,
      createdAt: 50_009,
      source: 'pump2',
      kind: 'anomaly',
      severity: 'critical',
      message: 'event 9',
      detail: { i: 9, nested: { ok: true } },
    });
    expect(msgs(q.events({ limit: 3 }))).toEqual(['event 9', 'event 8', 'event 7']);
    expect(msgs(q.events({ source: 'pump1', limit: 100 }))).toEqual([8, 6, 4, 2, 0].map((i) => `event ${i}`));
    expect(msgs(q.events({ kind: 'anomaly', limit: 100 }))).toEqual([9, 6, 3, 0].map((i) => `event ${i}`));
    expect(msgs(q.events({ source: 'pump1', kind: 'anomaly', limit: 100 }))).toEqual(['event 6', 'event 0']);
    // since inclusive, until exclusive
    expect(msgs(q.events({ since: 3_000, until: 6_000, limit: 100 }))).toEqual([
      'event 5',
      'event 4',
      'event 3',
    ]);
    expect(msgs(q.events({ before: ids[4], limit: 2 }))).toEqual(['event 3', 'event 2']);
    expect(msgs(q.events({ before: ids[4], source: 'pump2', since: 1_000, limit: 100 }))).toEqual([
      'event 3',
      'event 1',
    ]);
    expect(q.events({ source: 'nobody', limit: 100 })).toEqual([]);
  });
});

describe('prune', () => {
  it('never numbers a new message below the watermark after a quiet spell emptied the journal', () => {
    const store = openStore();
    const ids = [1_000, 2_000, 3_000].map((t) => journal(store, `quiet/${t}`, t));
    store.advanceJournalWatermark(ids.at(-1)!);
    // Everything is processed and old: retention and the disk budget take all they may.
    store.prune({ journalBefore: 1e12, readingsBefore: 0, eventsBefore: 0 });
    while (store.shrinkLargest(1)) {}
    const next = journal(store, 'after/quiet', 4_000);
    expect(next).toBeGreaterThan(ids.at(-1)!);
    expect(store.pendingJournal(10).map((e) => e.topic)).toEqual(['after/quiet']);
  });

  it('removes only what retention no longer keeps, never entries past the watermark', () => {
    const store = openStore();
    const cut = 10_000;
    const oldDone = journal(store, 'old/done-1', 1_000);
    journal(store, 'old/done-2', 2_000);
    const newDone = journal(store, 'new/done', cut);
    const oldPending = journal(store, 'old/pending', 3_000); // received long ago, not processed yet
    store.advanceJournalWatermark(newDone);

    for (const ts of [1, cut - 1, cut, cut + 1])
      store.insertReading({ device: 'd', metric: 'm', ts, value: ts, journalId: 0 });
    for (const ts of [5, cut]) {
      store.insertEvent(
        { ts, source: 'd', kind: 'k', severity: 'info', message: `at ${ts}`, detail: {} },
        ts,
      );
      store.insertReject({ ts, topic: `t/${ts}`, code: 'too-large', reason: 'r', size: 1 });
    }
    for (const [start, end] of [
      [0, 5_000],
      [5_000, cut - 1],
      [cut - 1, cut + 5_000],
    ] as const) {
      store.insertWindow({ device: 'd', metric: 'm', start, end, count: 1, min: 0, max: 0, mean: 0, std: 0 });
    }

    const removed = store.prune({ journalBefore: cut, readingsBefore: cut, eventsBefore: cut });
    // 2 journal + 2 readings + 2 windows + 1 event + 1 reject
    expect(removed).toBe(8);

    const db = raw();
    expect(db.prepare('SELECT id FROM journal ORDER BY id').all()).toEqual([
      { id: newDone },
      { id: oldPending },
    ]);
    expect(oldDone).toBeLessThan(newDone);
    expect(store.pendingJournal(10).map((e) => e.topic)).toEqual(['old/pending']);
    expect(store.recentValues('d', 'm', 10)).toEqual([cut, cut + 1]);
    expect(store.queries.events({ limit: 10 }).map((e) => e.ts)).toEqual([cut]);
    expect(store.queries.recentRejects(10).map((r) => r.ts)).toEqual([cut]);
    expect(db.prepare('SELECT start FROM windows').all()).toEqual([{ start: cut - 1 }]);

    expect(store.prune({ journalBefore: cut, readingsBefore: cut, eventsBefore: cut })).toBe(0);
  });

  it('works off more rows than one chunk', () => {
    const store = openStore();
    store.transaction(() => {
      for (let i = 0; i < 12_000; i++)
        store.insertReading({ device: 'd', metric: 'm', ts: i, value: i, journalId: 0 });
    });
    expect(store.prune({ journalBefore: 0, readingsBefore: 11_990, eventsBefore: 0 })).toBe(11_990);
    expect(store.recentValues('d', 'm', 100)).toHaveLength(10);
  });
});

describe('transactions and close', () => {
  it('rolls back every write of a failed transaction', () => {
    const store = openStore();
    expect(() =>
      store.transaction(() => {
        journal(store, 'a');
        store.insertEvent({ ts: 1, source: 's', kind: 'k', severity: 'info', message: 'm', detail: {} }, 1);
        throw new Error('stage failed');
      }),
    ).toThrow('stage failed');
    expect(store.pendingJournalCount()).toBe(0);
    expect(store.queries.events({ limit: 10 })).toEqual([]);
  });

  it('is safe to close twice and leaves nothing behind in the WAL', () => {
    const store = openStore();
    const ids = Array.from({ length: 200 }, (_, i) => journal(store, `sensors/d${i}/t`, i));
    const wal = `${store.file}-wal`;
    expect(existsSync(wal) && statSync(wal).size > 0).toBe(true);

    store.close();
    expect(store.closed).toBe(true);
    expect(() => store.close()).not.toThrow();
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);

    // Only the main file is read back: move any WAL away so nothing could come from it.
    rmSync(wal, { force: true });
    rmSync(`${store.file}-shm`, { force: true });
    const reopened = openStore();
    expect(reopened.pendingJournalCount()).toBe(200);
    expect(reopened.pendingJournal(1, ids[198]).map((e) => e.topic)).toEqual(['sensors/d199/t']);
  });
});
