import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { Outbox, type OutboxLimits } from '../../src/store/index.js';

const roomy: OutboxLimits = { maxMessages: 10_000, maxBytes: 10_000_000, maxAgeMs: 3_600_000 };

let dir: string;
let db: SqliteDatabase | undefined;

/** Opens (or reopens) the outbox of the test's database file. */
function open(limits: OutboxLimits = roomy): Outbox {
  db?.close();
  db = openDatabase({ file: join(dir, 'outpost.db') });
  return new Outbox(db, limits);
}

const msg = (topic: string, payload: string | Buffer = topic) => ({
  topic,
  payload,
  qos: 1 as const,
  retain: false,
});

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
    outbox.enqueue({ topic: 'a', payload: 'x', qos: 0, retain: true }, 100);
    outbox.enqueue({ topic: 'b', payload: Buffer.from([0, 255]), qos: 2, retain: false }, 101);
    for (const t of ['c', 'd', 'e']) outbox.enqueue(msg(t), 102);

    const first = outbox.next(0, 2);
    expect(first).toEqual([
      { id: first[0]!.id, createdAt: 100, topic: 'a', payload: Buffer.from('x'), qos: 0, retain: true },
      { id: first[1]!.id, createdAt: 101, topic: 'b', payload: Buffer.from([0, 255]), qos: 2, retain: false },
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
    expect(outbox.depth()).toEqual({ messages: 0, bytes: 0, oldestAt: null });
    outbox.enqueue(msg('a', 'héllo'), 1_000); // 6 bytes in UTF-8
    outbox.enqueue(msg('b', Buffer.alloc(100)), 2_000);
    outbox.enqueue(msg('c', ''), 3_000);
    expect(outbox.depth()).toEqual({ messages: 3, bytes: 106, oldestAt: 1_000 });

    const [oldest] = outbox.next(0, 1);
    outbox.remove([oldest!.id]);
    expect(outbox.depth()).toEqual({ messages: 2, bytes: 100, oldestAt: 2_000 });

    outbox = open();
    expect(outbox.depth()).toEqual({ messages: 2, bytes: 100, oldestAt: 2_000 });
    outbox.enqueue(msg('d', 'abcd'), 4_000);
    expect(outbox.depth()).toEqual({ messages: 3, bytes: 104, oldestAt: 2_000 });
    outbox.remove(outbox.next(0, 10).map((r) => r.id));
    expect(outbox.depth()).toEqual({ messages: 0, bytes: 0, oldestAt: null });
    expect(open().depth()).toEqual({ messages: 0, bytes: 0, oldestAt: null });
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
    expect(outbox.depth()).toEqual({ messages: 1, bytes: 1, oldestAt: 2_500 });
    expect(outbox.dropped).toBe(2);
  });

  it('turns away a message larger than maxBytes without emptying the outbox', () => {
    let outbox = open({ ...roomy, maxBytes: 10 });
    outbox.enqueue(msg('huge', Buffer.alloc(50)), 0);
    expect(outbox.depth()).toEqual({ messages: 0, bytes: 0, oldestAt: null });
    expect(outbox.dropped).toBe(1);

    for (const t of ['aaa', 'bbb', 'ccc']) outbox.enqueue(msg(t), 1);
    outbox.enqueue(msg('huge', Buffer.alloc(50)), 2);
    expect(topics(outbox)).toEqual(['aaa', 'bbb', 'ccc']);
    expect(outbox.depth()).toEqual({ messages: 3, bytes: 9, oldestAt: 1 });
    expect(outbox.dropped).toBe(2);

    outbox = open({ ...roomy, maxBytes: 10 });
    expect(outbox.depth()).toEqual({ messages: 3, bytes: 9, oldestAt: 1 });
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
