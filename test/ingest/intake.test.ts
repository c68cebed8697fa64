import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/common/index.js';
import type { RouteConfig } from '../../src/config/index.js';
import { Intake, type IntakeOptions, type Rejection } from '../../src/ingest/index.js';
import { Store } from '../../src/store/index.js';
import { outboxLimits } from '../helpers/outbox.js';

const routes: RouteConfig[] = [{ name: 'metric', filter: 'sensors/+/+', kind: 'sensor', maxBytes: 100 }];

describe('Intake: commit before acknowledgement', () => {
  let store: Store;
  afterEach(() => store?.close());

  const open = (dataDir = mkdtempSync(join(tmpdir(), 'outpost-intake-'))) => {
    store = Store.open({ dataDir, outbox: outboxLimits() });
    return dataDir;
  };
  const intake = (extra: Partial<IntakeOptions> = {}) => {
    const rejects: Rejection[] = [];
    const commits: (Error | undefined)[] = [];
    const it = new Intake({
      routes,
      journal: store,
      rejects: { reject: (r) => rejects.push(r) },
      onCommit: (error) => commits.push(error),
      duplicateWindowMs: 600_000,
      clock: systemClock,
      ...extra,
    });
    return { it, rejects, commits };
  };
  const rows = () => store.pendingJournal(10_000, 0);
  const packet = (payload: string, dup = false) => ({
    topic: 'sensors/p/t',
    payload: Buffer.from(payload),
    dup,
  });

  it('acknowledges each message only after the transaction that holds it', () => {
    open();
    const { it: intakeOf, commits } = intake();
    const acked: number[] = [];
    for (let n = 0; n < 5; n++) {
      intakeOf.submit(packet(String(n)), () => acked.push(rows().length));
    }
    expect(acked).toEqual([]); // staged, not yet committed: nothing acknowledged
    intakeOf.flush();
    expect(acked).toEqual([5, 5, 5, 5, 5]); // one commit, then every acknowledgement
    expect(commits).toEqual([undefined]);
    expect(intakeOf.stats()).toMatchObject({ accepted: { metric: 5 }, commits: 1 });
  });

  it('commits on its own in the next turn of the event loop, and at once when the batch is full', async () => {
    open();
    const { it: intakeOf, commits } = intake({ maxBatch: 3 });
    for (let n = 0; n < 4; n++) intakeOf.submit(packet(String(n)));
    expect(rows()).toHaveLength(3); // the full batch went at once
    await new Promise((resolve) => setImmediate(resolve));
    expect(rows()).toHaveLength(4);
    expect(commits).toHaveLength(2);
  });

  it('ignores topics no route takes, and rejects oversize payloads inside the commit', () => {
    open();
    const { it: intakeOf, rejects } = intake();
    expect(intakeOf.submit({ topic: 'outpost/gw/status', payload: Buffer.from('online'), dup: false })).toBe(
      false,
    );
    const acks: (Error | undefined)[] = [];
    intakeOf.submit(packet('x'.repeat(101)), (e) => acks.push(e));
    intakeOf.flush();
    expect(acks).toEqual([undefined]); // rejected and recorded is handled: acknowledged
    expect(rejects).toEqual([expect.objectContaining({ code: 'too-large', size: 101, route: 'metric' })]);
    expect(rows()).toHaveLength(0);
  });

  it('recognises a redelivery (DUP) of a committed message, also after a restart, but keeps repeats', () => {
    const dataDir = open();
    const first = intake().it;
    first.submit(packet('21.5'));
    first.submit(packet('21.5')); // the same reading sent twice on purpose: both kept
    first.flush();
    expect(rows()).toHaveLength(2);
    first.submit(packet('21.5', true)); // the broker's redelivery of a committed message
    first.submit(packet('22.0', true)); // a redelivery of something never committed: taken
    first.flush();
    expect(rows()).toHaveLength(3);
    expect(first.stats().duplicates).toBe(1);

    store.close();
    open(dataDir);
    const second = intake().it; // remembers identities from the journal
    second.submit(packet('22.0', true));
    second.flush();
    expect(rows()).toHaveLength(3);
    expect(second.stats().duplicates).toBe(1);
  });

  it('recognises a redelivery that lands in the same batch as its original', () => {
    open();
    const it = intake().it;
    // A client that resends on reconnect what it had also queued: both copies in one socket read.
    it.submit(packet('23.5'));
    it.submit(packet('23.5', true));
    it.flush();
    expect(rows()).toHaveLength(1);
    expect(it.stats().duplicates).toBe(1);
  });

  it('acknowledges nothing of a batch whose commit fails, and takes its redelivery later', () => {
    open();
    let fail = true;
    const journal = {
      appendJournal: store.appendJournal.bind(store),
      recentDigests: store.recentDigests.bind(store),
      transaction: <T>(fn: () => T): T => {
        if (fail) throw new Error('disk I/O error');
        return store.transaction(fn);
      },
    };
    const { it: intakeOf, commits } = intake({ journal });
    const acks: (string | undefined)[] = [];
    intakeOf.submit(packet('1'), (e) => acks.push(e?.message));
    intakeOf.flush();
    expect(acks).toEqual(['disk I/O error']);
    expect(commits[0]?.message).toBe('disk I/O error');
    fail = false;
    intakeOf.submit(packet('1', true), (e) => acks.push(e?.message)); // the broker sends it again
    intakeOf.flush();
    expect(acks).toEqual(['disk I/O error', undefined]);
    expect(rows()).toHaveLength(1);
  });
});
