import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/index.js';
import { type Config, routeMaxBytes } from '../config/index.js';
import { type Intake, MicrophoneSource } from '../ingest/index.js';
import type { FrameStageOptions } from '../pipeline/index.js';
import { HomeAssistantDiscovery, type WireTopics } from '../publish/index.js';
import type { Store } from '../store/index.js';

/** The parts the composition root builds from the config: Home Assistant, the microphone, stage options. */

/**
 * Home Assistant discovery. The sources are what the store holds (cameras and audio sources with jobs or
 * results, sensor series), so a restart does not take them for removed; what was announced last is kept
 * in `<dataDir>/homeassistant.json`, so sources that are gone are removed from Home Assistant.
 */
export function startDiscovery(
  config: Config,
  topics: WireTopics,
  store: Store,
  version: string,
  logger: Logger,
  publish: (topic: string, payload: string, opts: { retain: true; qos: 1 }) => Promise<void>,
): HomeAssistantDiscovery {
  const file = join(config.dataDir, 'homeassistant.json');
  return new HomeAssistantDiscovery({
    prefix: config.homeassistant.prefix,
    gatewayId: config.gatewayId,
    topics,
    version,
    publish,
    known: () => ({
      cameras: store.jobs.sources('frame'),
      audioSources: store.jobs.sources('audio'),
      series: store.queries
        .series()
        .map((s) => ({ device: s.device, metric: s.metric, ...(s.unit ? { unit: s.unit } : {}) })),
    }),
    store: {
      load: () => {
        try {
          return JSON.parse(readFileSync(file, 'utf8')) as string[];
        } catch {
          return [];
        }
      },
      save: (announced) => writeFileSync(file, JSON.stringify(announced)),
    },
    logger: logger.child({ stage: 'homeassistant' }),
  });
}

/**
 * The board's microphone: each captured segment enters the journal like an `audio/<source>/clip` message
 * (the JSON form, which carries when it started), through the same route, stage and jobs.
 */
export function startMicrophone(config: Config, intake: Intake, logger: Logger): MicrophoneSource {
  const m = config.audio.microphone;
  const topic = `audio/${m.source}/clip`;
  const log = logger.child({ stage: 'microphone' });
  if (!intake.takes(topic))
    log.warn({ topic }, 'no audio route takes the microphone topic: its clips are dropped');
  return MicrophoneSource.start({
    source: m.source,
    ...(m.device === undefined ? {} : { device: m.device }),
    recorder: m.recorder,
    gain: m.gain,
    segmentSeconds: m.segmentSeconds,
    logger: log,
    onSegment: (wav, meta) => {
      const payload = JSON.stringify({ audio: wav.toString('base64'), format: 'wav', ts: meta.startedAt });
      intake.submit({ topic, payload: Buffer.from(payload), dup: false, properties: {} });
    },
  });
}

/** The frame stage's settings from the config (seconds to ms). */
export function frameStageOptions(config: Config, store: Store): FrameStageOptions {
  const f = config.frames;
  const ms = (seconds: number | undefined) => (seconds === undefined ? undefined : seconds * 1000);
  return {
    size: f.size,
    fit: f.fit,
    thumbnailSize: f.thumbnailSize,
    jpegQuality: f.jpegQuality,
    maxPixels: f.maxPixels,
    maxCameras: f.maxCameras,
    gate: {
      mode: f.gate.mode,
      threshold: f.gate.threshold,
      minIntervalMs: f.gate.minInterval * 1000,
      cooldownMs: f.gate.cooldown * 1000,
    },
    cameras: Object.fromEntries(
      Object.entries(f.cameras).map(([camera, c]) => [
        camera,
        {
          ...(c.mode !== undefined && { mode: c.mode }),
          ...(c.threshold !== undefined && { threshold: c.threshold }),
          ...(c.minInterval !== undefined && { minIntervalMs: ms(c.minInterval) }),
          ...(c.cooldown !== undefined && { cooldownMs: ms(c.cooldown) }),
          ...(c.prompt !== undefined && { prompt: c.prompt }),
        },
      ]),
    ),
    media: store.media,
    // Without inference, frames are gated and counted, but nothing is written or queued.
    describe: config.inference.enabled,
    maxBytes: routeLimit(config),
  };
}

/** The payload limit of a route by name (the route an entry was journaled under). */
export function routeLimit(config: Config): (route: string) => number {
  const limits = new Map(config.ingest.routes.map((r) => [r.name, routeMaxBytes(r)]));
  return (route) => limits.get(route) ?? 0;
}
