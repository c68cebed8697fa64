import type { Clock } from '../common/index.js';
import type { JobResult, ResultSink } from '../inference/index.js';
import type { Rejection, RejectSink } from '../ingest/index.js';
import type { PipelineSink, SensorAnomaly, StageBatch } from '../pipeline/index.js';
import type { JobRow, JournalEntry, NewEvent, OutboxClass, Store } from '../store/index.js';
import type { ErrorMessage, EventMessage, ResultMessage, WindowMessage, WireTopics } from './topics.js';

export interface FindingsOptions {
  store: Store;
  topics: WireTopics;
  clock: Clock;
  /** Called after each commit that queued messages, so the outbox drains them. */
  onQueued: () => void;
  /** Queue a model job to explain each anomaly. Default false. */
  explainAnomalies?: boolean;
  /** Called after a commit that queued jobs (anomalies to explain, accepted frames, voiced clips). */
  onJobs?: () => void;
  /** Audio jobs of one source waiting at most; older ones are dropped (their clips stay). Default 50. */
  maxWaitingAudio?: number;
  /** Forward these classes to the uplink's outbox (the store's), under the uplink's topics. */
  uplink?: { topics: WireTopics; forward: ReadonlySet<OutboxClass> } | undefined;
}

export interface FindingsStats {
  /** rejections by code since start */
  rejects: Record<string, number>;
  events: number;
  /** frame jobs dropped before they ran because a newer frame of their camera came */
  superseded: number;
  /** audio jobs dropped before they ran because too many of their source waited */
  audioDropped: number;
}

/** Why an audio job is dropped before it ran. */
const TOO_MANY_WAITING = 'too many clips of this source were waiting (audio.maxWaiting); the clip is kept';

/** Why a frame job is dropped for a newer one. */
const SUPERSEDED = 'superseded by a newer frame of the camera before it ran';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Commits what the stages found and the messages that report it in one transaction each: readings,
 * windows, events and rejections land in their tables and in the outbox together, or not at all.
 */
export class Findings implements PipelineSink, RejectSink, ResultSink {
  readonly #stats: FindingsStats = { rejects: {}, events: 0, superseded: 0, audioDropped: 0 };

  constructor(private readonly options: FindingsOptions) {}

  /** A message ingest turned away before the journal. */
  reject(rejection: Rejection): void {
    this.options.store.transaction(() => this.#reject(rejection));
    this.options.onQueued();
  }

  commit(batch: StageBatch, entries: ReadonlyMap<number, JournalEntry>): void {
    const { store, clock } = this.options;
    const now = clock.now();
    let events = 0;
    let jobs = 0;
    const unlink: string[] = [];
    let superseded = 0;
    let audioDropped = 0;
    store.transaction(() => {
      for (const reading of batch.readings) store.insertReading(reading);
      if (batch.throughId !== undefined) store.advanceJournalWatermark(batch.throughId);
      store.releasePayloads(batch.released);
      for (const frame of batch.frames) {
        store.media.record([frame.input, frame.thumbnail], now);
        // Latest wins: a frame job that has not started yet is replaced by this newer one.
        for (const old of store.jobs.supersede('frame', frame.camera, SUPERSEDED, now)) {
          const paths = [old.input.input, old.input.thumbnail].filter(
            (p): p is string => typeof p === 'string',
          );
          store.media.forget(paths);
          unlink.push(...paths);
          superseded += 1;
        }
        store.jobs.add(
          {
            kind: 'frame',
            source: frame.camera,
            route: frame.route,
            input: {
              ts: frame.ts,
              input: frame.input.path,
              thumbnail: frame.thumbnail.path,
              width: frame.width,
              height: frame.height,
              gate: frame.gate,
              ...(frame.prompt === undefined ? {} : { prompt: frame.prompt }),
            },
          },
          now,
        );
        jobs += 1;
      }
      for (const clip of batch.clips) {
        // The clip is kept as media whatever becomes of its job.
        store.media.record([clip.clip], now);
        store.jobs.add(
          {
            kind: 'audio',
            source: clip.source,
            route: clip.route,
            input: {
              ts: clip.ts,
              clip: clip.clip.path,
              seconds: clip.seconds,
              ...(clip.prompt === undefined ? {} : { prompt: clip.prompt }),
            },
          },
          now,
        );
        jobs += 1;
        const keep = this.options.maxWaitingAudio ?? 50;
        audioDropped += store.jobs.trim('audio', clip.source, keep, TOO_MANY_WAITING, now).length;
      }
      for (const rejected of batch.rejected) {
        const entry = entries.get(rejected.journalId);
        this.#reject({
          ts: entry?.receivedAt ?? now,
          route: entry?.route,
          topic: entry?.topic ?? '',
          code: rejected.code,
          reason: rejected.reason,
          size: entry?.payload.length ?? 0,
        });
      }
      for (const window of batch.windows) {
        store.insertWindow(window);
        const message: WindowMessage = {
          device: window.device,
          metric: window.metric,
          start: iso(window.start),
          end: iso(window.end),
          count: window.count,
          min: window.min,
          max: window.max,
          mean: window.mean,
          std: window.std,
        };
        this.#send('windows', (t) => t.windows(window.device, window.metric), message, now);
      }
      for (const anomaly of batch.anomalies) {
        const row = store.insertEvent(anomalyEvent(anomaly), now);
        const message: EventMessage = {
          id: row.id,
          ts: iso(row.ts),
          source: row.source,
          kind: 'anomaly',
          severity: row.severity,
          message: row.message,
          detail: row.detail,
        };
        this.#send('events', (t) => t.events(row.source), message, now);
        events += 1;
        if (this.options.explainAnomalies) {
          store.jobs.add(
            { kind: 'explain', source: row.source, route: anomaly.route, input: { eventId: row.id } },
            now,
          );
        }
      }
    });
    this.#stats.events += events;
    this.#stats.superseded += superseded;
    this.#stats.audioDropped += audioDropped;
    if (unlink.length > 0) void store.media.unlink(unlink);
    if (jobs > 0 || (events > 0 && this.options.explainAnomalies)) this.options.onJobs?.();
    if (batch.windows.length + batch.anomalies.length + batch.rejected.length > 0) this.options.onQueued();
  }

  /**
   * A job's result: stored, its job done, its message queued, together (one row, one message, once). An
   * output with `alert: true` also raises an alert event on the source's events topic. The job's model
   * input file is deleted afterwards; its thumbnail (or clip) stays with the result.
   */
  recordResult(result: JobResult): void {
    const { store, clock } = this.options;
    const now = clock.now();
    const { job, generation } = result;
    // The result's media: a frame's thumbnail, or a clip.
    const kept = job.input.thumbnail ?? job.input.clip;
    const media = typeof kept === 'string' ? kept : undefined;
    const input = typeof job.input.input === 'string' ? job.input.input : undefined;
    const message: ResultMessage = {
      id: job.id,
      kind: result.resultKind,
      source: job.source,
      ts: iso(result.ts),
      model: generation.info.model,
      variant: generation.variant,
      latencyMs: Math.round(result.latencyMs),
      generation: {
        tokens: generation.result.tokens,
        promptTokens: generation.result.promptTokens,
        ms: Math.round(generation.result.generationMs * 10) / 10,
      },
      output: result.output,
      ...(media ? { media: `/api/results/${job.id}/media` } : {}),
    };
    store.transaction(() => {
      store.jobs.insertResult(
        {
          id: job.id,
          kind: message.kind,
          source: job.source,
          ts: result.ts,
          model: message.model,
          variant: message.variant,
          latencyMs: message.latencyMs,
          output: result.output,
          media,
        },
        now,
      );
      store.jobs.set(job.id, 'done', null, now);
      if (input) store.media.forget([input]);
      if (result.output.alert === true) this.#alert(result, now);
      this.#send('results', (t) => t.results(message.kind, job.source), message, now);
    });
    if (input) void store.media.unlink([input]);
    this.options.onQueued();
  }

  /** A job ended without a result (failed): its media files go. */
  discardJobMedia(job: JobRow): void {
    const paths = [job.input.input, job.input.thumbnail].filter((p): p is string => typeof p === 'string');
    if (paths.length === 0) return;
    this.options.store.transaction(() => this.options.store.media.forget(paths));
    void this.options.store.media.unlink(paths);
  }

  stats(): FindingsStats {
    return structuredClone(this.#stats);
  }

  #alert(result: JobResult, now: number) {
    const { store } = this.options;
    const { output, job } = result;
    const reason = typeof output.alertReason === 'string' && output.alertReason ? output.alertReason : null;
    const description = typeof output.description === 'string' ? output.description : null;
    const row = store.insertEvent(
      {
        ts: result.ts,
        source: job.source,
        kind: 'alert',
        severity: 'warning',
        message:
          `${job.source}: ${reason ?? description ?? `the model raised an alert on a ${job.kind}`}`.slice(
            0,
            300,
          ),
        detail: { resultId: job.id, resultKind: result.resultKind, ...output },
      },
      now,
    );
    const message: EventMessage = {
      id: row.id,
      ts: iso(row.ts),
      source: row.source,
      kind: 'alert',
      severity: row.severity,
      message: row.message,
      detail: row.detail,
    };
    this.#send('events', (t) => t.events(row.source), message, now);
    this.#stats.events += 1;
  }

  /** Queues a message for the gateway's broker and, where its class is forwarded, for the uplink. */
  #send(kind: OutboxClass, topic: (topics: WireTopics) => string, message: object, now: number) {
    const { store, topics, uplink } = this.options;
    const payload = JSON.stringify(message);
    store.outbox.enqueue({ class: kind, topic: topic(topics), payload, qos: 1, retain: false }, now);
    if (uplink?.forward.has(kind) && store.uplinkOutbox) {
      store.uplinkOutbox.enqueue(
        { class: kind, topic: topic(uplink.topics), payload, qos: 1, retain: false },
        now,
      );
    }
  }

  #reject(rejection: Rejection) {
    const { store, clock } = this.options;
    store.insertReject(rejection);
    const message: ErrorMessage = {
      topic: rejection.topic,
      route: rejection.route ?? null,
      code: rejection.code,
      reason: rejection.reason,
      size: rejection.size,
      ts: iso(rejection.ts),
    };
    this.#send('errors', (t) => t.errors(), message, clock.now());
    this.#stats.rejects[rejection.code] = (this.#stats.rejects[rejection.code] ?? 0) + 1;
  }
}

function anomalyEvent(a: SensorAnomaly): NewEvent {
  const unit = a.unit ? ` ${a.unit}` : '';
  const round = (x: number) => Number(x.toPrecision(4));
  return {
    ts: a.ts,
    source: a.device,
    kind: 'anomaly',
    severity: a.severity,
    message: `${a.device}/${a.metric} read ${round(a.value)}${unit}, ${round(a.score)} robust deviations from its median ${round(a.median)}${unit}`,
    detail: {
      device: a.device,
      metric: a.metric,
      value: a.value,
      unit: a.unit ?? null,
      score: a.score,
      median: a.median,
      scale: a.scale,
      threshold: a.threshold,
    },
  };
}
