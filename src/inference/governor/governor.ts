import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/logger.js';
import type { MemoryProbe } from './memoryProbe.js';
import {
  computeBudget,
  type Decision,
  type PlannerOptions,
  type PlannerState,
  plan,
  type VariantOption,
} from './planner.js';

/** Bounds of a learned correction (observed RSS / estimate): one odd reading cannot blow a model up or away. */
const CORRECTION_MIN = 0.5;
const CORRECTION_MAX = 3;
/** How many decisions status() reports. */
const DECISION_HISTORY = 20;

export interface MemoryGovernorOptions {
  /** Where memory readings come from (systemMemoryProbe() in the daemon, a fake in tests). */
  probe: MemoryProbe;
  /** Time source: `monotonic()` for holds and cooldowns, `now()` for the timestamps in status(). */
  clock: Clock;
  /** Non-keep decisions are logged at info, with their numbers; kills at warn. */
  logger: Logger;
  /** The variants on offer with their uncorrected estimates, read at every decision. */
  variants: () => VariantOption[];
  /**
   * Planner tuning (margin, holdMs, pressureHighPercent, killedCooldownMs; see PlannerOptions), plus
   * `capBytes`: configured upper bound for the model, bytes (undefined = none), and
   * `reserveBytes`: bytes of MemAvailable left to the rest of the machine.
   */
  options: PlannerOptions & { capBytes?: number; reserveBytes: number };
  /** RSS of the daemon itself, bytes. Default process.memoryUsage.rss(). */
  selfRss?: () => number;
  /** RSS of the inference worker now, bytes; undefined when there is none. Default: always undefined. */
  workerRss?: () => number | undefined;
}

interface HistoryEntry extends Decision {
  /** When the decision was made, ISO 8601. */
  at: string;
}

/**
 * Decides which model configuration the inference worker holds, between jobs, from the memory budget.
 * A thin stateful shell over computeBudget() and plan(): it samples, remembers the current configuration,
 * the learned corrections, the step-up timer and OOM kills, and logs. decide() assumes the caller carries
 * out its decision (load, switch, unload); recordLoaded() and recordKilled() report what really happened.
 */
export class MemoryGovernor {
  readonly #probe: MemoryProbe;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #variants: () => VariantOption[];
  readonly #options: MemoryGovernorOptions['options'];
  readonly #selfRss: () => number;
  readonly #workerRss: () => number | undefined;
  readonly #state: PlannerState = { corrections: {}, killed: [] };
  readonly #history: HistoryEntry[] = [];

  constructor(options: MemoryGovernorOptions) {
    this.#probe = options.probe;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#variants = options.variants;
    this.#options = options.options;
    this.#selfRss = options.selfRss ?? (() => process.memoryUsage.rss());
    this.#workerRss = options.workerRss ?? (() => undefined);
  }

  /** The configuration the governor believes is loaded. */
  get current(): { id: string; contextSize: number } | undefined {
    return this.#state.current ? { ...this.#state.current } : undefined;
  }

  #budget() {
    const sample = this.#probe.sample();
    const workerRss = this.#workerRss();
    const budget = computeBudget(sample, {
      capBytes: this.#options.capBytes,
      reserveBytes: this.#options.reserveBytes,
      selfRssBytes: this.#selfRss(),
      ...(workerRss !== undefined ? { currentWorkerRssBytes: workerRss } : {}),
    });
    return { sample, workerRss, ...budget };
  }

  /** What the worker should hold now; call between jobs, and carry out load/switch/unload. */
  decide(): Decision {
    const now = this.#clock.monotonic();
    const { sample, workerRss, budgetBytes, limitedBy } = this.#budget();
    this.#state.killed = this.#state.killed.filter((k) => now - k.at < this.#options.killedCooldownMs);
    const result = plan(
      this.#variants(),
      this.#state,
      {
        budgetBytes,
        now,
        ...(sample.pressureSome10 !== undefined ? { pressureSome10: sample.pressureSome10 } : {}),
      },
      this.#options,
    );
    const { decision } = result;
    this.#state.upSince = result.upSince;
    if ((decision.action === 'load' || decision.action === 'switch') && decision.target) {
      this.#state.current = { id: decision.target.id, contextSize: decision.target.contextSize };
    } else if (decision.action === 'unload') {
      this.#state.current = undefined;
    }
    this.#remember(decision);
    if (decision.action !== 'keep') {
      this.#logger.info(
        {
          governor: {
            action: decision.action,
            target: decision.target,
            budgetBytes,
            limitedBy,
            memAvailable: sample.memAvailable,
            cgroupLimit: sample.cgroupLimit,
            pressureSome10: sample.pressureSome10,
            workerRss,
            considered: decision.considered,
          },
        },
        `memory governor: ${decision.action}: ${decision.reason}`,
      );
    }
    return decision;
  }

  /** Consecutive keeps collapse into the latest one, so the history shows the changes. */
  #remember(decision: Decision): void {
    const entry = { at: new Date(this.#clock.now()).toISOString(), ...decision };
    const last = this.#history.at(-1);
    if (decision.action === 'keep' && last?.action === 'keep') this.#history.pop();
    this.#history.push(entry);
    if (this.#history.length > DECISION_HISTORY) this.#history.shift();
  }

  /**
   * The worker has loaded `id` at `contextSize` and its RSS is `observedRssBytes`. The variant's correction
   * becomes observed / uncorrected estimate, bounded to [CORRECTION_MIN, CORRECTION_MAX]. The uncorrected
   * estimate is taken from variants(); where the configuration is no longer offered, `estimatedBytes` is
   * taken as the estimate the decision carried (correction included).
   */
  recordLoaded(id: string, contextSize: number, estimatedBytes: number, observedRssBytes: number): void {
    this.#state.current = { id, contextSize };
    const raw = this.#variants()
      .find((v) => v.id === id)
      ?.estimates.find((e) => e.contextSize === contextSize)?.bytes;
    const previous = this.#state.corrections[id] ?? 1;
    const base = raw ?? estimatedBytes / previous;
    if (!(base > 0) || !(observedRssBytes > 0) || !Number.isFinite(observedRssBytes)) {
      this.#logger.warn(
        { id, contextSize, estimatedBytes, observedRssBytes },
        'memory governor: unusable RSS reading',
      );
      return;
    }
    const correction = Math.min(CORRECTION_MAX, Math.max(CORRECTION_MIN, observedRssBytes / base));
    this.#state.corrections[id] = correction;
    this.#logger.info(
      { governor: { id, contextSize, estimatedBytes, observedRssBytes, previous, correction } },
      `memory governor: loaded ${id}@${contextSize}, RSS ${observedRssBytes} B vs estimate ${estimatedBytes} B; correction ${correction.toFixed(3)}`,
    );
  }

  /** The model is gone for another reason than memory (worker crash, explicit unload): nothing is resident. */
  recordUnloaded(): void {
    this.#state.current = undefined;
    this.#state.upSince = undefined;
  }

  /**
   * The worker was OOM-killed holding `id` at `contextSize`: nothing is loaded any more, and that
   * configuration (and anything as large) is avoided for killedCooldownMs, so the next decide() steps down.
   */
  recordKilled(id: string, contextSize: number): void {
    this.#state.killed.push({ id, contextSize, at: this.#clock.monotonic() });
    this.#state.current = undefined;
    this.#state.upSince = undefined;
    this.#logger.warn(
      { governor: { id, contextSize, cooldownMs: this.#options.killedCooldownMs } },
      `memory governor: worker OOM-killed with ${id}@${contextSize}; avoiding it for ${this.#options.killedCooldownMs} ms`,
    );
  }

  /** A plain object for /api/status: the budget now, what is loaded, what was learned and decided. */
  status(): Record<string, unknown> {
    const now = this.#clock.monotonic();
    const { sample, workerRss, budgetBytes, limitedBy } = this.#budget();
    return {
      budgetBytes,
      limitedBy,
      memAvailableBytes: sample.memAvailable,
      totalBytes: sample.total,
      cgroupLimitBytes: sample.cgroupLimit ?? null,
      cgroupUsageBytes: sample.cgroupUsage ?? null,
      pressureSome10: sample.pressureSome10 ?? null,
      workerRssBytes: workerRss ?? null,
      current: this.current ?? null,
      corrections: { ...this.#state.corrections },
      stepUpHeldMs: this.#state.upSince === undefined ? null : now - this.#state.upSince,
      killed: this.#state.killed
        .filter((k) => now - k.at < this.#options.killedCooldownMs)
        .map((k) => ({
          id: k.id,
          contextSize: k.contextSize,
          avoidedForMs: this.#options.killedCooldownMs - (now - k.at),
        })),
      decisions: this.#history.map((entry) => ({ ...entry })),
    };
  }
}
