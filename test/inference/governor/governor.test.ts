import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type Clock, createLogger } from '../../../src/common/index.js';
import { MemoryGovernor } from '../../../src/inference/governor/governor.js';
import type { MemorySample } from '../../../src/inference/governor/memoryProbe.js';
import type { VariantOption } from '../../../src/inference/governor/planner.js';

const MiB = 1024 * 1024;

const variants: VariantOption[] = [
  {
    id: 'e4b',
    rank: 2,
    estimates: [
      { contextSize: 32768, bytes: 6000 * MiB },
      { contextSize: 8192, bytes: 5000 * MiB },
    ],
  },
  {
    id: 'e2b',
    rank: 1,
    estimates: [
      { contextSize: 32768, bytes: 3500 * MiB },
      { contextSize: 8192, bytes: 2600 * MiB },
    ],
  },
];

function fakeClock(): Clock & { advance(ms: number): void } {
  let t = 0;
  const timer = { cancel: () => {} };
  return {
    now: () => 1_700_000_000_000 + t,
    monotonic: () => t,
    setTimeout: () => timer,
    setInterval: () => timer,
    advance(ms) {
      t += ms;
    },
  };
}

function setup(initial: Partial<MemorySample> = {}) {
  const sample: MemorySample = { memAvailable: 20_000 * MiB, total: 32_000 * MiB, ...initial };
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      done();
    },
  });
  const clock = fakeClock();
  let workerRss: number | undefined;
  const governor = new MemoryGovernor({
    probe: { sample: () => ({ ...sample }) },
    clock,
    logger: createLogger({ level: 'info', format: 'json', destination }),
    variants: () => variants,
    options: {
      margin: 0.1,
      holdMs: 60_000,
      pressureHighPercent: 10,
      killedCooldownMs: 600_000,
      reserveBytes: 0,
    },
    selfRss: () => 100 * MiB,
    workerRss: () => workerRss,
  });
  return {
    governor,
    sample,
    lines,
    clock,
    setWorkerRss: (bytes: number | undefined) => {
      workerRss = bytes;
    },
  };
}

describe('MemoryGovernor', () => {
  it('loads the largest fitting configuration and logs the decision with its numbers', () => {
    const { governor, lines } = setup();
    const decision = governor.decide();
    expect(decision.action).toBe('load');
    expect(decision.target).toEqual({ id: 'e4b', contextSize: 32768, estimatedBytes: 6000 * MiB });
    expect(governor.current).toEqual({ id: 'e4b', contextSize: 32768 });

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      governor: {
        action: 'load',
        target: { id: 'e4b', contextSize: 32768, estimatedBytes: 6000 * MiB },
        budgetBytes: 20_000 * MiB,
        limitedBy: 'available',
        memAvailable: 20_000 * MiB,
      },
    });
    expect(String(lines[0]?.msg)).toContain('load');

    // Keeps are not logged.
    expect(governor.decide().action).toBe('keep');
    expect(lines).toHaveLength(1);
  });

  it('counts the worker RSS back into the budget, so the resident model is not evicted by itself', () => {
    const { governor, sample, setWorkerRss } = setup();
    governor.decide();
    // The model is resident: MemAvailable fell by what the worker holds.
    sample.memAvailable = 1000 * MiB;
    setWorkerRss(6000 * MiB);
    const decision = governor.decide();
    expect(decision.action).toBe('keep');
    expect(decision.budgetBytes).toBe(7000 * MiB);
  });

  it('uses the cgroup limit minus its own RSS, and reports it in status()', () => {
    const { governor, sample } = setup();
    sample.cgroupLimit = 4100 * MiB;
    sample.cgroupUsage = 300 * MiB;
    sample.pressureSome10 = 0.5;
    const decision = governor.decide();
    expect(decision.budgetBytes).toBe(4000 * MiB);
    expect(decision.target).toMatchObject({ id: 'e2b', contextSize: 32768 });
    expect(governor.status()).toMatchObject({
      budgetBytes: 4000 * MiB,
      limitedBy: 'cgroup',
      cgroupLimitBytes: 4100 * MiB,
      cgroupUsageBytes: 300 * MiB,
      pressureSome10: 0.5,
      current: { id: 'e2b', contextSize: 32768 },
    });
  });

  it('steps up only after the budget has held for holdMs on its monotonic clock', () => {
    const { governor, sample, clock } = setup({ memAvailable: 4000 * MiB });
    expect(governor.decide().target).toMatchObject({ id: 'e2b', contextSize: 32768 });
    sample.memAvailable = 20_000 * MiB;
    expect(governor.decide().action).toBe('keep');
    clock.advance(59_999);
    expect(governor.decide().action).toBe('keep');
    expect(governor.status().stepUpHeldMs).toBe(59_999);
    clock.advance(1);
    const up = governor.decide();
    expect(up.action).toBe('switch');
    expect(up.target).toMatchObject({ id: 'e4b', contextSize: 32768 });
    expect(governor.status().stepUpHeldMs).toBeNull();
  });

  it('steps down at once under pressure', () => {
    const { governor, sample } = setup();
    governor.decide();
    sample.pressureSome10 = 25;
    const down = governor.decide();
    expect(down.action).toBe('switch');
    expect(down.target).toMatchObject({ id: 'e4b', contextSize: 8192 });
  });

  it('learns a bounded correction from the observed RSS, which changes later choices', () => {
    const { governor, sample, lines } = setup({ memAvailable: 7000 * MiB });
    const first = governor.decide();
    expect(first.target).toMatchObject({ id: 'e4b', contextSize: 32768 });
    // The worker really holds 1.2x the estimate.
    governor.recordLoaded('e4b', 32768, 6000 * MiB, 7200 * MiB);
    expect(governor.status().corrections).toEqual({ e4b: 1.2 });
    expect(lines.at(-1)).toMatchObject({ governor: { correction: 1.2, observedRssBytes: 7200 * MiB } });

    // Same memory (the worker counted back): 7200 > 7000 budget, step down to e4b@8k (6000 ≤ 6300).
    sample.memAvailable = 7000 * MiB;
    const next = governor.decide();
    expect(next.action).toBe('switch');
    expect(next.target).toEqual({ id: 'e4b', contextSize: 8192, estimatedBytes: 6000 * MiB });

    // Learning again uses the uncorrected estimate: the factor does not compound.
    governor.recordLoaded('e4b', 8192, 6000 * MiB, 6000 * MiB);
    expect(governor.status().corrections).toEqual({ e4b: 1.2 });

    governor.recordLoaded('e2b', 32768, 3500 * MiB, 35_000 * MiB);
    governor.recordLoaded('e4b', 8192, 6000 * MiB, 100 * MiB);
    expect(governor.status().corrections).toEqual({ e2b: 3, e4b: 0.5 });
  });

  it('after an OOM kill, steps down and avoids the killed configuration until the cooldown', () => {
    const { governor, clock, lines } = setup();
    governor.decide();
    governor.recordKilled('e4b', 32768);
    expect(governor.current).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({ level: 40 });

    const after = governor.decide();
    expect(after.action).toBe('load');
    expect(after.target).toMatchObject({ id: 'e4b', contextSize: 8192 });
    expect(governor.status().killed).toEqual([{ id: 'e4b', contextSize: 32768, avoidedForMs: 600_000 }]);

    clock.advance(599_999);
    expect(governor.decide().action).toBe('keep');
    clock.advance(1);
    // Cooldown over: the step up now needs its hold.
    expect(governor.decide().action).toBe('keep');
    expect(governor.status().killed).toEqual([]);
    clock.advance(60_000);
    expect(governor.decide().target).toMatchObject({ id: 'e4b', contextSize: 32768 });
  });

  it('unloads when the budget falls below every variant', () => {
    const { governor, sample } = setup();
    governor.decide();
    sample.memAvailable = 1000 * MiB;
    const decision = governor.decide();
    expect(decision.action).toBe('unload');
    expect(governor.current).toBeUndefined();
    expect(governor.status().current).toBeNull();
  });

  it('keeps the last 20 decisions for status(), consecutive keeps collapsed', () => {
    const { governor, sample } = setup();
    for (let i = 0; i < 30; i++) {
      sample.memAvailable = i % 2 === 0 ? 20_000 * MiB : 1000 * MiB;
      governor.decide();
      governor.decide();
    }
    const decisions = governor.status().decisions as { action: string; at: string; budgetBytes: number }[];
    expect(decisions).toHaveLength(20);
    expect(decisions.map((d) => d.action).slice(-4)).toEqual(['load', 'keep', 'unload', 'keep']);
    expect(decisions[0]?.at).toBe(new Date(1_700_000_000_000).toISOString());
    expect(decisions.at(-1)?.budgetBytes).toBe(1000 * MiB);

    for (let i = 0; i < 5; i++) governor.decide();
    const after = governor.status().decisions as { action: string }[];
    expect(after).toHaveLength(20);
    expect(after.slice(-2).map((d) => d.action)).toEqual(['unload', 'keep']);
  });
});
