import type { MemorySample } from './memoryProbe.js';

/**
 * The memory planner: pure functions from a memory sample and the offered variants to a decision.
 *
 * Rules:
 * - Budget: the smallest of the configured cap, the cgroup limit minus the daemon's own RSS, and
 *   `MemAvailable` minus the reserve plus the current worker's RSS (MemAvailable leaves out what the resident
 *   model already holds, which is the model's to keep). See {@link computeBudget}.
 * - Configurations are ordered by preference: larger rank first, then larger context. Each estimate is
 *   multiplied by the variant's learned correction. A configuration *fits* when its corrected estimate is at
 *   most `budget × (1 − margin)` and it is not avoided after an OOM kill.
 * - Nothing loaded: load the most preferred fitting configuration at once (jobs are waiting), unless memory
 *   is under pressure.
 * - Loaded: the current configuration is kept while its corrected estimate is within the whole budget (the
 *   margin only applies to new choices, so a small dip does not flap). When it no longer is, step down at
 *   once to the most preferred fitting one; with the preference order that means a smaller context of the
 *   same variant before a smaller variant.
 * - Under pressure (PSI `some avg10` at or above the threshold): step down at once to the next fitting
 *   configuration after the current one that is also smaller in bytes, or unload when there is none; never
 *   load or step up.
 * - Step up: only when a more preferred configuration has fitted (with the margin) continuously for
 *   `holdMs`; any decision where it does not resets the timer (`upSince`).
 * - After an OOM kill, the killed configuration and every configuration whose corrected estimate is at least
 *   as large are avoided for `killedCooldownMs`.
 * - Nothing fits: unload (or stay unloaded); jobs wait.
 */

/** One model variant the governor may load, with its estimates. */
/** Share of the budget kept free when a configuration is chosen (the daemon's and `outpost doctor`'s). */
export const GOVERNOR_MARGIN = 0.1;

export interface VariantOption {
  /** Catalog name or file path. */
  id: string;
  /** Larger rank = larger model. */
  rank: number;
  /** Estimated resident bytes (model + context) at each offered context size, before correction. */
  estimates: { contextSize: number; bytes: number }[];
}

/** What the planner remembers between decisions (kept by the governor). */
export interface PlannerState {
  /** The configuration loaded now; undefined when nothing is loaded. */
  current?: { id: string; contextSize: number };
  /** Learned multiplicative correction per variant (observed RSS / estimate); missing = 1. */
  corrections: Record<string, number>;
  /** Since when (ms, same clock as `now`) the budget has allowed a step up, if it does. */
  upSince?: number;
  /** Configurations that were OOM-killed, with when (ms, same clock as `now`). */
  killed: { id: string; contextSize: number; at: number }[];
}

/** Tuning of the planner. */
export interface PlannerOptions {
  /** Fraction of the budget kept free when choosing a configuration to load (e.g. 0.1 = 10 %). */
  margin: number;
  /** How long a step up must stay possible before it is taken, ms. */
  holdMs: number;
  /** PSI memory `some avg10` (percent) at or above which the planner steps down. */
  pressureHighPercent: number;
  /** How long an OOM-killed configuration (and anything as large) is avoided, ms. */
  killedCooldownMs: number;
}

/** A planner decision with the numbers behind it (for the log and /api/status). */
export type Decision = {
  /** keep: nothing to do; load: nothing loaded, load target; switch: replace current by target; unload. */
  action: 'keep' | 'load' | 'switch' | 'unload';
  /** The configuration to load (load, switch) or kept (keep while loaded), with its corrected estimate. */
  target?: { id: string; contextSize: number; estimatedBytes: number };
  /** Why, in words, with the deciding numbers. */
  reason: string;
  /** The budget the decision was made against, bytes. */
  budgetBytes: number;
  /** Every configuration in preference order, with its corrected estimate and whether it fits. */
  considered: { id: string; contextSize: number; estimatedBytes: number; fits: boolean }[];
};

export interface BudgetOptions {
  /** Configured upper bound for the model, bytes; undefined = no cap. */
  capBytes?: number;
  /** Bytes of `MemAvailable` left to the rest of the machine. */
  reserveBytes: number;
  /** RSS of the daemon itself, bytes (subtracted from the cgroup limit, which it shares with the worker). */
  selfRssBytes: number;
  /** RSS of the inference worker now, bytes; counted as available to the model. Undefined = no worker. */
  currentWorkerRssBytes?: number;
}

/**
 * The bytes the resident model may use:
 * - `cap`: `capBytes`, when configured;
 * - `cgroup`: `cgroupLimit − selfRssBytes`, when in a limited cgroup v2 (the worker is a child process in
 *   the same cgroup, so all the limit except the daemon's own share is the model's);
 * - `available`: `memAvailable + currentWorkerRssBytes − reserveBytes` (the worker's RSS is counted back:
 *   the model it holds would be freed by a switch).
 *
 * The smallest wins (ties: cap, then cgroup, then available); never below 0.
 */
export function computeBudget(
  sample: MemorySample,
  options: BudgetOptions,
): { budgetBytes: number; limitedBy: 'cap' | 'cgroup' | 'available' } {
  let budgetBytes = sample.memAvailable + (options.currentWorkerRssBytes ?? 0) - options.reserveBytes;
  let limitedBy: 'cap' | 'cgroup' | 'available' = 'available';
  if (sample.cgroupLimit !== undefined) {
    const cgroup = sample.cgroupLimit - options.selfRssBytes;
    if (cgroup <= budgetBytes) {
      budgetBytes = cgroup;
      limitedBy = 'cgroup';
    }
  }
  if (options.capBytes !== undefined && options.capBytes <= budgetBytes) {
    budgetBytes = options.capBytes;
    limitedBy = 'cap';
  }
  return { budgetBytes: Math.max(0, Math.floor(budgetBytes)), limitedBy };
}

interface Candidate {
  id: string;
  contextSize: number;
  estimatedBytes: number;
  fits: boolean;
}

/** Bytes as MiB for reasons. */
function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)} MiB`;
}

function label(c: { id: string; contextSize: number }): string {
  return `${c.id}@${c.contextSize}`;
}

function correctionOf(corrections: Record<string, number>, id: string): number {
  const value = corrections[id];
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : 1;
}

/** All configurations in preference order (rank, then context, descending) with corrected estimates. */
function candidates(
  variants: readonly VariantOption[],
  corrections: Record<string, number>,
): Omit<Candidate, 'fits'>[] {
  const sorted = variants
    .map((variant, index) => ({ variant, index }))
    .sort((a, b) => b.variant.rank - a.variant.rank || a.index - b.index);
  return sorted.flatMap(({ variant }) => {
    const correction = correctionOf(corrections, variant.id);
    return [...variant.estimates]
      .sort((a, b) => b.contextSize - a.contextSize)
      .map((e) => ({
        id: variant.id,
        contextSize: e.contextSize,
        estimatedBytes: Math.ceil(e.bytes * correction),
      }));
  });
}

function same(a: { id: string; contextSize: number }, b: { id: string; contextSize: number }): boolean {
  return a.id === b.id && a.contextSize === b.contextSize;
}

/**
 * Decides what the worker should hold now; call between jobs. Returns the decision and the new `upSince`
 * (undefined = no step up pending). Rules: see the module comment above.
 */
export function plan(
  variants: readonly VariantOption[],
  state: PlannerState,
  input: { budgetBytes: number; pressureSome10?: number; now: number },
  options: PlannerOptions,
): { decision: Decision; upSince?: number } {
  const { budgetBytes, now } = input;
  const usable = budgetBytes * (1 - options.margin);
  const base = candidates(variants, state.corrections);

  // OOM kills in their cooldown: the killed configuration and anything as large are avoided.
  const activeKills = state.killed.filter((k) => now - k.at < options.killedCooldownMs);
  const ceilings = activeKills.map((k) => ({
    kill: k,
    bytes: base.find((c) => same(c, k))?.estimatedBytes,
  }));
  const avoidedBy = (c: Omit<Candidate, 'fits'>) =>
    ceilings.find((k) => same(c, k.kill) || (k.bytes !== undefined && c.estimatedBytes >= k.bytes))?.kill;

  const considered: Candidate[] = base.map((c) => ({
    ...c,
    fits: c.estimatedBytes <= usable && avoidedBy(c) === undefined,
  }));
  const best = considered.find((c) => c.fits);
  const smallest = considered.reduce<Candidate | undefined>(
    (min, c) => (min === undefined || c.estimatedBytes < min.estimatedBytes ? c : min),
    undefined,
  );

  const target = (c: Candidate) => ({
    id: c.id,
    contextSize: c.contextSize,
    estimatedBytes: c.estimatedBytes,
  });
  const decide = (action: Decision['action'], reason: string, chosen?: Candidate, upSince?: number) => ({
    decision: {
      action,
      ...(chosen ? { target: target(chosen) } : {}),
      reason,
      budgetBytes,
      considered: considered.map((c) => ({ ...c })),
    },
    ...(upSince !== undefined ? { upSince } : {}),
  });
  const within = `budget ${mib(budgetBytes)}, usable with ${Math.round(options.margin * 100)}% margin ${mib(usable)}`;
  const nothingFits = () => {
    const avoided = activeKills.length > 0 ? `; avoiding ${activeKills.map(label).join(', ')} after OOM` : '';
    return smallest === undefined
      ? 'no variant offered'
      : `nothing fits (${within}; smallest ${label(smallest)} needs ${mib(smallest.estimatedBytes)}${avoided}); jobs wait`;
  };

  const pressure = input.pressureSome10;
  const pressured = pressure !== undefined && pressure >= options.pressureHighPercent;
  const pressureText = `memory pressure ${pressure}% ≥ ${options.pressureHighPercent}%`;

  // Nothing loaded.
  if (state.current === undefined) {
    if (pressured) return decide('keep', `${pressureText}: not loading`);
    if (best === undefined) return decide('keep', nothingFits());
    return decide('load', `load ${label(best)} (${mib(best.estimatedBytes)}; ${within})`, best);
  }

  const current = state.current;
  const position = considered.findIndex((c) => same(c, current));
  const loaded = considered[position];
  if (loaded === undefined) {
    if (pressured) return decide('unload', `${label(current)} no longer offered; ${pressureText}`);
    if (best === undefined) return decide('unload', `${label(current)} no longer offered; ${nothingFits()}`);
    return decide(
      'switch',
      `${label(current)} no longer offered; switch to ${label(best)} (${within})`,
      best,
    );
  }

  // Pressure: one step down at once, whatever the estimates say.
  if (pressured) {
    const down = considered.find(
      (c, i) => i > position && c.fits && c.estimatedBytes < loaded.estimatedBytes,
    );
    if (down === undefined) {
      return decide(
        'unload',
        `${pressureText}: nothing smaller than ${label(loaded)} fits; unload, jobs wait`,
      );
    }
    return decide(
      'switch',
      `${pressureText}: step down from ${label(loaded)} (${mib(loaded.estimatedBytes)}) to ${label(down)} (${mib(down.estimatedBytes)})`,
      down,
    );
  }

  // The current configuration no longer fits the whole budget (or was OOM-killed): step down at once.
  const killedBy = avoidedBy(loaded);
  if (loaded.estimatedBytes > budgetBytes || killedBy !== undefined) {
    const why =
      killedBy !== undefined
        ? `${label(loaded)} avoided after the OOM kill of ${label(killedBy)}`
        : `${label(loaded)} needs ${mib(loaded.estimatedBytes)} > budget ${mib(budgetBytes)}`;
    if (best === undefined) return decide('unload', `${why}; ${nothingFits()}`);
    return decide(
      'switch',
      `${why}; step down to ${label(best)} (${mib(best.estimatedBytes)}; ${within})`,
      best,
    );
  }

  // The current configuration holds. A more preferred one fitting with the margin must hold for holdMs.
  if (best !== undefined && considered.indexOf(best) < position) {
    const since = state.upSince ?? now;
    const held = now - since;
    if (held >= options.holdMs) {
      return decide(
        'switch',
        `step up from ${label(loaded)} to ${label(best)} (${mib(best.estimatedBytes)}; ${within}; held ${held} ms ≥ ${options.holdMs} ms)`,
        best,
      );
    }
    return decide(
      'keep',
      `${label(loaded)} kept; step up to ${label(best)} possible for ${held} of ${options.holdMs} ms (${within})`,
      loaded,
      since,
    );
  }
  return decide('keep', `${label(loaded)} fits (${mib(loaded.estimatedBytes)}; ${within})`, loaded);
}
