import { describe, expect, it } from 'vitest';
import { createLogger, systemClock } from '../../src/common/index.js';
import { Pipeline, type StageBatch } from '../../src/pipeline/index.js';
import type { JournalEntry } from '../../src/store/index.js';

const entry = (id: number): JournalEntry => ({
  id,
  receivedAt: Date.UTC(2026, 0, 1) + id * 1000,
  route: 'metric',
  topic: 'sensors/pump1/temperature',
  payload: Buffer.from(String(20 + (id % 3))),
  contentType: null,
});

/** A journal of `count` entries that records what the pipeline read back from it. */
function journal(count: number) {
  const all = Array.from({ length: count }, (_, i) => entry(i + 1));
  const reads: number[] = [];
  return {
    reads,
    source: {
      journalWatermark: () => 0,
      pendingJournal(limit: number, afterId: number) {
        const found = all.filter((e) => e.id > afterId).slice(0, limit);
        reads.push(...found.map((e) => e.id));
        return found;
      },
    },
    all,
  };
}

const pipelineOver = (source: ReturnType<typeof journal>['source'], batchSize: number) => {
  const processed: number[] = [];
  const pipeline = new Pipeline({
    routes: [{ name: 'metric', filter: 'sensors/+/+', kind: 'sensor', maxBytes: 1000 }],
    source,
    sink: { commit: (batch: StageBatch) => processed.push(...batch.processed) },
    batchSize,
    clock: systemClock,
    logger: createLogger({ level: 'silent' }),
    sensors: {
      windowMs: 60_000,
      timestamps: { minTs: 0, maxFutureMs: 1e12 },
      detector: { window: 10, threshold: 6, warmup: 5, cooldownMs: 0 },
      maxSeries: 10,
      history: () => [],
    },
    frames: {
      size: 256,
      fit: 'letterbox',
      thumbnailSize: 160,
      jpegQuality: 80,
      maxPixels: 1e7,
      maxCameras: 4,
      gate: { mode: 'change', threshold: 0.02, minIntervalMs: 0, cooldownMs: 0 },
      cameras: {},
      media: {
        write: () => {
          throw new Error('no frames in these tests');
        },
      },
      describe: false,
      maxBytes: () => 1e6,
    },
    audio: {
      maxSeconds: 60,
      maxChannels: 2,
      maxSources: 4,
      segmentSeconds: 30,
      padMs: 300,
      media: {
        write: () => {
          throw new Error('no audio in these tests');
        },
      },
      describe: false,
      maxBytes: () => 1e6,
    },
  });
  return { pipeline, processed };
};

describe('Pipeline hand-over from ingest', () => {
  it('processes handed entries from memory, in order, without reading the journal back', async () => {
    const j = journal(10);
    const { pipeline, processed } = pipelineOver(j.source, 4);
    pipeline.notify(j.all);
    while ((await pipeline.drain()) > 0); // a full batch yields to the event loop: drain on
    expect(processed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(j.reads).toEqual([]);
    await pipeline.stop(false);
  });

  it('fills a gap in what was handed over from the journal, never skipping an entry', async () => {
    const j = journal(10);
    const { pipeline, processed } = pipelineOver(j.source, 4);
    // entries 4-6 were never handed over (say, dropped for the bound): the journal fills them in
    pipeline.notify([...j.all.slice(0, 3), ...j.all.slice(6)]);
    while ((await pipeline.drain()) > 0); // a full batch yields to the event loop: drain on
    expect(processed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(j.reads.slice(0, 3)).toEqual([4, 5, 6]);
    await pipeline.stop(false);
  });
});
