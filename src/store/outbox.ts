import type { SqliteDatabase } from './database.js';
import type { OutboxMessage, OutboxRow } from './types.js';

export interface OutboxLimits {
  /** Messages held at most; past it the oldest are dropped. */
  maxMessages: number;
  /** Payload bytes held at most; past it the oldest are dropped. */
  maxBytes: number;
  /** Messages older than this are dropped unsent, ms. */
  maxAgeMs: number;
}

export interface OutboxDepth {
  messages: number;
  bytes: number;
  /** created_at of the oldest waiting message, epoch ms; null when empty */
  oldestAt: number | null;
}

interface RawRow {
  id: number;
  created_at: number;
  topic: string;
  payload: Buffer;
  qos: number;
  retain: number;
}

/**
 * The persistent outbox: what is to be published waits here, in order, until the broker acknowledges it.
 * Bounded: past its limits the oldest messages are dropped and counted, never the newest.
 */
export class Outbox {
  /** Messages dropped for the limits since start. */
  dropped = 0;
  #messages: number;
  #bytes: number;
  readonly #insert;
  readonly #next;
  readonly #delete;
  readonly #dropOldest;
  readonly #expire;
  readonly #oldest;
  readonly #totals;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly limits: OutboxLimits,
  ) {
    this.#totals = db.prepare<[], { n: number; bytes: number }>(
      'SELECT count(*) AS n, coalesce(sum(length(payload)), 0) AS bytes FROM outbox',
    );
    const totals = this.#totals.get()!;
    this.#messages = totals.n;
    this.#bytes = totals.bytes;
    this.#insert = db.prepare(
      'INSERT INTO outbox (created_at, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)',
    );
    this.#next = db.prepare<[number, number], RawRow>(
      'SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?',
    );
    this.#delete = db.prepare<[number], { bytes: number }>(
      'DELETE FROM outbox WHERE id = ? RETURNING length(payload) AS bytes',
    );
    this.#dropOldest = db.prepare<[number], { bytes: number }>(
      'DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) RETURNING length(payload) AS bytes',
    );
    this.#expire = db.prepare<[number], { bytes: number }>(
      'DELETE FROM outbox WHERE created_at < ? RETURNING length(payload) AS bytes',
    );
    this.#oldest = db.prepare<[], { created_at: number }>(
      'SELECT created_at FROM outbox ORDER BY id LIMIT 1',
    );
  }

  /** Adds a message; call inside the transaction that commits what it reports. */
  enqueue(message: OutboxMessage, now: number): void {
    const payload = typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload;
    if (payload.length > this.limits.maxBytes) {
      // It can never fit: making room for it would drop every older message, then it as well.
      this.dropped += 1;
      return;
    }
    this.#insert.run(now, message.topic, payload, message.qos, message.retain ? 1 : 0);
    this.#messages += 1;
    this.#bytes += payload.length;
    while (this.#messages > this.limits.maxMessages || this.#bytes > this.limits.maxBytes) {
      const excess = Math.max(1, this.#messages - this.limits.maxMessages);
      const gone = this.#forget(this.#dropOldest.all(Math.min(excess, 1000)));
      this.dropped += gone;
      if (gone === 0) break;
    }
  }

  /** Up to `limit` messages after id `afterId`, oldest first. */
  next(afterId: number, limit: number): OutboxRow[] {
    return this.#next.all(afterId, limit).map((row) => ({
      id: row.id,
      createdAt: row.created_at,
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
      for (const id of ids) this.#forget(this.#delete.all(id));
    })();
  }

  /** Drops messages older than the age limit; returns how many. */
  expire(now: number): number {
    const gone = this.#forget(this.#expire.all(now - this.limits.maxAgeMs));
    this.dropped += gone;
    return gone;
  }

  /** Re-reads the totals from the table (after a rolled-back transaction). */
  resync(): void {
    const totals = this.#totals.get()!;
    this.#messages = totals.n;
    this.#bytes = totals.bytes;
  }

  depth(): OutboxDepth {
    return {
      messages: this.#messages,
      bytes: this.#bytes,
      oldestAt: this.#messages > 0 ? (this.#oldest.get()?.created_at ?? null) : null,
    };
  }

  #forget(rows: readonly { bytes: number }[]): number {
    for (const row of rows) {
      this.#messages -= 1;
      this.#bytes -= row.bytes;
    }
    return rows.length;
  }
}
