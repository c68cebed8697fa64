import { createHash } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import type { Clock } from '../common/index.js';
import type { RouteConfig } from '../config/index.js';
import type { NewJournalEntry } from '../store/index.js';
import { TopicFilter } from './topicFilter.js';

/** sha1 over topic, a NUL and the payload: the identity used to recognise redelivered messages. */
export function messageDigest(topic: string, payload: Uint8Array): Buffer {
  return createHash('sha1').update(topic).update('\0').update(payload).digest();
}

/** Where accepted messages are committed; the store's journal implements it. */
export interface IngestJournal {
  appendJournal(entry: NewJournalEntry): number;
  hasJournaled(digest: Buffer, since: number): boolean;
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

export interface IntakeOptions {
  routes: readonly RouteConfig[];
  journal: IngestJournal;
  rejects: RejectSink;
  /** Called after each commit so the pipeline picks the entry up. */
  onJournaled: () => void;
  /** How long a redelivered message is recognised as a duplicate, ms. */
  duplicateWindowMs: number;
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
}

/**
 * Turns each incoming message into a journal row or a recorded rejection, synchronously, so the caller
 * can acknowledge it the moment this returns.
 */
export class Intake {
  readonly #routes: { route: RouteConfig; filter: TopicFilter }[];
  readonly #stats: IntakeStats = { accepted: {}, rejected: {}, duplicates: 0, bytes: 0 };

  constructor(private readonly options: IntakeOptions) {
    this.#routes = options.routes.map((route) => ({ route, filter: new TopicFilter(route.filter) }));
    for (const { route } of this.#routes) {
      this.#stats.accepted[route.name] = 0;
      this.#stats.rejected[route.name] = 0;
    }
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
   * Handles one message; when it returns, the message is committed or its rejection recorded. Returns
   * false, doing nothing, for a topic no route takes (the embedded broker also sees the gateway's own
   * publishes).
   */
  handle(packet: Pick<IPublishPacket, 'topic' | 'payload' | 'dup' | 'properties'>): boolean {
    const o = this.options;
    const now = o.clock.now();
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const route = this.#routes.find((r) => r.filter.match(packet.topic) !== null)?.route;
    if (!route) return false;
    this.#stats.bytes += payload.length;
    if (payload.length > route.maxBytes) {
      this.#stats.rejected[route.name]! += 1;
      o.rejects.reject({
        ts: now,
        route: route.name,
        topic: packet.topic,
        code: 'too-large',
        reason: `payload of ${payload.length} bytes exceeds the route limit of ${route.maxBytes}`,
        size: payload.length,
      });
      return true;
    }
    const digest = messageDigest(packet.topic, payload);
    // Only a redelivery (DUP set) is checked: identical readings sent twice on purpose are both kept.
    if (packet.dup && o.journal.hasJournaled(digest, now - o.duplicateWindowMs)) {
      this.#stats.duplicates += 1;
      return true;
    }
    o.journal.appendJournal({
      receivedAt: now,
      route: route.name,
      topic: packet.topic,
      payload,
      contentType: packet.properties?.contentType,
      digest,
    });
    this.#stats.accepted[route.name]! += 1;
    o.onJournaled();
    return true;
  }

  stats(): IntakeStats {
    return structuredClone(this.#stats);
  }
}
