import { readFileSync } from 'node:fs';
import {
  MetricsRegistry,
  renderGatewayMetrics,
  runResultsQuery,
  StoreChanges,
  startApiServer,
} from '../api/index.js';
import { type Clock, type Logger, systemClock, type Timer, withTimeout } from '../common/index.js';
import type { Config } from '../config/index.js';
import type { MemoryProbe } from '../inference/index.js';
import { type IncomingPacket, Intake, MqttConnection, startEmbeddedBroker } from '../ingest/index.js';
import { Pipeline } from '../pipeline/index.js';
import { Findings, type HealthMessage, OutboxDrain, RequestHandler, wireTopics } from '../publish/index.js';
import { Store } from '../store/index.js';
import { createAsk, retrieveFindings } from './ask.js';
import { DiskGuard, type DiskProbe } from './disk.js';
import { startInference } from './inference.js';
import { type LoopDelay, LoopMonitor } from './loopMonitor.js';
import { type Parts, race, redactUrl, STOP_STATUS_MS, stopParts } from './parts.js';
import { gatewayStatus, readiness, statusLine } from './report.js';
import { outboxLimits, startUplink, uplinkRoute } from './uplink.js';
import { frameStageOptions, routeLimit, startDiscovery, startMicrophone } from './wiring.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  /** Default: the system clock. */
  clock?: Clock;
  /** Memory readings for the model governor; default /proc and cgroup v2. Tests drive the governor here. */
  memoryProbe?: MemoryProbe;
  /** The worker's RSS as the governor sees it; default read from /proc. */
  workerRss?: () => number | undefined;
  /** Free space of the data volume; default statfs(2). */
  diskProbe?: DiskProbe;
}

/** Where the running gateway can be reached. */
export interface DaemonEndpoints {
  mqtt: string;
  http: string;
}

/** How often Home Assistant discovery looks for new or removed sources, ms. */
const DISCOVERY_REFRESH_MS = 30_000;
/** A discovery config not acknowledged within this is sent again by the next refresh, ms. */
const DISCOVERY_PUBLISH_MS = 10_000;
/** How often retention runs, ms. */
const PRUNE_EVERY_MS = 60_000;
/** Stop budget for flushing the outbox, ms (publishing the status: STOP_STATUS_MS). */
const STOP_FLUSH_MS = 2000;

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * The composition root: starts the stages in dependency order (store, broker, pipeline, MQTT session,
 * HTTP), checking the abort signal between phases, and stops them in reverse. Failures while stopping are
 * logged and turn the exit code to 1; they never throw.
 */
export class Daemon {
  readonly endpoints: DaemonEndpoints;
  readonly #o: DaemonOptions & { clock: Clock };
  readonly #parts: Parts;
  readonly #startedAt: number;
  readonly #timers: Timer[] = [];
  readonly #loop = new LoopMonitor();
  #last = { at: 0, accepted: 0, rejected: 0 };
  #stopping: Promise<number> | undefined;

  private constructor(options: DaemonOptions & { clock: Clock }, parts: Parts, endpoints: DaemonEndpoints) {
    this.#o = options;
    this.#parts = parts;
    this.endpoints = endpoints;
    this.#startedAt = options.clock.now();
  }

  /** Starts every stage; on failure (or abort) stops what was started and rethrows. */
  static async start(options: DaemonOptions, signal?: AbortSignal): Promise<Daemon> {
    const o = { clock: systemClock, ...options };
    const { config, logger, clock } = o;
    const parts: Partial<Parts> = {};
    const check = () => signal?.throwIfAborted();
    try {
      parts.store = Store.open({
        dataDir: config.dataDir,
        synchronous: config.store.synchronous,
        outbox: outboxLimits(config.outbox, config.outbox.policy),
        uplinkOutbox: config.uplink.url
          ? outboxLimits(config.uplink.outbox, config.outbox.policy)
          : undefined,
      });
      const store = parts.store;
      if (!store.integrity.ok) {
        logger.error(
          {
            ...store.integrity,
            hint: `the damaged file is kept in ${store.integrity.movedTo}; sqlite3 can try .recover on it`,
          },
          'the database failed its integrity check: moved aside, a fresh one started with what could be read',
        );
      }
      logger.info({ file: store.file, journalPending: store.pendingJournalCount() }, 'store open');
      parts.disk = new DiskGuard({
        store,
        dataDir: config.dataDir,
        minFreeBytes: config.store.minFreeBytes,
        maxDatabaseBytes: config.store.maxDatabaseBytes,
        probe: options.diskProbe,
        clock,
        logger: logger.child({ stage: 'disk' }),
      });
      await parts.disk.check();
      // Files a crashed run wrote but never committed.
      const orphans = await store.media.sweepOrphans();
      if (orphans > 0) logger.info({ files: orphans }, 'media files no row references were deleted');
      check();

      const topics = wireTopics(config.mqtt.topicPrefix, config.gatewayId);
      // Store changes wake the live stream; the registry keeps what status cannot (job latencies).
      const changes = new StoreChanges();
      const metrics = new MetricsRegistry();
      parts.topics = topics;
      const uplink = uplinkRoute(config);
      parts.findings = new Findings({
        store,
        topics,
        clock,
        onQueued: () => {
          parts.drain?.wake();
          parts.uplink?.drain.wake();
          changes.notify();
        },
        uplink,
        explainAnomalies: config.inference.enabled,
        maxWaitingAudio: config.audio.maxWaiting,
        onJobs: () => parts.inference?.runner.wake(),
      });
      if (config.inference.enabled) {
        parts.inference = startInference({
          config,
          store,
          results: parts.findings,
          logger,
          clock,
          memoryProbe: options.memoryProbe,
          workerRss: options.workerRss,
          observe: (job) => metrics.observeJob(job),
        });
      }
      parts.pipeline = new Pipeline({
        routes: config.ingest.routes,
        source: store,
        sink: parts.findings,
        batchSize: config.store.batchSize,
        clock,
        logger: logger.child({ stage: 'pipeline' }),
        sensors: {
          windowMs: config.sensors.window * 1000,
          timestamps: {
            minTs: Date.parse(config.sensors.minTimestamp),
            maxFutureMs: config.sensors.maxFuture * 1000,
          },
          detector: { ...config.sensors.anomaly, cooldownMs: config.sensors.anomaly.cooldown * 1000 },
          maxSeries: config.sensors.maxSeries,
          history: (device, metric, n) => store.recentValues(device, metric, n),
        },
        frames: frameStageOptions(config, store),
        audio: {
          maxSeconds: config.audio.maxSeconds,
          maxChannels: config.audio.maxChannels,
          maxSources: config.audio.maxSources,
          segmentSeconds: config.audio.segmentSeconds,
          padMs: config.audio.padMs,
          media: store.media,
          describe: config.inference.enabled,
          maxBytes: routeLimit(config),
        },
      });
      parts.pipeline.start();
      parts.intake = new Intake({
        routes: config.ingest.routes,
        journal: store,
        rejects: parts.findings,
        onCommit: (error, committed) => {
          if (error) {
            logger.error({ err: error }, 'journal commit failed; nothing of it acknowledged');
            parts.connection?.dropAcks();
            return;
          }
          parts.connection?.releaseAcks();
          parts.pipeline?.notify(committed);
        },
        duplicateWindowMs: config.ingest.duplicateWindow * 1000,
        clock,
      });
      const intake = parts.intake;
      // Messages for the gateway itself (Home Assistant's status), not for the journal.
      const controlFilters: string[] = [];
      type Control = (
        topic: string,
        payload: Buffer | string,
        properties?: IncomingPacket['properties'],
      ) => boolean;
      const controls: Control[] = [];
      const control: Control = (topic, payload, properties) =>
        controls.some((handle) => handle(topic, payload, properties));
      if (config.homeassistant.enabled) {
        parts.discovery = startDiscovery(config, topics, store, VERSION, logger, (topic, payload, opts) => {
          if (!parts.connection) return Promise.reject(new Error('not connected yet'));
          // Unacknowledged in time counts as failed: the next refresh sends it again.
          return withTimeout(
            parts.connection.publish(topic, payload, opts),
            DISCOVERY_PUBLISH_MS,
            `not acknowledged within ${DISCOVERY_PUBLISH_MS} ms`,
          );
        });
        controlFilters.push(parts.discovery.statusTopic);
        const discovery = parts.discovery;
        controls.push((topic, payload) => discovery.onMessage(topic, payload));
      }
      const inference = parts.inference;
      const ask = inference
        ? createAsk({
            store,
            runner: inference.runner,
            retrieve: retrieveFindings(store.queries),
            priority: config.inference.askPriority,
            timeoutMs: config.inference.askTimeout * 1000,
            clock,
          })
        : undefined;
      const daemon: { current?: Daemon } = {};
      parts.requests = new RequestHandler({
        topics,
        publish: (topic, payload, opts) => {
          if (!parts.connection) return Promise.reject(new Error('not connected yet'));
          return parts.connection.publish(topic, payload, opts);
        },
        status: () => daemon.current?.status() ?? {},
        queryResults: (params) => runResultsQuery(store.queries, params),
        ask: ask && ((request) => ask(request, 'mqtt')),
        askTimeoutMs: config.inference.askTimeout * 1000,
        logger: logger.child({ stage: 'requests' }),
      });
      const requests = parts.requests;
      controlFilters.push(requests.filter);
      controls.push((topic, payload, properties) => {
        if (!requests.accepts(topic)) return false;
        void requests.handle(topic, payload, properties);
        return true;
      });
      let url = config.mqtt.url;
      if (!url) {
        // In process, ingest commits inside the broker's publish hook: a sensor's PUBACK then means its
        // message is in the journal, with no broker-side queue that a crash could lose.
        parts.broker = await startEmbeddedBroker({
          ...config.broker,
          logger: logger.child({ stage: 'broker' }),
          onPublish: (packet, ack) => {
            if (control(packet.topic, packet.payload)) return ack();
            if (parts.intakePaused && intake.takes(packet.topic)) {
              return ack(new Error('the gateway is stopping; publish again later'));
            }
            if (!intake.submit(packet, ack)) ack();
          },
        });
        url = parts.broker.url;
      }
      check();

      parts.connection = new MqttConnection({
        ...config.mqtt,
        url,
        // aedes speaks MQTT 3.1.1 only
        protocolVersion: parts.broker ? 4 : 5,
        statusTopic: topics.status(),
        // With the embedded broker, messages arrive through its hook, not a subscription.
        subscriptions: parts.broker ? [] : [...intake.filters, ...controlFilters],
        logger: logger.child({ stage: 'mqtt' }),
        clock,
      });
      const connection = parts.connection;
      connection.setHandler((packet) => {
        if (control(packet.topic, packet.payload, packet.properties)) {
          setImmediate(() => connection.releaseAcks());
          return;
        }
        if (intake.submit(packet)) return;
        logger.debug({ topic: packet.topic }, 'message on no route; acknowledged');
        // Its PUBACK is held like any other: release it after whatever is staged is committed.
        setImmediate(() => {
          intake.flush();
          connection.releaseAcks();
        });
      });
      parts.drain = new OutboxDrain({
        outbox: store.outbox,
        transport: parts.connection,
        inflight: config.outbox.inflight,
        clock,
        logger: logger.child({ stage: 'outbox' }),
      });
      if (uplink) {
        parts.uplink = startUplink(config, uplink, store, logger, clock);
        logger.info({ url: redactUrl(config.uplink.url!), forward: config.uplink.forward }, 'uplink started');
      }
      check();

      if (config.audio.microphone.enabled) parts.microphone = startMicrophone(config, intake, logger);
      check();

      parts.api = await startApiServer({
        host: config.http.host,
        port: config.http.port,
        token: config.http.token,
        queries: store.queries,
        mediaFile: (path) => store.media.resolve(path),
        status: () => daemon.current?.status() ?? {},
        readiness: () => readiness(parts as Parts),
        eventLoopDelay: () => daemon.current?.loopDelay ?? { p50: 0, p99: 0, max: 0, windowMs: 0 },
        logger,
        now: () => clock.now(),
        tls: config.http.tls,
        rateLimit: config.http.rateLimit,
        cors: config.http.cors,
        changes,
        ask: ask && ((question) => ask(question, 'http')),
        metrics: () => renderGatewayMetrics(daemon.current?.status() ?? {}, metrics),
      });
      if (!config.http.token)
        logger.info({ url: parts.api.url }, 'HTTP API without a token: bound to loopback only');
      else logger.info({ url: parts.api.url }, 'HTTP API listening (bearer token required)');

      daemon.current = new Daemon(o, parts as Parts, { mqtt: url, http: parts.api.url });
      daemon.current.#startTimers();
      check();
      logger.info(
        { gatewayId: config.gatewayId, mqtt: redactUrl(url), http: parts.api.url },
        'outpost started',
      );
      return daemon.current;
    } catch (error) {
      await stopParts(parts, logger);
      throw error;
    }
  }

  /** Stops intake, finishes what is in flight, publishes `stopping`, closes; resolves with the exit code. */
  stop(): Promise<number> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** The event loop's delay over its last window. */
  get loopDelay(): LoopDelay {
    return this.#loop.delay;
  }

  /** Resolves true once the gateway's MQTT session is up (at once if it is), false after `ms`. */
  waitConnected(ms: number): Promise<boolean> {
    const connection = this.#parts.connection;
    if (connection.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        connection.off('connect', done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      connection.once('connect', done);
    });
  }

  /** The gateway's state in one line (sd_notify STATUS=). */
  statusLine(): string {
    return statusLine(this.#parts, this.#stopping !== undefined);
  }

  /** The gateway's state, for /api/status. */
  status(): Record<string, unknown> {
    return gatewayStatus({
      config: this.#o.config,
      parts: this.#parts,
      endpoints: this.endpoints,
      version: VERSION,
      startedAt: this.#startedAt,
      now: this.#o.clock.now(),
      stopping: this.#stopping !== undefined,
      loopDelay: this.#loop.delay,
    });
  }

  /** The retained health message; `rates` cover the time since the previous one. */
  health(): HealthMessage {
    const p = this.#parts;
    const now = this.#o.clock.now();
    const ingest = p.intake.stats();
    const accepted = Object.values(ingest.accepted).reduce((a, b) => a + b, 0);
    const rejected = Object.values(p.findings.stats().rejects).reduce((a, b) => a + b, 0);
    const seconds = Math.max(1, (now - (this.#last.at || this.#startedAt)) / 1000);
    const rates = {
      ingest: round((accepted - this.#last.accepted) / seconds),
      rejects: round((rejected - this.#last.rejected) / seconds),
    };
    this.#last = { at: now, accepted, rejected };
    const depth = p.store.outbox.depth();
    const memory = process.memoryUsage();
    const disk = p.disk.status();
    return {
      ts: new Date(now).toISOString(),
      gatewayId: this.#o.config.gatewayId,
      version: VERSION,
      uptimeSeconds: Math.round((now - this.#startedAt) / 1000),
      memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
      queues: {
        journalPending: p.store.pendingJournalCount(),
        outboxMessages: depth.messages,
        outboxBytes: depth.bytes,
        outboxOldestAgeSeconds: depth.oldestAt === null ? null : Math.round((now - depth.oldestAt) / 1000),
        uplinkOutboxMessages: p.store.uplinkOutbox?.depth().messages ?? null,
      },
      rates,
      drops: { outbox: p.store.outbox.dropped, rejected, duplicates: ingest.duplicates },
      model: {
        state: p.inference?.engine.state ?? 'disabled',
        variant: p.inference?.engine.variant ?? null,
      },
      uplink: p.uplink ? { connected: p.uplink.connection.connected } : null,
      disk: { freeBytes: disk.freeBytes, low: disk.low, databaseBytes: disk.database.usedBytes },
    };
  }

  #startTimers() {
    const { config, clock, logger } = this.#o;
    const p = this.#parts;
    const publishHealth = () => {
      if (!p.connection.connected) return;
      p.connection
        .publish(p.topics.health(), JSON.stringify(this.health()), { qos: 0, retain: true })
        .catch((error: Error) => logger.debug({ err: error.message }, 'health publish failed'));
    };
    p.connection.on('connect', publishHealth);
    if (p.discovery) {
      const discovery = p.discovery;
      // The embedded broker keeps no retained messages across restarts: announce on every connect.
      p.connection.on('connect', () => void discovery.announce());
      if (p.connection.connected) void discovery.announce();
      // New cameras, series and audio sources: only the differences are sent.
      this.#timers.push(clock.setInterval(() => void discovery.refresh(), DISCOVERY_REFRESH_MS));
    }
    this.#timers.push(clock.setInterval(publishHealth, config.health.interval * 1000));
    this.#timers.push(
      clock.setInterval(() => {
        p.disk.check().catch((error: Error) => logger.error({ err: error }, 'disk check failed'));
      }, config.store.diskCheckInterval * 1000),
    );
    this.#timers.push(
      clock.setInterval(() => {
        const now = clock.now();
        const day = 86_400_000;
        try {
          const removed = p.store.prune({
            journalBefore: now - config.store.journalKeep * 1000,
            readingsBefore: now - config.store.readingsDays * day,
            eventsBefore: now - config.store.eventsDays * day,
          });
          const finishedJobs = p.store.jobs.prune(now - config.store.eventsDays * day);
          const media = p.store.media.expired({
            before: now - config.store.mediaDays * day,
            maxBytes: config.store.mediaMaxBytes,
          });
          if (media.length > 0) {
            p.store.transaction(() => p.store.media.forget(media));
            void p.store.media.unlink(media);
          }
          const expired = p.store.outbox.expire(now) + (p.store.uplinkOutbox?.expire(now) ?? 0);
          // What retention deleted goes back to the card a few MiB at a time (see maintenance.ts).
          p.store.maintain();
          if (removed + expired + finishedJobs + media.length > 0) {
            logger.debug({ removed, expired, finishedJobs, mediaFiles: media.length }, 'retention pruned');
          }
        } catch (error) {
          logger.error({ err: error }, 'retention failed');
        }
      }, PRUNE_EVERY_MS),
    );
  }

  async #stop(): Promise<number> {
    const { logger } = this.#o;
    const p = this.#parts;
    logger.info('stopping: intake paused');
    for (const timer of this.#timers) timer.cancel();
    this.#loop.stop();
    p.connection.pauseIntake();
    p.intakePaused = true;
    // Its last partial segment goes into the journal with what is staged.
    await p.microphone?.stop().catch((error: Error) => logger.warn({ err: error }, 'microphone stop failed'));
    // What was staged before the pause is committed and acknowledged; nothing after it is.
    p.intake.flush();
    let code = 0;
    const step = async (name: string, fn: () => unknown) => {
      logger.debug({ step: name }, 'stop step');
      try {
        await fn();
      } catch (error) {
        code = 1;
        logger.error({ err: error, step: name }, 'stop step failed');
      }
    };
    await step('status', async () => {
      if (p.connection.connected) {
        await race(
          p.connection.publish(p.topics.status(), 'stopping', { qos: 1, retain: true }),
          STOP_STATUS_MS,
        );
      }
    });
    // A generation in flight is aborted; its job is queued again for the next start.
    await step('inference', () => p.inference?.stop());
    await step('pipeline', () => p.pipeline.stop(true));
    await step('outbox', async () => {
      const uplink = p.uplink;
      const [local, upstream] = await Promise.all([
        p.drain.flush(p.connection.connected ? STOP_FLUSH_MS : 0),
        uplink ? uplink.drain.flush(uplink.connection.connected ? STOP_FLUSH_MS : 0) : true,
      ]);
      if (!local || !upstream)
        logger.warn(
          { waiting: p.store.outbox.depth().messages, uplinkWaiting: p.store.uplinkOutbox?.depth().messages },
          'outbox not empty at stop; sent on next start',
        );
    });
    code = Math.max(code, await stopParts(p, logger));
    logger.info({ code }, 'stopped');
    return code;
  }
}

function round(x: number) {
  return Math.round(x * 10) / 10;
}
