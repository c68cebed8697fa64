import type { SqliteDatabase } from './database.js';
import type { OutboxClass, OutboxMessage, OutboxRow } from './types.js';

export const OUTBOX_CLASSES: readonly OutboxClass[] = ['results', 'events', 'windows', 'errors'];

/**
 * keep: held until the hard cap (results and events are findings nobody can make again);
 * overwrite-oldest: the oldest go first once the outbox passes its budget or their age limit (windows and
 * errors are telemetry: the newest say more than the oldest).
 */
export type OutboxPolicy = 'keep' | 'overwrite-oldest';

/** Which connection sends a message: the gateway's broker, or the fleet's upstream broker. */
export type OutboxTarget = 'local' | 'uplink';

export interface OutboxLimits {
  /** Messages past which the oldest overwrite-oldest messages are dropped. */
  maxMessages: number;
  /** Payload bytes past which the oldest overwrite-oldest messages are dropped. */
  maxBytes: number;
  /** Messages past which the oldest are dropped whatever their class. */
  hardMaxMessages: number;
  /** Payload bytes past which the oldest are dropped whatever their class. */
  hardMaxBytes: number;
  /** overwrite-oldest messages older than this are dropped unsent, ms. */
  maxAgeMs: number;
  policy: Readonly<Record<OutboxClass, OutboxPolicy>>;
}

export interface ClassDepth {
  messages: number;
  bytes: number;
  /** created_at of the oldest waiting message of the class, epoch ms; null when none waits */
  oldestAt: number | null;
  /** dropped for the limits since start */
  dropped: number;
}

export interface OutboxDepth {
  messages: number;
  bytes: number;
  /** created_at of the oldest waiting message, epoch ms; null when empty */
  oldestAt: number | null;
  classes: Record<OutboxClass, ClassDepth>;
}

interface RawRow {
  id: number;
  created_at: number;
  class: OutboxClass;
  topic: string;
  payload: Buffer;
  qos: number;
  retain: number;
}

type Gone = { class: OutboxClass; bytes: number };

/**
 * The persistent outbox of one target: what is to be published waits here, in order, until the broker
 * acknowledges it. Bounded twice: past its budget the oldest overwrite-oldest messages are dropped; past
 * its hard cap the oldest of any class. Every drop is counted by class; the newest message is never dropped
 * to make room for an older one.
 */
export class Outbox {
  readonly #totals = { messages: 0, bytes: 0 };
  readonly #classes = new Map<OutboxClass, { messages: number; bytes: number; dropped: number }>();
  readonly #overwrite: OutboxClass[];
  readonly #s;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly limits: OutboxLimits,
    readonly target: OutboxTarget = 'local',
  ) {
    for (const name of OUTBOX_CLASSES) this.#classes.set(name, { messages: 0, bytes: 0, dropped: 0 });
    this.#overwrite = OUTBOX_CLASSES.filter((name) => limits.policy[name] === 'overwrite-oldest');
    const overwriteList = this.#overwrite.map((name) => `'${name}'`).join(', ') || 'NULL';
    this.#s = {
      totals: db.prepare<[string], { class: OutboxClass; n: number; bytes: number }>(
        'SELECT class, count(*) AS n, coalesce(sum(length(payload)), 0) AS bytes FROM outbox WHERE target = ? GROUP BY class',
      ),
      insert: db.prepare(
        'INSERT INTO outbox (created_at, class, target, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      next: db.prepare<[string, number, number], RawRow>(
        'SELECT * FROM outbox WHERE target = ? AND id > ? ORDER BY id LIMIT ?',
      ),
      delete: db.prepare<[number, string], Gone>(
        'DELETE FROM outbox WHERE id = ? AND target = ? RETURNING class, length(payload) AS bytes',
      ),
      dropOldest: db.prepare<[string, number], Gone>(
        'DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE target = ? ORDER BY id LIMIT ?) ' +
          'RETURNING class, length(payload) AS bytes',
      ),
      dropOldestOverwrite: db.prepare<[string, number], Gone>(
        `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE target = ? AND class IN (${overwriteList}) ` +
          'ORDER BY id LIMIT ?) RETURNING class, length(payload) AS bytes',
      ),
      expire: db.prepare<[string, number], Gone>(
        `DELETE FROM outbox WHERE target = ? AND class IN (${overwriteList}) AND created_at < ? ` +
          'RETURNING class, length(payload) AS bytes',
      ),
      oldest: db.prepare<[string], { created_at: number }>(
        'SELECT created_at FROM outbox WHERE target = ? ORDER BY id LIMIT 1',
      ),
      oldestOf: db.prepare<[string, string], { created_at: number }>(
        'SELECT created_at FROM outbox WHERE target = ? AND class = ? ORDER BY id LIMIT 1',
      ),
    };
    this.resync();
  }

  /** Messages dropped for the limits since start, all classes. */
  get dropped(): number {
    let n = 0;
    for (const c of this.#classes.values()) n += c.dropped;
    return n;
  }

  /** Adds a message; call inside the transaction that commits what it reports. */
  enqueue(message: OutboxMessage, now: number): void {
    const payload = typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload;
    const { limits } = this;
    const overwrite = limits.policy[message.class] === 'overwrite-oldest';
    if (payload.length > (overwrite ? limits.maxBytes : limits.hardMaxBytes)) {
      // It can never fit: making room for it would drop every older message, then it as well.
      this.#classes.get(message.class)!.dropped += 1;
      return;
    }
    this.#s.insert.run(
      now,
      message.class,
      this.target,
      message.topic,
      payload,
      message.qos,
      message.retain ? 1 : 0,
    );
    this.#count(message.class, 1, payload.length);
    if (this.#overwrite.length > 0)
      this.#shed(this.#s.dropOldestOverwrite, limits.maxMessages, limits.maxBytes);
    this.#shed(this.#s.dropOldest, limits.hardMaxMessages, limits.hardMaxBytes);
  }

  /** Up to `limit` messages after id `afterId`, oldest first. */
  next(afterId: number, limit: number): OutboxRow[] {
    return this.#s.next.all(this.target, afterId, limit).map((row) => ({
      id: row.id,
      createdAt: row.created_at,
      class: row.class,
      topic: row.topic,
      payload: row.payload,
      qos: row.qos as 0 | 1 | 2,
      retain: row.retain === 1,
    }));
  }

  /** Forgets messages the broker acknowledged. */
  remove(ids: readonly number[]): void {
    if (ids.length === 0) return;
    this.db.transaction(() => {
      for (const id of ids) this.#forget(this.#s.delete.all(id, this.target), false);
    })();
  }

  /** Drops overwrite-oldest messages older than the age limit; returns how many. */
  expire(now: number): number {
    if (this.#overwrite.length === 0) return 0;
    return this.#forget(this.#s.expire.all(this.target, now - this.limits.maxAgeMs), true);
  }

  /** Re-reads the totals from the table (at start, and after a rolled-back transaction). */
  resync(): void {
    this.#totals.messages = 0;
    this.#totals.bytes = 0;
    for (const c of this.#classes.values()) {
      c.messages = 0;
      c.bytes = 0;
    }
    for (const row of this.#s.totals.all(this.target)) this.#count(row.class, row.n, row.bytes);
  }

  depth(): OutboxDepth {
    const classes = {} as Record<OutboxClass, ClassDepth>;
    for (const [name, c] of this.#classes) {
      classes[name] = {
        messages: c.messages,
        bytes: c.bytes,
        oldestAt: c.messages > 0 ? (this.#s.oldestOf.get(this.target, name)?.created_at ?? null) : null,
        dropped: c.dropped,
      };
    }
    return {
      messages: this.#totals.messages,
      bytes: this.#totals.bytes,
      oldestAt: this.#totals.messages > 0 ? (this.#s.oldest.get(this.target)?.created_at ?? null) : null,
      classes,
    };
  }

  /** Drops the oldest rows `drop` selects, in batches, while the outbox holds more than the limits. */
  #shed(drop: { all(target: string, n: number): Gone[] }, maxMessages: number, maxBytes: number) {
    const t = this.#totals;
    while (t.messages > maxMessages || t.bytes > maxBytes) {
      const perMessage = Math.max(1, t.bytes / Math.max(1, t.messages));
      const excess = Math.max(t.messages - maxMessages, Math.ceil((t.bytes - maxBytes) / perMessage), 1);
      if (this.#forget(drop.all(this.target, Math.min(excess, 1000)), true) === 0) return;
    }
  }

  #count(name: OutboxClass, messages: number, bytes: number) {
    // A class this version does not know (a newer one wrote it) counts as results: kept.
    const c = this.#classes.get(name) ?? this.#classes.get('results')!;
    c.messages += messages;
    c.bytes += bytes;
    this.#totals.messages += messages;
    this.#totals.bytes += bytes;
  }

  #forget(rows: readonly Gone[], dropped: boolean): number {
    for (const row of rows) {
      this.#count(row.class, -1, -row.bytes);
      if (dropped) (this.#classes.get(row.class) ?? this.#classes.get('results')!).dropped += 1;
    }
    return rows.length;
  }
}
