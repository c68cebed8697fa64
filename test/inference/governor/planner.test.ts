import { describe, expect, it } from 'vitest';
import {
  computeBudget,
  type PlannerOptions,
  type PlannerState,
  plan,
  type VariantOption,
} from '../../../src/inference/governor/planner.js';

const MiB = 1024 * 1024;

/** Two variants, contexts offered largest first (estimates in MiB). */
const variants: VariantOption[] = [
  {
    id: 'e2b',
    rank: 1,
    estimates: [
      { contextSize: 32768, bytes: 3500 * MiB },
      { contextSize: 8192, bytes: 2600 * MiB },
      { contextSize: 2048, bytes: 2200 * MiB },
    ],
  },
  {
    id: 'e4b',
    rank: 2,
    estimates: [
      { contextSize: 32768, bytes: 6000 * MiB },
      { contextSize: 8192, bytes: 5000 * MiB },
      { contextSize: 2048, bytes: 4500 * MiB },
    ],
  },
];

const options: PlannerOptions = {
  margin: 0.1,
  holdMs: 60_000,
  pressureHighPercent: 10,
  killedCooldownMs: 600_000,
};

function state(partial: Partial<PlannerState> = {}): PlannerState {
  return { corrections: {}, killed: [], ...partial };
}

const at = (id: string, contextSize: number) => ({ id, contextSize });

describe('plan', () => {
  it('loads the largest variant and context that fits with the margin', () => {
    const big = plan(variants, state(), { budgetBytes: 10_000 * MiB, now: 0 }, options).decision;
    expect(big.action).toBe('load');
    expect(big.target).toEqual({ id: 'e4b', contextSize: 32768, estimatedBytes: 6000 * MiB });

    // 6000 MiB budget, 5400 usable: e4b@32k (6000) no, e4b@8k (5000) yes.
    const mid = plan(variants, state(), { budgetBytes: 6000 * MiB, now: 0 }, options).decision;
    expect(mid.target).toMatchObject({ id: 'e4b', contextSize: 8192 });

    // 4000 usable 3600: only e2b, at its largest context.
    const small = plan(variants, state(), { budgetBytes: 4000 * MiB, now: 0 }, options).decision;
    expect(small.target).toMatchObject({ id: 'e2b', contextSize: 32768 });
  });

  it('carries its numbers: budget, every configuration in preference order with corrected estimates', () => {
    const { decision } = plan(
      variants,
      state({ corrections: { e2b: 1.1 } }),
      { budgetBytes: 6000 * MiB, now: 0 },
      options,
    );
    expect(decision.budgetBytes).toBe(6000 * MiB);
    expect(decision.target?.estimatedBytes).toBe(5000 * MiB);
    expect(decision.considered).toEqual([
      { id: 'e4b', contextSize: 32768, estimatedBytes: 6000 * MiB, fits: false },
      { id: 'e4b', contextSize: 8192, estimatedBytes: 5000 * MiB, fits: true },
      { id: 'e4b', contextSize: 2048, estimatedBytes: 4500 * MiB, fits: true },
      { id: 'e2b', contextSize: 32768, estimatedBytes: Math.ceil(3500 * MiB * 1.1), fits: true },
      { id: 'e2b', contextSize: 8192, estimatedBytes: Math.ceil(2600 * MiB * 1.1), fits: true },
      { id: 'e2b', contextSize: 2048, estimatedBytes: Math.ceil(2200 * MiB * 1.1), fits: true },
    ]);
    expect(decision.reason).toContain('e4b@8192');
    expect(decision.reason).toContain('6000 MiB');
  });

  it('steps down at once when the budget drops: the context first, then the smaller variant', () => {
    const first = plan(
      variants,
      state({ current: at('e4b', 32768) }),
      { budgetBytes: 5600 * MiB, now: 0 },
      options,
    );
    expect(first.decision.action).toBe('switch');
    expect(first.decision.target).toMatchObject({ id: 'e4b', contextSize: 8192 });
    expect(first.decision.reason).toMatch(/step down/);

    const second = plan(
      variants,
      state({ current: at('e4b', 8192) }),
      { budgetBytes: 4000 * MiB, now: 0 },
      options,
    );
    expect(second.decision.action).toBe('switch');
    expect(second.decision.target).toMatchObject({ id: 'e2b', contextSize: 32768 });
  });

  it('keeps the current configuration while it fits the whole budget, even inside the margin', () => {
    // e4b@32k needs 6000; budget 6200 (usable 5580): kept, not switched down.
    const { decision, upSince } = plan(
      variants,
      state({ current: at('e4b', 32768) }),
      { budgetBytes: 6200 * MiB, now: 0 },
      options,
    );
    expect(decision.action).toBe('keep');
    expect(decision.target).toMatchObject({ id: 'e4b', contextSize: 32768 });
    expect(upSince).toBeUndefined();
  });

  it('steps up only after the larger configuration has fitted for holdMs, and the timer resets on a dip', () => {
    const current = at('e2b', 32768);
    const high = { budgetBytes: 10_000 * MiB };

    const t0 = plan(variants, state({ current }), { ...high, now: 1000 }, options);
    expect(t0.decision.action).toBe('keep');
    expect(t0.upSince).toBe(1000);
    expect(t0.decision.reason).toMatch(/step up to e4b@32768 possible/);

    const before = plan(variants, state({ current, upSince: t0.upSince }), { ...high, now: 60_999 }, options);
    expect(before.decision.action).toBe('keep');
    expect(before.upSince).toBe(1000);

    // The budget dips: no step up possible, the timer resets.
    const dip = plan(
      variants,
      state({ current, upSince: before.upSince }),
      { budgetBytes: 4000 * MiB, now: 30_000 },
      options,
    );
    expect(dip.decision.action).toBe('keep');
    expect(dip.upSince).toBeUndefined();

    const again = plan(variants, state({ current, upSince: dip.upSince }), { ...high, now: 40_000 }, options);
    expect(again.upSince).toBe(40_000);
    const notYet = plan(
      variants,
      state({ current, upSince: again.upSince }),
      { ...high, now: 99_999 },
      options,
    );
    expect(notYet.decision.action).toBe('keep');

    const held = plan(
      variants,
      state({ current, upSince: notYet.upSince }),
      { ...high, now: 100_000 },
      options,
    );
    expect(held.decision.action).toBe('switch');
    expect(held.decision.target).toMatchObject({ id: 'e4b', contextSize: 32768 });
    expect(held.upSince).toBeUndefined();
  });

  it('does not count a budget that fits a step up only without the margin', () => {
    // e4b@2k needs 4500; budget 4900 fits it whole but not with 10% kept free (4410).
    const { decision, upSince } = plan(
      variants,
      state({ current: at('e2b', 32768) }),
      { budgetBytes: 4900 * MiB, now: 0 },
      options,
    );
    expect(decision.action).toBe('keep');
    expect(upSince).toBeUndefined();
  });

  it('steps down under memory pressure even though the estimates fit, and never loads or steps up', () => {
    const input = { budgetBytes: 20_000 * MiB, pressureSome10: 12.5, now: 0 };
    const down = plan(variants, state({ current: at('e4b', 32768) }), input, options).decision;
    expect(down.action).toBe('switch');
    expect(down.target).toMatchObject({ id: 'e4b', contextSize: 8192 });
    expect(down.reason).toContain('12.5%');

    const model = plan(variants, state({ current: at('e4b', 2048) }), input, options).decision;
    expect(model.target).toMatchObject({ id: 'e2b', contextSize: 32768 });

    const last = plan(variants, state({ current: at('e2b', 2048) }), input, options).decision;
    expect(last.action).toBe('unload');

    const empty = plan(variants, state(), input, options);
    expect(empty.decision.action).toBe('keep');
    expect(empty.decision.target).toBeUndefined();

    const pending = plan(
      variants,
      state({ current: at('e2b', 32768), upSince: 0 }),
      { ...input, now: 70_000 },
      options,
    );
    expect(pending.decision.action).toBe('switch');
    expect(pending.decision.target).toMatchObject({ id: 'e2b', contextSize: 8192 });
    expect(pending.upSince).toBeUndefined();

    // Below the threshold: no effect.
    const calm = plan(variants, state(), { ...input, pressureSome10: 9.99 }, options).decision;
    expect(calm.action).toBe('load');
  });

  it('unloads when the budget is below every variant, and stays unloaded', () => {
    const unload = plan(
      variants,
      state({ current: at('e2b', 2048) }),
      { budgetBytes: 2000 * MiB, now: 0 },
      options,
    ).decision;
    expect(unload.action).toBe('unload');
    expect(unload.target).toBeUndefined();
    expect(unload.reason).toMatch(/jobs wait/);
    expect(unload.considered.every((c) => !c.fits)).toBe(true);

    const idle = plan(variants, state(), { budgetBytes: 2000 * MiB, now: 0 }, options).decision;
    expect(idle.action).toBe('keep');
    expect(idle.target).toBeUndefined();
    expect(idle.reason).toContain('2200 MiB');
  });

  it('avoids an OOM-killed configuration, and anything as large, until the cooldown is over', () => {
    const killed = [{ id: 'e4b', contextSize: 32768, at: 1000 }];
    const input = { budgetBytes: 20_000 * MiB };

    const during = plan(variants, state({ killed }), { ...input, now: 1000 + 599_999 }, options).decision;
    expect(during.action).toBe('load');
    expect(during.target).toMatchObject({ id: 'e4b', contextSize: 8192 });
    expect(during.considered[0]).toMatchObject({ id: 'e4b', contextSize: 32768, fits: false });

    // No step up into the killed configuration either.
    const held = plan(
      variants,
      state({ killed, current: at('e4b', 8192), upSince: 0 }),
      { ...input, now: 500_000 },
      options,
    ).decision;
    expect(held.action).toBe('keep');

    const after = plan(variants, state({ killed }), { ...input, now: 1000 + 600_000 }, options).decision;
    expect(after.target).toMatchObject({ id: 'e4b', contextSize: 32768 });

    // A smaller killed configuration also rules out larger ones.
    const small = plan(
      variants,
      state({ killed: [{ id: 'e2b', contextSize: 32768, at: 0 }] }),
      { ...input, now: 10 },
      options,
    ).decision;
    expect(small.target).toMatchObject({ id: 'e2b', contextSize: 8192 });
  });

  it('applies learned corrections to the estimates', () => {
    const input = { budgetBytes: 8000 * MiB, now: 0 };
    expect(plan(variants, state(), input, options).decision.target).toMatchObject({
      id: 'e4b',
      contextSize: 32768,
    });
    // e4b really takes 1.5x: 32k = 9000, 8k = 7500, 2k = 6750 against 7200 usable.
    const corrected = plan(variants, state({ corrections: { e4b: 1.5 } }), input, options).decision;
    expect(corrected.target).toEqual({ id: 'e4b', contextSize: 2048, estimatedBytes: 6750 * MiB });

    // A current configuration that turns out larger than the budget is stepped down from.
    const current = plan(
      variants,
      state({ current: at('e4b', 32768), corrections: { e4b: 1.5 } }),
      input,
      options,
    ).decision;
    expect(current.action).toBe('switch');
    expect(current.target).toMatchObject({ id: 'e4b', contextSize: 2048 });
  });

  it('switches away from a configuration no longer offered', () => {
    const { decision } = plan(
      variants,
      state({ current: at('gone', 4096) }),
      { budgetBytes: 4000 * MiB, now: 0 },
      options,
    );
    expect(decision.action).toBe('switch');
    expect(decision.target).toMatchObject({ id: 'e2b', contextSize: 32768 });
  });
});

describe('computeBudget', () => {
  const GiB = 1024 * MiB;

  it('is MemAvailable minus the reserve, with the worker RSS counted back', () => {
    expect(
      computeBudget(
        { memAvailable: 6 * GiB, total: 16 * GiB },
        { reserveBytes: 1 * GiB, selfRssBytes: 200 * MiB },
      ),
    ).toEqual({ budgetBytes: 5 * GiB, limitedBy: 'available' });
    expect(
      computeBudget(
        { memAvailable: 2 * GiB, total: 16 * GiB },
        { reserveBytes: 1 * GiB, selfRssBytes: 200 * MiB, currentWorkerRssBytes: 4 * GiB },
      ),
    ).toEqual({ budgetBytes: 5 * GiB, limitedBy: 'available' });
  });

  it('is the cgroup limit minus the daemon RSS when that is smaller', () => {
    expect(
      computeBudget(
        { memAvailable: 12 * GiB, total: 16 * GiB, cgroupLimit: 4 * GiB, cgroupUsage: 1 * GiB },
        { reserveBytes: 1 * GiB, selfRssBytes: 512 * MiB, currentWorkerRssBytes: 1 * GiB },
      ),
    ).toEqual({ budgetBytes: 3.5 * GiB, limitedBy: 'cgroup' });
  });

  it('is the configured cap when that is smallest', () => {
    expect(
      computeBudget(
        { memAvailable: 12 * GiB, total: 16 * GiB, cgroupLimit: 8 * GiB },
        { capBytes: 3 * GiB, reserveBytes: 1 * GiB, selfRssBytes: 512 * MiB },
      ),
    ).toEqual({ budgetBytes: 3 * GiB, limitedBy: 'cap' });
  });

  it('never goes below zero', () => {
    expect(
      computeBudget({ memAvailable: 100 * MiB, total: 1 * GiB }, { reserveBytes: 1 * GiB, selfRssBytes: 0 }),
    ).toEqual({ budgetBytes: 0, limitedBy: 'available' });
  });
});
