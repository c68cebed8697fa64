import type { Clock, Logger, Timer } from '../common/index.js';
import type { Outbox, OutboxRow } from '../store/index.js';

/** What the drain publishes through; the ingest stage's MQTT connection implements it. */
export interface MessageTransport {
  readonly connected: boolean;
  publish(
    topic: string,
    payload: string | Buffer,
    options: { qos: 0 | 1 | 2; retain: boolean },
  ): Promise<void>;
  on(event: 'connect', listener: () => void): unknown;
}

export interface OutboxDrainOptions {
  outbox: Outbox;
  transport: MessageTransport;
  /** Publishes awaiting acknowledgement at once. */
  inflight: number;
  /**
   * A publish not acknowledged this long while connected gives up its slot and is sent again (at least
   * once: the broker may see it twice). Default 60000.
   */
  publishTimeoutMs?: number;
  clock: Clock;
  logger: Logger;
}

/**
 * Sends the outbox in id order while the broker is there, keeping `inflight` publishes open, and
 * forgets each message only when the broker has acknowledged it. Offline, it waits; on connect it goes on
 * (mqtt.js itself resends what was in flight when the connection dropped).
 */
export class OutboxDrain {
  /** messages acknowledged since start */
  published = 0;
  failures = 0;
  /** publishes that got no acknowledgement in publishTimeoutMs while connected, and were sent again */
  stalled = 0;
  /** outbox id -> the send that holds its slot (a stalled send's late answer must not free a resend's) */
  readonly #inflight = new Map<number, object>();
  readonly #acked: number[] = [];
  #cursor = 0;
  #scheduled = false;
  #stopped = false;
  #idle: (() => void)[] = [];
  #retry: Timer | undefined;

  constructor(private readonly options: OutboxDrainOptions) {
    options.transport.on('connect', () => this.wake());
  }

  /** New messages were queued, or the broker came back. */
  wake(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#pump();
    });
  }

  /** Resolves when the outbox is empty and nothing is in flight, or after `timeoutMs`; true if empty. */
  flush(timeoutMs: number): Promise<boolean> {
    this.wake();
    if (this.#empty()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = this.options.clock.setTimeout(() => resolve(false), timeoutMs);
      this.#idle.push(() => {
        timer.cancel();
        resolve(true);
      });
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#retry?.cancel();
    this.#removeAcked();
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  #pump() {
    const { outbox, transport, inflight } = this.options;
    this.#removeAcked();
    if (this.#stopped || !transport.connected) return;
    const room = inflight - this.#inflight.size;
    if (room <= 0) return;
    const rows = outbox.next(this.#cursor, room);
    for (const row of rows) if (!this.#inflight.has(row.id)) this.#send(row);
    if (rows.length > 0) this.#cursor = rows.at(-1)!.id;
    if (this.#empty()) for (const done of this.#idle.splice(0)) done();
  }

  #send(row: OutboxRow) {
    const send = {};
    this.#inflight.set(row.id, send);
    const release = () => {
      if (this.#inflight.get(row.id) === send) this.#inflight.delete(row.id);
    };
    const { clock, transport, logger } = this.options;
    let settled = false;
    let timer: Timer | undefined;
    const watch = () => {
      timer = clock.setTimeout(() => {
        if (settled || this.#stopped) return;
        // Offline, mqtt.js holds it for the reconnect: only a silence while connected counts.
        if (!transport.connected) return watch();
        this.stalled += 1;
        release();
        this.#cursor = Math.min(this.#cursor, row.id - 1);
        logger.warn({ topic: row.topic, id: row.id }, 'publish not acknowledged in time; sending it again');
        this.wake();
      }, this.options.publishTimeoutMs ?? 60_000);
    };
    watch();
    transport.publish(row.topic, row.payload, { qos: row.qos, retain: row.retain }).then(
      () => {
        settled = true;
        timer?.cancel();
        release();
        this.#acked.push(row.id);
        this.published += 1;
        this.wake();
      },
      (error: Error) => {
        settled = true;
        timer?.cancel();
        // The client gave up on it (closed while stopping): it stays in the outbox for the next run.
        release();
        this.failures += 1;
        this.#cursor = Math.min(this.#cursor, row.id - 1);
        this.options.logger.debug(
          { err: error.message, topic: row.topic },
          'publish failed; kept in the outbox',
        );
        this.#retry ??= this.options.clock.setTimeout(() => {
          this.#retry = undefined;
          this.wake();
        }, 1000);
      },
    );
  }

  #removeAcked() {
    if (this.#acked.length > 0) this.options.outbox.remove(this.#acked.splice(0));
  }

  #empty() {
    return (
      this.#inflight.size === 0 && this.#acked.length === 0 && this.options.outbox.depth().messages === 0
    );
  }
}
