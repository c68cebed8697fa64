import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { Outbox, type OutboxClass, type OutboxLimits } from '../../src/store/index.js';
import { migrations } from '../../src/store/migrations.js';
import { outboxLimits } from '../helpers/outbox.js';

const roomy = outboxLimits();

let dir: string;
let db: SqliteDatabase | undefined;

/** Opens (or reopens) the outbox of the test's database file. */
function open(limits: OutboxLimits = roomy): Outbox {
  db?.close();
  db = openDatabase({ file: join(dir, 'outpost.db') });
  return new Outbox(db, limits);
}

/** A window summary by default: the overwrite-oldest class. */
const msg = (topic: string, payload: string | Buffer = topic, kind: OutboxClass = 'windows') => ({
  class: kind,
  topic,
  payload,
  qos: 1 as const,
  retain: false,
});

/** The depth without the per-class breakdown. */
const totals = (outbox: Outbox) => {
  const { classes: _, ...rest } = outbox.depth();
  return rest;
};

const topics = (outbox: Outbox) => outbox.next(0, 1_000_000).map((row) => row.topic);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-outbox-'));
});

afterEach(() => {
  db?.close();
  db = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('Outbox', () => {
  it('hands messages out in order and forgets removed ones', () => {
    const outbox = open();
    outbox.enqueue({ class: 'results', topic: 'a', payload: 'x', qos: 0, retain: true }, 100);
    outbox.enqueue(
      { class: 'events', topic: 'b', payload: Buffer.from([0, 255]), qos: 2, retain: false },
      101,
    );
    for (const t of ['c', 'd', 'e']) outbox.enqueue(msg(t), 102);

    const first = outbox.next(0, 2);
    expect(first).toEqual([
      {
        id: first[0]!.id,
        createdAt: 100,
        class: 'results',
        topic: 'a',
        payload: Buffer.from('x'),
        qos: 0,
        retain: true,
      },
      {
        id: first[1]!.id,
        createdAt: 101,
        class: 'events',
        topic: 'b',
        payload: Buffer.from([0, 255]),
        qos: 2,
        retain: false,
      },
    ]);
    const rest = outbox.next(first[1]!.id, 10);
    expect(rest.map((r) => r.topic)).toEqual(['c', 'd', 'e']);
    expect(outbox.next(rest.at(-1)!.id, 10)).toEqual([]);

    outbox.remove([first[0]!.id, rest[1]!.id]);
    expect(topics(outbox)).toEqual(['b', 'c', 'e']);
    outbox.remove([]);
    outbox.remove([first[0]!.id]); // already gone: nothing changes
    expect(outbox.depth().messages).toBe(3);
    expect(topics(open())).toEqual(['b', 'c', 'e']);
  });

  it('reports messages, bytes and the oldest time, also after a reopen', () => {
    let outbox = open();
    expect(totals(outbox)).toEqual({ messages: 0, bytes: 0, oldestAt: null });
    outbox.enqueue(msg('a', 'héllo'), 1_000); // 6 bytes in UTF-8
    outbox.enqueue(msg('b', Buffer.alloc(100)), 2_000);
    outbox.enqueue(msg('c', ''), 3_000);
    expect(totals(outbox)).toEqual({ messages: 3, bytes: 106, oldestAt: 1_000 });

    const [oldest] = outbox.next(0, 1);
    outbox.remove([oldest!.id]);
    expect(totals(outbox)).toEqual({ messages: 2, bytes: 100, oldestAt: 2_000 });

    outbox = open();
    expect(totals(outbox)).toEqual({ messages: 2, bytes: 100, oldestAt: 2_000 });
    outbox.enqueue(msg('d', 'abcd'), 4_000);
    expect(totals(outbox)).toEqual({ messages: 3, bytes: 104, oldestAt: 2_000 });
    outbox.remove(outbox.next(0, 10).map((r) => r.id));
    expect(totals(outbox)).toEqual({ messages: 0, bytes: 0, oldestAt: null });
    expect(totals(open())).toEqual({ messages: 0, bytes: 0, oldestAt: null });
  });

  it('drops the oldest messages past maxMessages and counts them', () => {
    const outbox = open({ ...roomy, maxMessages: 3 });
    for (const t of ['1', '2', '3', '4', '5']) outbox.enqueue(msg(t), 0);
    expect(topics(outbox)).toEqual(['3', '4', '5']);
    expect(outbox.dropped).toBe(2);
    expect(outbox.depth()).toMatchObject({ messages: 3, bytes: 3 });
  });

  it('respects maxMessages from totals read back after a reopen', () => {
    let outbox = open({ ...roomy, maxMessages: 3 });
    for (const t of ['1', '2', '3']) outbox.enqueue(msg(t), 0);
    outbox = open({ ...roomy, maxMessages: 3 });
    outbox.enqueue(msg('4'), 0);
    expect(topics(outbox)).toEqual(['2', '3', '4']);
    expect(outbox.dropped).toBe(1);
  });

  it('drops the oldest messages past maxBytes and counts them', () => {
    const outbox = open({ ...roomy, maxBytes: 10 });
    for (const t of ['aaaa', 'bbbb', 'cccc', 'dddd']) outbox.enqueue(msg(t), 0);
    expect(topics(outbox)).toEqual(['cccc', 'dddd']);
    expect(outbox.depth()).toMatchObject({ messages: 2, bytes: 8 });
    expect(outbox.dropped).toBe(2);
    // A larger message pushes out as many old ones as it needs.
    outbox.enqueue(msg('e', 'eeeeeeee'), 0);
    expect(topics(outbox)).toEqual(['e']);
    expect(outbox.dropped).toBe(4);
  });

  it('drops messages older than maxAgeMs on expire()', () => {
    const outbox = open({ ...roomy, maxAgeMs: 1_000 });
    outbox.enqueue(msg('a'), 1_000);
    outbox.enqueue(msg('b'), 1_500);
    outbox.enqueue(msg('c'), 2_500);
    expect(outbox.expire(2_000)).toBe(0); // a is exactly 1 000 ms old: kept
    expect(outbox.expire(2_600)).toBe(2);
    expect(topics(outbox)).toEqual(['c']);
    expect(totals(outbox)).toEqual({ messages: 1, bytes: 1, oldestAt: 2_500 });
    expect(outbox.dropped).toBe(2);
  });

  it('turns away a message larger than maxBytes without emptying the outbox', () => {
    let outbox = open({ ...roomy, maxBytes: 10 });
    outbox.enqueue(msg('huge', Buffer.alloc(50)), 0);
    expect(totals(outbox)).toEqual({ messages: 0, bytes: 0, oldestAt: null });
    expect(outbox.dropped).toBe(1);

    for (const t of ['aaa', 'bbb', 'ccc']) outbox.enqueue(msg(t), 1);
    outbox.enqueue(msg('huge', Buffer.alloc(50)), 2);
    expect(topics(outbox)).toEqual(['aaa', 'bbb', 'ccc']);
    expect(totals(outbox)).toEqual({ messages: 3, bytes: 9, oldestAt: 1 });
    expect(outbox.dropped).toBe(2);

    outbox = open({ ...roomy, maxBytes: 10 });
    expect(totals(outbox)).toEqual({ messages: 3, bytes: 9, oldestAt: 1 });
  });
});

describe('Outbox policy per topic class', () => {
  const budget = (overrides: Partial<OutboxLimits> = {}) =>
    open(outboxLimits({ maxMessages: 3, hardMaxMessages: 5, ...overrides }));

  it('past the budget sheds the oldest overwrite-oldest messages first, keeps results and events to the hard cap', () => {
    const outbox = budget();
    outbox.enqueue(msg('r1', 'r1', 'results'), 1);
    outbox.enqueue(msg('w1'), 2);
    outbox.enqueue(msg('e1', 'e1', 'events'), 3);
    outbox.enqueue(msg('w2'), 4); // 4 > 3: the oldest window goes, not the older result
    expect(topics(outbox)).toEqual(['r1', 'e1', 'w2']);
    outbox.enqueue(msg('r2', 'r2', 'results'), 5); // the last window goes
    expect(topics(outbox)).toEqual(['r1', 'e1', 'r2']);
    outbox.enqueue(msg('r3', 'r3', 'results'), 6);
    outbox.enqueue(msg('e2', 'e2', 'events'), 7); // over the budget, under the hard cap: all kept
    expect(topics(outbox)).toEqual(['r1', 'e1', 'r2', 'r3', 'e2']);
    outbox.enqueue(msg('w3'), 8); // a new window does not push out a result: it goes itself
    expect(topics(outbox)).toEqual(['r1', 'e1', 'r2', 'r3', 'e2']);
    outbox.enqueue(msg('r4', 'r4', 'results'), 9); // past the hard cap: the oldest of any class
    expect(topics(outbox)).toEqual(['e1', 'r2', 'r3', 'e2', 'r4']);

    const { classes } = outbox.depth();
    expect(classes.windows).toEqual({ messages: 0, bytes: 0, oldestAt: null, dropped: 3 });
    expect(classes.results).toEqual({ messages: 3, bytes: 6, oldestAt: 5, dropped: 1 });
    expect(classes.events).toEqual({ messages: 2, bytes: 4, oldestAt: 3, dropped: 0 });
    expect(classes.errors).toEqual({ messages: 0, bytes: 0, oldestAt: null, dropped: 0 });
    expect(outbox.dropped).toBe(4);
  });

  it('the policy is configurable: with every class kept, only the hard cap drops', () => {
    const keepAll = { results: 'keep', events: 'keep', windows: 'keep', errors: 'keep' } as const;
    const outbox = budget({ policy: keepAll });
    for (const t of ['1', '2', '3', '4', '5', '6']) outbox.enqueue(msg(t), 0);
    expect(topics(outbox)).toEqual(['2', '3', '4', '5', '6']);
    expect(outbox.depth().classes.windows.dropped).toBe(1);
  });

  it('expires overwrite-oldest messages by age and never results or events', () => {
    const outbox = open(outboxLimits({ maxAgeMs: 1_000 }));
    outbox.enqueue(msg('r', 'r', 'results'), 0);
    outbox.enqueue(msg('e', 'e', 'events'), 0);
    outbox.enqueue(msg('x', 'x', 'errors'), 0);
    outbox.enqueue(msg('w'), 0);
    outbox.enqueue(msg('w-new'), 5_000);
    expect(outbox.expire(5_500)).toBe(2);
    expect(topics(outbox)).toEqual(['r', 'e', 'w-new']);
    expect(outbox.depth().classes.errors.dropped).toBe(1);
  });

  it('a result larger than the budget but within the hard cap is kept', () => {
    const outbox = open(outboxLimits({ maxBytes: 10, hardMaxBytes: 100 }));
    outbox.enqueue(msg('big-window', Buffer.alloc(50)), 0);
    outbox.enqueue(msg('big-result', Buffer.alloc(50), 'results'), 0);
    expect(topics(outbox)).toEqual(['big-result']);
    outbox.enqueue(msg('huge-result', Buffer.alloc(101), 'results'), 0);
    expect(topics(outbox)).toEqual(['big-result']);
    expect(outbox.depth().classes).toMatchObject({ windows: { dropped: 1 }, results: { dropped: 1 } });
  });

  it('the local and uplink outboxes share the table, never their rows', () => {
    const local = open();
    const uplink = new Outbox(db!, roomy, 'uplink');
    local.enqueue(msg('a', 'a', 'results'), 0);
    uplink.enqueue(msg('up/a', 'a', 'results'), 0);
    uplink.enqueue(msg('up/b', 'b', 'events'), 0);
    expect(topics(local)).toEqual(['a']);
    expect(topics(uplink)).toEqual(['up/a', 'up/b']);
    local.remove(uplink.next(0, 10).map((row) => row.id)); // ids of the other target: untouched
    expect(uplink.depth().messages).toBe(2);
    uplink.remove(uplink.next(0, 10).map((row) => row.id));
    expect([local.depth().messages, uplink.depth().messages]).toEqual([1, 0]);
    expect(new Outbox(db!, roomy, 'uplink').depth().messages).toBe(0);
  });

  it('migration 5 classes the messages an older version left by their topic', () => {
    const file = join(dir, 'old.db');
    const old = openDatabase({ file, migrations: migrations.filter((m) => m.version < 5) });
    const insert = old.prepare(
      'INSERT INTO outbox (created_at, topic, payload, qos, retain) VALUES (0, ?, ?, 1, 0)',
    );
    for (const topic of ['o/g/results/frame/cam', 'o/g/events/pump', 'o/g/windows/d/m', 'o/g/errors']) {
      insert.run(topic, Buffer.from('x'));
    }
    old.close();
    db = openDatabase({ file });
    const classes = new Outbox(db, roomy).next(0, 10).map((row) => row.class);
    expect(classes).toEqual(['results', 'events', 'windows', 'errors']);
  });
});

describe('Outbox inside a Store transaction that rolls back', () => {
  it('keeps its depth true to the table', async () => {
    const { Store } = await import('../../src/store/index.js');
    const store = Store.open({ dataDir: dir, outbox: roomy });
    try {
      store.transaction(() => store.outbox.enqueue(msg('kept'), 1));
      expect(() =>
        store.transaction(() => {
          store.outbox.enqueue(msg('rolled-back'), 2);
          store.insertReading({ device: 'd', metric: 'm', ts: 1, value: 1, journalId: 1 });
          throw new Error('disk full');
        }),
      ).toThrow('disk full');
      expect(store.outbox.depth()).toMatchObject({ messages: 1, bytes: 4 });
      // the series created inside the rolled-back transaction is created again, not a stale id
      store.insertReading({ device: 'd', metric: 'm', ts: 2, value: 2, journalId: 2 });
      expect(store.recentValues('d', 'm', 10)).toEqual([2]);
    } finally {
      store.close();
    }
  });
});
