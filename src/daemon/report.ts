import type { ReadinessCheck } from '../api/index.js';
import type { Config } from '../config/index.js';
import type { OutboxDrain } from '../publish/index.js';
import type { Outbox } from '../store/index.js';
import { activeResources, type LoopDelay } from './loopMonitor.js';
import { type Parts, redactUrl } from './parts.js';

/** What the status report reads besides the parts. */
export interface StatusContext {
  config: Config;
  parts: Parts;
  endpoints: { mqtt: string; http: string };
  version: string;
  /** epoch ms */
  startedAt: number;
  now: number;
  stopping: boolean;
  loopDelay: LoopDelay;
}

/** The gateway's state, for /api/status, MQTT status requests, metrics and the sd_notify STATUS line. */
export function gatewayStatus(c: StatusContext): Record<string, unknown> {
  const p = c.parts;
  const { config } = c;
  const memory = process.memoryUsage();
  const pipeline = p.pipeline.stats();
  const findings = p.findings.stats();
  return {
    gatewayId: config.gatewayId,
    version: c.version,
    startedAt: new Date(c.startedAt).toISOString(),
    uptimeSeconds: Math.round((c.now - c.startedAt) / 1000),
    state: c.stopping ? 'stopping' : 'running',
    broker: {
      url: redactUrl(c.endpoints.mqtt),
      embedded: p.broker !== undefined,
      connected: p.connection.connected,
      reconnects: p.connection.reconnects,
      lastError: p.connection.lastError ?? null,
    },
    http: { url: c.endpoints.http, auth: Boolean(config.http.token) },
    ingest: p.intake.stats(),
    pipeline,
    rejects: findings.rejects,
    queues: {
      journalPending: p.store.pendingJournalCount(),
      outbox: outboxStatus(p.store.outbox, p.drain),
    },
    uplink: p.uplink
      ? {
          url: redactUrl(config.uplink.url!),
          connected: p.uplink.connection.connected,
          reconnects: p.uplink.connection.reconnects,
          lastError: p.uplink.connection.lastError ?? null,
          forward: [...p.uplink.forward],
          outbox: outboxStatus(p.store.uplinkOutbox!, p.uplink.drain),
        }
      : null,
    memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
    process: { pid: process.pid, eventLoopDelayMs: c.loopDelay, resources: activeResources() },
    media: { ...p.store.media.totals(), maxBytes: config.store.mediaMaxBytes },
    disk: p.disk.status(),
    frames: { ...pipeline.frames, superseded: findings.superseded },
    audio: {
      ...pipeline.audio,
      dropped: findings.audioDropped,
      microphone: p.microphone?.status() ?? null,
    },
    model: p.inference ? p.inference.engine.status() : { state: 'disabled' },
    jobs: {
      ...p.store.jobs.counts(),
      waiting: p.store.jobs.waiting(),
      runner: p.inference?.runner.stats() ?? null,
    },
  };
}

/** /readyz: the store and the MQTT session must be up; the model, the disk and the uplink are reported. */
export function readiness(p: Parts): Record<string, ReadinessCheck> {
  const model = p.inference?.engine;
  const disk = p.disk.status();
  const checks: Record<string, ReadinessCheck> = {
    store: { ok: !p.store.closed, required: true },
    broker: { ok: p.connection?.connected === true, required: true, embedded: p.broker !== undefined },
    model: model
      ? {
          ok: ['ready', 'idle'].includes(model.state),
          required: false,
          state: model.state,
          variant: model.variant,
        }
      : { ok: true, required: false, state: 'disabled' },
    disk: { ok: !disk.low, required: false, freeBytes: disk.freeBytes },
  };
  if (p.uplink) checks.uplink = { ok: p.uplink.connection.connected, required: false };
  return checks;
}

/** An outbox's depth by class, ages as ISO 8601, and its drain's counters. */
function outboxStatus(outbox: Outbox, drain: OutboxDrain) {
  const depth = outbox.depth();
  const iso = (at: number | null) => (at === null ? null : new Date(at).toISOString());
  const classes = Object.fromEntries(
    Object.entries(depth.classes).map(([name, c]) => [name, { ...c, oldestAt: iso(c.oldestAt) }]),
  );
  return {
    messages: depth.messages,
    bytes: depth.bytes,
    oldestAt: iso(depth.oldestAt),
    inflight: drain.inflight,
    published: drain.published,
    /** publishes sent again after no acknowledgement in 60 s while connected */
    stalled: drain.stalled,
    dropped: outbox.dropped,
    classes,
  };
}

/**
 * The daemon's state in one line for `systemctl status` (sd_notify STATUS=, sent with every watchdog ping):
 * read straight from the parts, not from the whole status report.
 */
export function statusLine(p: Parts, stopping: boolean): string {
  const engine = p.inference?.engine;
  const model = engine ? `${engine.state}${engine.variant ? ` ${engine.variant}` : ''}` : 'disabled';
  const parts = [
    stopping ? 'stopping' : 'running',
    `broker ${p.connection.connected ? 'connected' : 'disconnected'}`,
    `model ${model}`,
    `journal ${p.store.pendingJournalCount()}`,
    `outbox ${p.store.outbox.depth().messages}`,
  ];
  if (p.uplink) parts.push(`uplink ${p.uplink.connection.connected ? 'connected' : 'disconnected'}`);
  if (p.disk.low) parts.push('DISK LOW');
  return parts.join('; ');
}
