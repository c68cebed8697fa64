import { createHash } from 'node:crypto';
import {
  closeSync as closeFd,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync as openFd,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync as writeFd,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/common/index.js';
import {
  JOURNAL_SIZE_LIMIT_BYTES,
  openDatabase,
  openDatabaseChecked,
  WAL_AUTOCHECKPOINT_PAGES,
} from '../../src/store/database.js';
import { Store, StoreOpenError } from '../../src/store/index.js';
import { checkIntegrity } from '../../src/store/integrity.js';
import { outboxLimits } from '../helpers/outbox.js';

let dir: string;
const opened: { close(): void }[] = [];

function openStore(dataDir = dir): Store {
  const store = Store.open({ dataDir, outbox: outboxLimits() });
  opened.push(store);
  return store;
}

const dbFile = () => join(dir, 'outpost.db');
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const corruptFolders = () => readdirSync(dir).filter((name) => name.startsWith('corrupt-'));
const payloadOf = (i: number) => Buffer.from(`{"seq":${i},"pad":"${'x'.repeat(180)}"}`);

/** Journal entries, readings and windows number `from` to `to`, in one transaction. */
function append(store: Store, from: number, to: number, payload = payloadOf): void {
  store.transaction(() => {
    for (let i = from; i <= to; i++) {
      const id = store.appendJournal({
        receivedAt: 1_000 + i,
        route: 'sensor-metric',
        topic: `sensors/d${i % 5}/t`,
        payload: payload(i),
        digest: createHash('sha1').update(String(i)).digest(),
      });
      store.insertReading({ device: `d${i % 5}`, metric: 't', ts: 1_000 + i, value: i / 2, journalId: id });
      const w = { device: `d${i % 5}`, metric: 't', start: i, end: i + 1, count: 1, min: i, max: i, mean: i };
      store.insertWindow({ ...w, std: 0 });
    }
  });
}

/** A store with `n` journal entries, readings and windows, a few results, and its watermark moved; closed. */
function fill(n: number): void {
  const store = openStore();
  append(store, 1, n);
  store.advanceJournalWatermark(n - 10);
  store.close();
  const db = new Database(dbFile());
  const insert = db.prepare(
    `INSERT INTO results (id, kind, source, ts, created_at, output) VALUES (?, 'frame', 'yard', ?, ?, ?)`,
  );
  insert.run('r1', 1, 1, JSON.stringify({ description: 'a tractor crossing the field' }));
  insert.run('r2', 2, 2, JSON.stringify({ description: 'an empty field at dusk' }));
  insert.run('r3', 3, 3, JSON.stringify({ description: 'a deleted finding' }));
  // AUTOINCREMENT: seq 3 was handed out; a recovered database must never hand it out again.
  db.prepare("DELETE FROM results WHERE id = 'r3'").run();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/**
 * Overwrites the middle page of each table that `pages` selects (dbstat columns) with noise; returns the
 * rows (cells) each smashed page held.
 */
function smashMiddleLeaf(tables: string[], pages = "pagetype = 'leaf'"): Record<string, number> {
  const probe = new Database(dbFile(), { readonly: true });
  const pageSize = probe.pragma('page_size', { simple: true }) as number;
  const victims = tables.map((name) => {
    const leaves = probe
      .prepare<[string], { pageno: number; ncell: number }>(
        `SELECT pageno, ncell FROM dbstat WHERE name = ? AND ${pages} ORDER BY pageno`,
      )
      .all(name);
    expect(leaves.length).toBeGreaterThan(4);
    return { name, ...leaves[Math.floor(leaves.length / 2)]! };
  });
  probe.close();
  const random = mulberry32(7);
  const fd = openFd(dbFile(), 'r+');
  for (const victim of victims) {
    const noise = Buffer.alloc(pageSize);
    for (let i = 0; i < pageSize; i++) noise[i] = Math.floor(random() * 256);
    writeFd(fd, noise, 0, pageSize, (victim.pageno - 1) * pageSize);
  }
  closeFd(fd);
  return Object.fromEntries(victims.map((v) => [v.name, v.ncell]));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-integrity-'));
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

describe('integrity check at open', () => {
  it('passes a healthy file and leaves it as it was', () => {
    fill(200);
    const before = sha(dbFile());
    expect(checkIntegrity(dbFile())).toEqual([]);
    expect(sha(dbFile())).toBe(before);

    const store = openStore();
    expect(store.integrity).toEqual({ ok: true });
    expect(store.pendingJournalCount()).toBe(10);
    expect(corruptFolders()).toEqual([]);
  });

  it('takes an absent file for a new database', () => {
    expect(checkIntegrity(dbFile())).toEqual([]);
    expect(openStore().integrity).toEqual({ ok: true });
  });

  it('moves a damaged file aside, keeps it, and salvages every row that still reads', () => {
    const n = 3_000;
    fill(n);
    const onPage = smashMiddleLeaf(['journal', 'readings', 'windows']);
    const damaged = sha(dbFile());

    const store = openStore();
    const report = store.integrity;
    if (report.ok) throw new Error('the damage went unnoticed');
    expect(report.problems.length).toBeGreaterThan(0);

    // The damaged file is kept, byte for byte, in corrupt-<time>/ beside the fresh database.
    expect(corruptFolders()).toHaveLength(1);
    expect(report.movedTo).toBe(join(dir, corruptFolders()[0]!));
    expect(corruptFolders()[0]).toMatch(/^corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z$/);
    expect(sha(join(report.movedTo, 'outpost.db'))).toBe(damaged);
    expect(report.hint).toContain(`sqlite3 ${join(report.movedTo, 'outpost.db')} .recover`);

    // Exactly the rows of the smashed pages are missing, and the report says where.
    expect(report.salvaged.journal).toBe(n - onPage.journal!);
    expect(report.salvaged.readings).toBe(n - onPage.readings!);
    // WITHOUT ROWID: read from both ends up to the damage.
    expect(report.salvaged.windows).toBe(n - onPage.windows!);
    expect(report.salvaged.series).toBe(5);
    expect(report.salvaged.results).toBe(2);
    expect(report.salvaged.pipeline_state).toBe(1);
    expect(report.salvaged).not.toHaveProperty('migrations');
    expect(report.salvaged).not.toHaveProperty('results_fts_data');
    const lostJournal = report.lost.filter((line) => line.startsWith('journal: '));
    expect(lostJournal).toHaveLength(1);
    expect(lostJournal[0]).toMatch(/^journal: rowids \d+-\d+ could not be read \(.+\)$/);
    expect(report.lost.some((line) => line.startsWith('readings: '))).toBe(true);
    expect(report.lost.some((line) => line.startsWith('windows: '))).toBe(true);
    expect(report.lost.filter((line) => !/^(journal|readings|windows): /.test(line))).toEqual([]);

    // What was salvaged is intact, the watermark with it.
    expect(store.journalWatermark()).toBe(n - 10);
    const pending = store.pendingJournal(100);
    expect(pending.map((e) => e.payload.toString())).toEqual(pending.map((e) => payloadOf(e.id).toString()));
    // The full-text index was rebuilt from the salvaged results.
    expect(store.queries.results({ text: 'tractor', limit: 10 }).results.map((r) => r.id)).toEqual(['r1']);

    // The fresh database takes writes: journal ids go on, a result seq is never reused.
    const id = store.appendJournal({
      receivedAt: 9_999_999,
      route: 'sensor-metric',
      topic: 'sensors/new/t',
      payload: Buffer.from('1'),
      digest: Buffer.alloc(20),
    });
    expect(id).toBe(n + 1);
    store.insertReading({ device: 'new', metric: 't', ts: 1, value: 42, journalId: id });
    expect(store.recentValues('new', 't', 5)).toEqual([42]);
    store.close();
    const raw = new Database(dbFile());
    opened.push(raw);
    raw
      .prepare(
        `INSERT INTO results (id, kind, source, ts, created_at, output) VALUES ('r4', 'frame', 'yard', 4, 4, '{}')`,
      )
      .run();
    expect(raw.prepare("SELECT seq FROM results WHERE id = 'r4'").get()).toEqual({ seq: 4 });
    expect(raw.pragma('quick_check', { simple: true })).toBe('ok');
    expect(raw.pragma('auto_vacuum', { simple: true })).toBe(2);
    raw.close();

    // The next start finds a healthy database and leaves the corrupt copy alone.
    expect(openStore().integrity).toEqual({ ok: true });
    expect(corruptFolders()).toHaveLength(1);
  });

  it('loses only the row whose overflow page is damaged', () => {
    const store = openStore();
    // 10 KB payloads spill into chains of two overflow pages: the table's leaves stay readable. The
    // first page of one chain is smashed, its pointer to the second with it, so that row cannot be read.
    // (Noise in a chain's last page, or in a value, reads as a value: SQLite keeps no checksums.)
    append(store, 1, 300, (i) => Buffer.alloc(10_000, i % 256));
    store.close();
    smashMiddleLeaf(['journal'], "pagetype = 'overflow' AND path LIKE '%+000000'");

    const report = openStore().integrity;
    if (report.ok) throw new Error('the damage went unnoticed');
    expect(report.salvaged.journal).toBe(299);
    expect(report.lost).toEqual([expect.stringMatching(/^journal: rowid \d+ could not be read \(.+\)$/)]);
  });

  it('salvages the commits still in the WAL of a crashed run and keeps that WAL as found', () => {
    const live = join(dir, 'live');
    const crashed = openStore(live);
    append(crashed, 1, 3_000);
    const side = new Database(join(live, 'outpost.db'));
    side.pragma('wal_checkpoint(PASSIVE)');
    side.close();
    append(crashed, 3_001, 3_500); // only in the WAL
    // The files as a power cut would leave them: the main file and a WAL that was never checkpointed.
    writeFileSync(dbFile(), readFileSync(join(live, 'outpost.db')));
    writeFileSync(`${dbFile()}-wal`, readFileSync(join(live, 'outpost.db-wal')));
    crashed.close();
    const onPage = smashMiddleLeaf(['journal']);
    const wal = sha(`${dbFile()}-wal`);

    const report = openStore().integrity;
    if (report.ok) throw new Error('the damage went unnoticed');
    expect(report.salvaged.journal).toBe(3_500 - onPage.journal!);
    expect(report.salvaged.readings).toBe(3_500);
    // Attached read-write for speed, yet neither checkpointed into nor deleted.
    expect(sha(join(report.movedTo, 'outpost.db-wal'))).toBe(wal);
  });

  it('moves aside a file that is not a database at all and starts fresh', () => {
    const random = mulberry32(3);
    writeFileSync(dbFile(), Buffer.from(Array.from({ length: 8192 }, () => Math.floor(random() * 256))));
    writeFileSync(`${dbFile()}-wal`, 'not a wal either');
    const before = sha(dbFile());

    const store = openStore();
    const report = store.integrity;
    if (report.ok) throw new Error('random bytes passed as a database');
    expect(report.problems).toEqual(['file is not a database']);
    // (and an -shm, the read-only connections' shared-memory index)
    expect(readdirSync(report.movedTo)).toEqual(expect.arrayContaining(['outpost.db', 'outpost.db-wal']));
    expect(sha(join(report.movedTo, 'outpost.db'))).toBe(before);
    expect(readFileSync(join(report.movedTo, 'outpost.db-wal'), 'utf8')).toBe('not a wal either');
    expect(report.salvaged).toEqual({});
    expect(report.lost).toEqual(['outpost.db: nothing could be read (file is not a database)']);
    expect(store.pendingJournalCount()).toBe(0);
    expect(store.insertReject({ ts: 1, topic: 't', code: 'c', reason: 'r', size: 1 })).toBe(1);
  });

  it('keeps a WAL that lost its database instead of letting SQLite discard it', () => {
    fill(50);
    writeFileSync(`${dbFile()}-wal`, Buffer.alloc(4096, 1));
    rmSync(dbFile());
    const report = openStore().integrity;
    if (report.ok) throw new Error('the orphaned WAL went unnoticed');
    expect(report.problems[0]).toMatch(/outpost\.db-wal exists without its database/);
    expect(readdirSync(report.movedTo)).toEqual(['outpost.db-wal']);
  });

  it('with recover: false, throws naming the file and the manual steps, and touches nothing', () => {
    writeFileSync(dbFile(), Buffer.alloc(4096, 'x'));
    let error: unknown;
    try {
      openDatabaseChecked({ file: dbFile(), recover: false });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreOpenError);
    const open = error as StoreOpenError;
    expect(open.file).toBe(dbFile());
    expect(open.message).toContain(
      `cannot open the database ${dbFile()}: it is damaged: file is not a database`,
    );
    expect(open.message).toContain('stop Outpost');
    expect(open.message).toContain(`mv ${dbFile()} ${dbFile()}-wal ${dbFile()}-shm`);
    expect(open.message).toContain('.recover | sqlite3');
    expect(readFileSync(dbFile())).toEqual(Buffer.alloc(4096, 'x'));
    expect(corruptFolders()).toEqual([]);
  });

  it('does not take an unreadable path for damage', () => {
    mkdirSync(dbFile());
    expect(() => openStore()).toThrow(StoreOpenError);
    expect(statSync(dbFile()).isDirectory()).toBe(true);
    expect(corruptFolders()).toEqual([]);
  });
});

describe('SD-card policy', () => {
  it('creates new databases with incremental auto-vacuum, a WAL size limit and the checkpoint interval', () => {
    const db = openDatabase({ file: dbFile() });
    opened.push(db);
    expect(db.pragma('auto_vacuum', { simple: true })).toBe(2); // INCREMENTAL
    expect(db.pragma('journal_size_limit', { simple: true })).toBe(JOURNAL_SIZE_LIMIT_BYTES);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(WAL_AUTOCHECKPOINT_PAGES);
  });

  it('leaves an existing database the auto-vacuum it was created with', () => {
    const old = new Database(dbFile());
    old.exec('CREATE TABLE before_policy (x)');
    old.close();
    const db = openDatabase({ file: dbFile() });
    opened.push(db);
    expect(db.pragma('auto_vacuum', { simple: true })).toBe(0); // NONE
    expect(existsSync(dbFile())).toBe(true);
  });
});
