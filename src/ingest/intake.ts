import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import { type Clock, TopicFilter } from '../common/index.js';
import { type RouteConfig, routeMaxBytes } from '../config/index.js';
import type { JournalEntry, NewJournalEntry } from '../store/index.js';
import { RecentDigests } from './recentDigests.js';

/** sha1 over topic, a NUL and the payload: the identity used to recognise redelivered messages. */
export function messageDigest(topic: string, payload: Uint8Array): Buffer {
  return createHash('sha1').update(topic).update('\0').update(payload).digest();
}

/** Where accepted messages are committed; the store implements it. */
export interface IngestJournal {
  appendJournal(entry: NewJournalEntry): number;
  /** digests of the newest entries received at or after `since`, newest first */
  recentDigests(since: number, limit: number): Buffer[];
  transaction<T>(fn: () => T): T;
}

/** A message turned away, with its reason; never carries the payload. */
export interface Rejection {
  /** epoch ms */
  ts: number;
  route?: string | undefined;
  topic: string;
  /** stable machine-readable code, e.g. too-large, not-json */
  code: string;
  reason: string;
  /** payload bytes */
  size: number;
}

/** Records and reports a rejection (store + errors topic); counted by whoever implements it. */
export interface RejectSink {
  reject(rejection: Rejection): void;
}

export type IncomingPacket = Pick<IPublishPacket, 'topic' | 'payload' | 'dup' | 'properties'>;

/** Called once the message is committed (no error) or certainly not (error): acknowledge or not. */
export type AckCallback = (error?: Error) => void;

export interface IntakeOptions {
  routes: readonly RouteConfig[];
  journal: IngestJournal;
  rejects: RejectSink;
  /**
   * After each commit attempt: release the acknowledgements it covers, hand the committed entries to the
   * pipeline (in memory: it need not read them back from the journal).
   */
  onCommit: (error?: Error, committed?: readonly JournalEntry[]) => void;
  /** How long a redelivered message is recognised as a duplicate, ms. */
  duplicateWindowMs: number;
  /** Messages committed in one transaction at most. Default 1000. */
  maxBatch?: number;
  /** Message identities remembered for duplicate recognition. Default 20000. */
  rememberedDigests?: number;
  clock: Clock;
}

export interface IntakeStats {
  /** committed to the journal, by route */
  accepted: Record<string, number>;
  /** turned away before the journal (size), by route */
  rejected: Record<string, number>;
  /** redeliveries recognised and acknowledged without a second row */
  duplicates: number;
  bytes: number;
  /** transactions committed, and messages in them */
  commits: number;
}

interface CommitCounts {
  accepted: Map<string, number>;
  duplicates: number;
  digests: [Buffer, number][];
  /** the identities this batch took so far: a redelivery can land in the same batch as its original */
  batch: Set<string>;
  committed: JournalEntry[];
}

interface Staged {
  packet: IncomingPacket;
  payload: Buffer;
  route: RouteConfig;
  receivedAt: number;
  ack: AckCallback | undefined;
}

/**
 * Turns incoming messages into journal rows or recorded rejections, committed in small transactions:
 * messages that arrive in one turn of the event loop (one socket read, several publishers) share a commit,
 * and each is acknowledged only after it (DESIGN: acknowledgement after commit).
 */
export class Intake {
  readonly #routes: { route: RouteConfig; filter: TopicFilter }[];
  readonly #stats: IntakeStats = { accepted: {}, rejected: {}, duplicates: 0, bytes: 0, commits: 0 };
  readonly #digests: RecentDigests;
  readonly #maxBatch: number;
  #staged: Staged[] = [];
  #scheduled = false;

  constructor(private readonly options: IntakeOptions) {
    this.#routes = options.routes.map((route) => ({ route, filter: new TopicFilter(route.filter) }));
    for (const { route } of this.#routes) {
      this.#stats.accepted[route.name] = 0;
      this.#stats.rejected[route.name] = 0;
    }
    this.#maxBatch = options.maxBatch ?? 1000;
    const remembered = options.rememberedDigests ?? 20_000;
    this.#digests = new RecentDigests(remembered);
    const now = options.clock.now();
    const recent = options.journal.recentDigests(now - options.duplicateWindowMs, remembered);
    for (const digest of recent.reverse()) this.#digests.add(digest, now);
  }

  /** The filters to subscribe to. */
  get filters(): string[] {
    return this.#routes.map((r) => r.route.filter);
  }

  /** Whether a route takes this topic. */
  takes(topic: string): boolean {
    return this.#routes.some((r) => r.filter.match(topic) !== null);
  }

  /**
   * Stages one message for the next commit (this turn of the event loop, or now when the batch is full);
   * `ack` runs after it. Returns false, doing nothing, for a topic no route takes (the embedded broker
   * also sees the gateway's own publishes).
   */
  submit(packet: IncomingPacket, ack?: AckCallback): boolean {
    const route = this.#routes.find((r) => r.filter.match(packet.topic) !== null)?.route;
    if (!route) return false;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    this.#stats.bytes += payload.length;
    this.#staged.push({ packet, payload, route, receivedAt: this.options.clock.now(), ack });
    if (this.#staged.length >= this.#maxBatch) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** Commits what is staged, then acknowledges it. */
  flush(): void {
    this.#scheduled = false;
    const staged = this.#staged;
    if (staged.length === 0) return;
    this.#staged = [];
    const o = this.options;
    const counts: CommitCounts = {
      accepted: new Map(),
      duplicates: 0,
      digests: [],
      batch: new Set(),
      committed: [],
    };
    try {
      o.journal.transaction(() => {
        for (const s of staged) this.#commitOne(s, counts);
      });
    } catch (error) {
      // Nothing of the batch is committed: none of it is acknowledged, so the broker or the publisher
      // sends it again (and its identities were not remembered, so the redelivery is taken).
      for (const s of staged) s.ack?.(error as Error);
      o.onCommit(error as Error);
      return;
    }
    for (const [digest, at] of counts.digests) this.#digests.add(digest, at);
    this.#stats.commits += 1;
    this.#stats.duplicates += counts.duplicates;
    for (const [name, n] of counts.accepted) this.#stats.accepted[name]! += n;
    for (const s of staged) s.ack?.();
    o.onCommit(undefined, counts.committed);
  }

  stats(): IntakeStats {
    return structuredClone(this.#stats);
  }

  #commitOne(s: Staged, counts: CommitCounts) {
    const { route, payload, packet, receivedAt } = s;
    const limit = routeMaxBytes(route);
    if (payload.length > limit) {
      this.#stats.rejected[route.name]! += 1;
      this.options.rejects.reject({
        ts: receivedAt,
        route: route.name,
        topic: packet.topic,
        code: 'too-large',
        reason: `payload of ${payload.length} bytes exceeds the route limit of ${limit}`,
        size: payload.length,
      });
      return;
    }
    const digest = messageDigest(packet.topic, payload);
    // Only a redelivery (DUP set) is checked: identical readings sent twice on purpose are both kept.
    const key = digest.toString('base64');
    if (
      packet.dup &&
      (counts.batch.has(key) || this.#digests.has(digest, receivedAt - this.options.duplicateWindowMs))
    ) {
      counts.duplicates += 1;
      return;
    }
    counts.batch.add(key);
    counts.digests.push([digest, receivedAt]);
    const contentType = packet.properties?.contentType;
    const id = this.options.journal.appendJournal({
      receivedAt,
      route: route.name,
      topic: packet.topic,
      payload,
      contentType,
      digest,
    });
    counts.committed.push({
      id,
      receivedAt,
      route: route.name,
      topic: packet.topic,
      payload,
      contentType: contentType ?? null,
    });
    counts.accepted.set(route.name, (counts.accepted.get(route.name) ?? 0) + 1);
  }
}
