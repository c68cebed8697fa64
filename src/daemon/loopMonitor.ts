import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

/** Event-loop delay over the last complete window, ms. */
export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
  /** length of the window these figures cover, ms */
  windowMs: number;
}

/**
 * Samples the event loop's delay (lateness of a 10 ms timer) and keeps the figures of the
 * last complete window, so status and metrics show how responsive the daemon was lately, not since start.
 */
export class LoopMonitor {
  readonly #histogram: IntervalHistogram;
  readonly #timer: NodeJS.Timeout;
  #last: LoopDelay;

  constructor(readonly windowMs = 10_000) {
    this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#histogram.enable();
    this.#last = { p50: 0, p99: 0, max: 0, windowMs };
    this.#timer = setInterval(() => this.#roll(), windowMs);
    this.#timer.unref();
  }

  /** The last complete window (zeros before the first one ends). */
  get delay(): LoopDelay {
    return this.#last;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#histogram.disable();
  }

  #roll() {
    const h = this.#histogram;
    // Each sample is the time between two ticks of a 10 ms timer: the lateness is what exceeds 10 ms.
    const ms = (ns: number) => Math.max(0, Math.round((ns - RESOLUTION_MS * 1e6) / 1e4) / 100);
    // An empty histogram reports its bounds (9e18): no sample, no delay.
    this.#last =
      h.count === 0
        ? { p50: 0, p99: 0, max: 0, windowMs: this.windowMs }
        : { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), windowMs: this.windowMs };
    h.reset();
  }
}

/** Handles and requests keeping the loop alive (sockets, timers, files), by type. */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}
