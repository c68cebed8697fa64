/**
 * Fault test: 10,000 seeded malformed payloads over every default route (truncations, bit flips, wrong
 * JSON types, payloads just over the limit, deep nesting, invalid UTF-8, empty payloads, non-finite
 * numbers, garbage after a JPEG/PNG/RIFF magic, absurd WAV headers, bad base64 envelopes) sent to a real
 * gateway (embedded aedes broker, real SQLite, sharp, the audio DSP thread). Each must come back as a
 * rejection with a reason, on the errors topic and in /api/status, and the gateway must keep running with
 * its memory bounded. The seed is printed; OUTPOST_MALFORMED_SEED=<n> replays or varies it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorMessage } from '../../src/publish/index.js';
import { type Collector, collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  MALFORMED_ROUTES,
  type MalformedMessage,
  type MalformedRoute,
  malformedMessages,
  mediaSamples,
} from '../helpers/malformed.js';
import { waitFor } from '../helpers/wait.js';

const SEED = Number(process.env.OUTPOST_MALFORMED_SEED ?? 20_240_501);
const COUNT = 10_000;
/** The default route limits (src/config/schema.ts ingest.routes), bytes. */
const LIMITS: Record<MalformedRoute, number> = {
  'sensor-metric': 64 * 1024,
  'sensor-device': 64 * 1024,
  'camera-frame': 8 * 1024 * 1024,
  'audio-clip': 16 * 1024 * 1024,
};
/** Publishes awaiting their acknowledgement at once, over all publishers. */
const IN_FLIGHT = 64;
const PUBLISHERS = 4;
/** Messages sent before the RSS baseline is taken. */
const WARMUP = 1000;
/** Messages sent but not yet rejected on the errors topic, at most. */
const MAX_BACKLOG = 1000;
/**
 * Generous: the gateway, its broker, the publishers and the observer share this process, and the growth
 * (the audio thread's heap, SQLite's cache, allocator high-water marks) levels off rather than climbs:
 * 75-100 MB after the warm-up here, about 50 MB more over a further 20,000 payloads.
 */
const MAX_RSS_GROWTH_BYTES = 150 * 1024 * 1024;

interface Status {
  state: string;
  broker: { connected: boolean };
  pipeline: { processed: number };
  rejects: Record<string, number>;
  memory: { rssBytes: number };
}

// The gateway runs in this process: a full collection before each RSS sample makes the figure what is
// retained, not what the garbage collector had not yet got round to (16 MiB payloads among them).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const MB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Counts of `keys`, sorted by key. */
function tally(keys: Iterable<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const key of keys) counts[key] = (counts[key] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

describe('malformed payloads on every route', () => {
  let gateway: TestGateway;
  let observer: Collector;
  let publishers: MqttClient[];

  const status = async () => (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as Status;
  const rss = async () => {
    collectGarbage();
    return (await status()).memory.rssBytes;
  };

  beforeAll(async () => {
    gateway = await startGateway({ OUTPOST_INFERENCE_DIGEST_INTERVAL: '0' });
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/errors');
    publishers = await Promise.all(Array.from({ length: PUBLISHERS }, () => publisher(gateway.mqttUrl)));
  });
  afterAll(async () => {
    await Promise.all(publishers?.map((p) => p.endAsync()) ?? []);
    await observer?.end();
    expect(await gateway.stop()).toBe(0);
  });

  it('rejects every one with a reason, keeps running, and keeps its memory bounded', async () => {
    const started = performance.now();
    const stream = malformedMessages({
      seed: SEED,
      count: COUNT,
      samples: await mediaSamples(),
      limits: LIMITS,
    });
    const sent: Pick<MalformedMessage, 'route' | 'category' | 'topic'>[] = [];
    const sentIdentities: string[] = [];
    let n = 0;
    /** Publishes up to `limit` more messages in bounded parallel; each resolves on the broker's ack. */
    const send = async (limit: number) => {
      const inFlight = new Set<Promise<unknown>>();
      for (let i = 0; i < limit; i++) {
        // Rejections may trail the acknowledgements (those come at the journal commit) by this much:
        // a backlog held in memory would be the test's cost, not the gateway's.
        if (sent.length - observer.messages.length >= MAX_BACKLOG) {
          await waitFor(
            'the gateway to catch up',
            () => sent.length - observer.messages.length < MAX_BACKLOG / 2,
            30_000,
          );
        }
        const next = stream.next();
        if (next.done) break;
        const { route, category, topic, payload } = next.value;
        sent.push({ route, category, topic });
        sentIdentities.push(`${topic} ${payload.length}`);
        const done = publishers[n++ % PUBLISHERS]!.publishAsync(topic, payload, { qos: 1 });
        inFlight.add(done);
        void done.finally(() => inFlight.delete(done));
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    };

    // The first messages warm up what starts on first use (the audio thread, sharp, SQLite's cache), so
    // that the growth measured after them is what the rest of the faults cost.
    const rssAtStart = await rss();
    await send(WARMUP);
    await waitFor('the warm-up rejections', () => observer.messages.length >= WARMUP, 30_000);
    const rssBefore = await rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      void status().then(
        (s) => (rssPeak = Math.max(rssPeak, s.memory.rssBytes)),
        () => undefined,
      );
    }, 500);
    await send(COUNT);
    const publishedMs = performance.now() - started;
    // A good reading after all the garbage still flows.
    await publishers[0]!.publishAsync('sensors/pump1/temperature', '21.5', { qos: 1 });

    await waitFor('a rejection on MQTT for every payload', () => observer.messages.length >= COUNT, 90_000);
    await waitFor(
      'every rejection counted in /api/status',
      async () => Object.values((await status()).rejects).reduce((a, b) => a + b, 0) >= COUNT,
      30_000,
    );
    await waitFor(
      'the good reading',
      () => gateway.sql<{ n: number }>('SELECT count(*) AS n FROM readings')[0]!.n === 1,
    );
    clearInterval(sampler);
    const rssAfter = await rss();
    const after = await status();
    const elapsedMs = performance.now() - started;

    const errors = observer.json<ErrorMessage>('outpost/gw-test/errors');
    const byCode = tally(errors.map((e) => e.code));
    const breakdown = {
      seed: SEED,
      sent: COUNT,
      byRouteAndCategory: tally(sent.map((m) => `${m.route} ${m.category}`)),
      byCategory: tally(sent.map((m) => m.category)),
      rejectsByCode: byCode,
      rss: {
        atStart: MB(rssAtStart),
        afterWarmup: MB(rssBefore),
        after: MB(rssAfter),
        growthAfterWarmup: MB(rssAfter - rssBefore),
        growthFromStart: MB(rssAfter - rssAtStart),
        peak: MB(rssPeak),
      },
      publishedSeconds: Math.round(publishedMs / 100) / 10,
      seconds: Math.round(elapsedMs / 100) / 10,
    };
    console.log(`malformed payload fault test\n${JSON.stringify(breakdown, null, 2)}`);

    // Every payload came back once as a rejection: the same topics and sizes, each with a short reason
    // that never replays the payload.
    expect(errors).toHaveLength(COUNT);
    expect(tally(errors.map((e) => `${e.topic} ${e.size}`))).toEqual(tally(sentIdentities));
    expect(tally(errors.map((e) => e.route ?? 'none'))).toEqual(tally(sent.map((m) => m.route)));
    for (const error of errors) {
      expect(error.code).toMatch(/^[a-z0-9-]+$/);
      expect(error.reason.length).toBeGreaterThan(5);
      expect(error.reason.length).toBeLessThan(200);
    }
    // None was a failure of the gateway's own (an exception in a stage) rather than a verdict on the input.
    expect(Object.keys(byCode).filter((code) => code.endsWith('-failed'))).toEqual([]);
    // The same counts, by code, in /api/status and in the store.
    expect(after.rejects).toEqual(byCode);
    const stored = gateway.sql<{ code: string; n: number }>(
      'SELECT code, count(*) AS n FROM rejects GROUP BY code',
    );
    expect(Object.fromEntries(stored.map((r) => [r.code, r.n]))).toEqual(byCode);
    // Nothing of it became a reading, a frame, a clip or a job: the good reading is all that went through.
    expect(after.pipeline.processed).toBe(1);
    expect(gateway.sql<{ n: number }>('SELECT count(*) AS n FROM jobs')[0]!.n).toBe(0);
    expect(Object.keys(tally(sent.map((m) => m.route)))).toEqual([...MALFORMED_ROUTES].sort());

    expect(after.state).toBe('running');
    expect(after.broker.connected).toBe(true);
    expect((await fetch(`${gateway.httpUrl}/healthz`)).status).toBe(200);
    expect(rssAfter - rssBefore).toBeLessThan(MAX_RSS_GROWTH_BYTES);
  }, 120_000);
});
