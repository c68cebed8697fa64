import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/index.js';
import { outboxLimits } from '../helpers/outbox.js';

describe('JobTable', () => {
  let store: Store;
  beforeEach(() => {
    store = Store.open({
      dataDir: mkdtempSync(join(tmpdir(), 'outpost-jobs-')),
      outbox: outboxLimits(),
    });
  });
  afterEach(() => store.close());

  it('hands out queued jobs by priority, then age; counts attempts; resumes running ones', () => {
    const low = store.jobs.add({ kind: 'digest', source: 'a', input: {} }, 1);
    const high = store.jobs.add({ kind: 'explain', source: 'b', priority: 5, input: { eventId: 1 } }, 2);
    expect(store.jobs.next()?.id).toBe(high);
    store.jobs.start(high, 3);
    expect(store.jobs.next()?.id).toBe(low);
    expect(store.jobs.resumeRunning(4)).toBe(1);
    expect(store.jobs.get(high)).toMatchObject({
      state: 'queued',
      attempts: 1,
      reason: 'resumed after a restart',
    });
  });

  it('will not start a job a newer frame superseded while the runner readied the model', () => {
    const old = store.jobs.add({ kind: 'frame', source: 'cam', input: { input: 'a.jpg' } }, 1);
    const picked = store.jobs.next();
    expect(picked?.id).toBe(old);
    // Meanwhile the pipeline commits a newer frame of the camera.
    store.transaction(() => {
      store.jobs.supersede('frame', 'cam', 'superseded', 2);
      store.jobs.add({ kind: 'frame', source: 'cam', input: { input: 'b.jpg' } }, 2);
    });
    expect(store.jobs.isOpen(old)).toBe(false);
    expect(store.jobs.start(old, 3)).toBe(false);
    expect(store.jobs.get(old)).toMatchObject({ state: 'dropped', attempts: 0 });
    const newer = store.jobs.next()!;
    expect(store.jobs.start(newer.id, 4)).toBe(true);
    expect(store.jobs.get(newer.id)).toMatchObject({ state: 'running', attempts: 1 });
  });

  it('parks queued jobs with a visible reason and wakes them', () => {
    const id = store.jobs.add({ kind: 'digest', source: 'a', input: {} }, 1);
    expect(store.jobs.parkAll('no model configured', 2)).toBe(1);
    expect(store.jobs.get(id)).toMatchObject({ state: 'waiting-model', reason: 'no model configured' });
    expect(store.jobs.counts()['waiting-model']).toBe(1);
    expect(store.jobs.next()).toBeUndefined();
    expect(store.jobs.wakeWaiting(3)).toBe(1);
    expect(store.jobs.next()?.id).toBe(id);
  });

  it('knows whether a job of a kind and source is still open, and prunes only finished ones', () => {
    const open = store.jobs.add({ kind: 'digest', source: 'pump1', input: {} }, 1);
    expect(store.jobs.hasOpen('digest', 'pump1')).toBe(true);
    expect(store.jobs.hasOpen('digest', 'pump2')).toBe(false);
    store.jobs.set(open, 'done', null, 10);
    expect(store.jobs.hasOpen('digest', 'pump1')).toBe(false);
    const failed = store.jobs.add({ kind: 'digest', source: 'pump1', input: {} }, 11);
    store.jobs.set(failed, 'failed', 'no luck', 12);
    const queued = store.jobs.add({ kind: 'digest', source: 'pump1', input: {} }, 1);
    expect(store.jobs.prune(100)).toBe(2);
    expect(store.jobs.list(undefined, 10).map((j) => j.id)).toEqual([queued]);
  });
});
