/** A message as the journal holds it, committed before its acknowledgement. */
export interface JournalEntry {
  id: number;
  /** epoch ms */
  receivedAt: number;
  route: string;
  topic: string;
  payload: Buffer;
  contentType: string | null;
}

export interface NewJournalEntry {
  receivedAt: number;
  route: string;
  topic: string;
  payload: Uint8Array;
  contentType?: string | undefined;
  /** sha1 of topic NUL payload, see `messageDigest` */
  digest: Buffer;
}

export interface NewReading {
  device: string;
  metric: string;
  unit?: string | undefined;
  /** epoch ms */
  ts: number;
  value: number;
  journalId: number;
}

export interface NewWindow {
  device: string;
  metric: string;
  start: number;
  end: number;
  count: number;
  min: number;
  max: number;
  mean: number;
  std: number;
}

export type Severity = 'info' | 'warning' | 'critical';

export interface NewEvent {
  /** epoch ms of what happened (the source's time) */
  ts: number;
  /** device, camera or audio source */
  source: string;
  kind: string;
  severity: Severity;
  message: string;
  detail: Record<string, unknown>;
}

export interface EventRow extends NewEvent {
  id: number;
  createdAt: number;
}

export interface NewReject {
  ts: number;
  route?: string | undefined;
  topic: string;
  code: string;
  reason: string;
  size: number;
}

export interface RejectRow extends NewReject {
  id: number;
}

/** What an outbox message is: it decides which messages go first when the outbox is full. */
export type OutboxClass = 'results' | 'events' | 'windows' | 'errors';

export interface OutboxMessage {
  class: OutboxClass;
  topic: string;
  payload: string | Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface OutboxRow extends OutboxMessage {
  id: number;
  createdAt: number;
  payload: Buffer;
}

export interface ReadingBucket {
  /** bucket start, epoch ms */
  t: number;
  count: number;
  min: number;
  max: number;
  mean: number;
}

export interface SeriesRow {
  device: string;
  metric: string;
  unit: string | null;
}
