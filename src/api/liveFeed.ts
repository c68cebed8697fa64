import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from '../common/index.js';
import type { EventRow, ResultRow, StoreQueries, StreamCursors } from '../store/index.js';
import type { ChangeFeed } from './changes.js';
import { eventJson, resultJson } from './rows.js';

export interface LiveFeedOptions {
  queries: Pick<StoreQueries, 'resultsAfter' | 'eventsAfter'>;
  /** Change notices; without them new rows arrive at the next poll. */
  changes?: ChangeFeed | undefined;
  /** Period of the fallback read of new rows, ms. Default 1000. */
  pollMs?: number | undefined;
  /** Period of the comment that keeps idle connections (and proxies) open, ms. Default 15 000. */
  heartbeatMs?: number | undefined;
  /**
   * A client that takes nothing of what is written to it for this long is cut off, ms: it resumes from the
   * store with Last-Event-ID when it reconnects. Default 30 000.
   */
  stallMs?: number | undefined;
  /** Streams open at once; more are refused with 503. Default 32. */
  maxClients?: number | undefined;
  logger: Logger;
}

/** Rows read per table and round. */
const BATCH = 100;

/** How long a stream's clean end may take when the server closes, ms. */
const CLOSE_GRACE_MS = 250;

/** `r<result seq>.e<event id>`: where a client is in both sequences; the SSE `id` of every message. */
export function streamId(cursors: StreamCursors): string {
  return `r${cursors.result}.e${cursors.event}`;
}

export function parseStreamId(text: string): StreamCursors | undefined {
  const match = /^r(\d{1,15})\.e(\d{1,15})$/.exec(text.trim());
  return match ? { result: Number(match[1]), event: Number(match[2]) } : undefined;
}

interface LiveClient {
  res: ServerResponse;
  /** where the client is once its pending frames are written */
  cursors: StreamCursors;
  /** frames read from the store and not yet written (at most a batch of each table) */
  pending: string[];
  /** the socket took less than was written: wait for 'drain' before writing more */
  blocked: boolean;
  stall?: NodeJS.Timeout;
}

/**
 * Server-sent events of results (`event: result`) and events (`event: event`) as they are stored. Rows
 * come from the store, after a change notice or a poll; each client reads after its own cursors, so nothing
 * is held per client but what its socket has not taken (bounded: a client is written to only while its
 * socket keeps up, and cut off when it stalls).
 */
export class LiveFeed {
  readonly #options: LiveFeedOptions;
  readonly #clients = new Set<LiveClient>();
  #timers: NodeJS.Timeout[] = [];
  #unsubscribe: (() => void) | undefined;
  #pumpQueued = false;
  #closed = false;

  constructor(options: LiveFeedOptions) {
    this.#options = options;
  }

  /** Streams open now. */
  get size(): number {
    return this.#clients.size;
  }

  /**
   * Takes over `res` as an event stream that starts after `cursors`; false (nothing written) when the
   * feed is closed or full.
   */
  attach(res: ServerResponse, cursors: StreamCursors, headers: OutgoingHttpHeaders): boolean {
    if (this.#closed || this.#clients.size >= (this.#options.maxClients ?? 32)) return false;
    const client: LiveClient = { res, cursors: { ...cursors }, pending: [], blocked: false };
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'close',
      // nginx and friends would otherwise hold events back in their buffers
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    // An id with no data sets the client's Last-Event-ID without an event: a client that drops before
    // anything arrives still resumes from here.
    res.write(`retry: 2000\nid: ${streamId(client.cursors)}\n\n`);
    res.on('close', () => this.#detach(client));
    res.on('error', () => this.#detach(client));
    this.#clients.add(client);
    if (this.#clients.size === 1) this.#start();
    this.#pump(client);
    return true;
  }

  /** Ends every stream and stops reading; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop();
    for (const client of [...this.#clients]) {
      this.#detach(client);
      // A stalled client would hold the server's close until its socket drained: it is cut off at once.
      if (client.blocked) {
        client.res.destroy();
        continue;
      }
      // The others get a clean end, and a moment to read it: a client that holds its socket open without
      // reading (as fetch does for a while after an abort) must not hold the server's close either.
      client.res.end();
      setTimeout(() => client.res.destroy(), CLOSE_GRACE_MS).unref();
    }
  }

  #start() {
    const { pollMs = 1000, heartbeatMs = 15_000, changes } = this.#options;
    this.#unsubscribe = changes?.subscribe(() => this.#pumpSoon());
    this.#timers = [
      setInterval(() => this.#pumpAll(), pollMs),
      setInterval(() => this.#heartbeat(), heartbeatMs),
    ];
    for (const timer of this.#timers) timer.unref();
  }

  #stop() {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  #detach(client: LiveClient) {
    if (!this.#clients.delete(client)) return;
    clearTimeout(client.stall);
    if (this.#clients.size === 0) this.#stop();
  }

  /** Change notices come from inside the writer's code path: many collapse into one read, after it. */
  #pumpSoon() {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    setImmediate(() => {
      this.#pumpQueued = false;
      this.#pumpAll();
    });
  }

  #pumpAll() {
    for (const client of this.#clients) this.#pump(client);
  }

  /** Writes what was stored after the client's cursors until it is caught up or its socket is full. */
  #pump(client: LiveClient) {
    while (!client.blocked && this.#clients.has(client)) {
      // What was read but not yet written goes first: a slow socket never makes rows be read twice.
      const frame = client.pending.shift() ?? (this.#read(client) ? client.pending.shift() : undefined);
      if (frame === undefined) return;
      if (!client.res.write(frame)) this.#block(client);
    }
  }

  /**
   * Reads the next rows after the client's cursors into its pending frames (at most a batch of each, so a
   * client holds no more than that), as one timeline by when they were stored; false when there are none.
   */
  #read(client: LiveClient): boolean {
    const { queries, logger } = this.#options;
    let results: ResultRow[];
    let events: EventRow[];
    try {
      results = queries.resultsAfter(client.cursors.result, BATCH);
      events = queries.eventsAfter(client.cursors.event, BATCH);
    } catch (error) {
      // The store is closing under a last poll: the stream ends with the server.
      logger.debug({ err: error }, 'live stream: reading new rows failed');
      return false;
    }
    let r = 0;
    let e = 0;
    while (r < results.length || e < events.length) {
      const takeResult =
        e >= events.length || (r < results.length && results[r]!.createdAt <= events[e]!.createdAt);
      // Each frame's id holds both cursors as they are once it is written: the pending frames are written
      // in this order, so the cursors advance here.
      if (takeResult) {
        const row = results[r++]!;
        client.cursors.result = row.seq;
        client.pending.push(message('result', client.cursors, resultJson(row)));
      } else {
        const row = events[e++]!;
        client.cursors.event = row.id;
        client.pending.push(message('event', client.cursors, eventJson(row)));
      }
    }
    return client.pending.length > 0;
  }

  #heartbeat() {
    for (const client of this.#clients) {
      if (!client.blocked && !client.res.write(': keep-alive\n\n')) this.#block(client);
    }
  }

  #block(client: LiveClient) {
    client.blocked = true;
    const { stallMs = 30_000, logger } = this.#options;
    client.stall = setTimeout(() => {
      logger.info(
        { backlogBytes: client.res.writableLength, stallMs },
        'live stream client took nothing for too long: cut off (it resumes with Last-Event-ID)',
      );
      client.res.destroy();
      this.#detach(client);
    }, stallMs);
    client.stall.unref();
    client.res.once('drain', () => {
      clearTimeout(client.stall);
      client.blocked = false;
      this.#pump(client);
    });
  }
}

function message(event: 'result' | 'event', cursors: StreamCursors, data: unknown): string {
  // JSON.stringify escapes line breaks inside strings, so the data is one line.
  return `id: ${streamId(cursors)}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
