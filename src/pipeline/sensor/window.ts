/** Summary of one closed window of one series. */
export interface WindowStats {
  /** Series key the samples were added under. */
  series: string;
  /** epoch ms, inclusive */
  start: number;
  /** epoch ms, exclusive */
  end: number;
  /** Number of samples counted in the window (at least 1). */
  count: number;
  min: number;
  max: number;
  mean: number;
  /** population standard deviation */
  std: number;
}

/** Options of {@link WindowAggregator}. */
export interface WindowAggregatorOptions {
  /** Window length, ms; positive. Windows are aligned to multiples of it since the epoch. No default. */
  windowMs: number;
  /** How long after a window's end late samples are still accepted before it is closed by `closeDue`, ms; default 0 */
  graceMs?: number;
}

/** Running state of one series: O(1) whatever the number of samples. */
interface SeriesState {
  /** Open window, or null once `closeDue`/`closeAll` closed it and no newer sample has arrived. */
  open: OpenWindow | null;
  /**
   * End of the last window closed for this series. Samples before it are late: accepting them would open a
   * second window over a period that was already reported.
   */
  closedUntil: number;
}

interface OpenWindow {
  start: number;
  count: number;
  mean: number;
  /** Welford's sum of squared deviations from the running mean. */
  m2: number;
  min: number;
  max: number;
}

/**
 * Tumbling time windows per series, summarised with Welford's algorithm (numerically stable even for
 * large values with small variation, where sum-of-squares cancels catastrophically).
 *
 * Each series keeps one small record after its first sample (the close watermark), so memory grows with
 * the number of distinct series seen; open windows are bounded by the number of live series.
 */
export class WindowAggregator {
  readonly #windowMs: number;
  readonly #graceMs: number;
  readonly #series = new Map<string, SeriesState>();
  #openCount = 0;

  constructor(options: WindowAggregatorOptions) {
    const { windowMs, graceMs = 0 } = options;
    if (!Number.isFinite(windowMs) || windowMs <= 0) {
      throw new RangeError(`windowMs must be a positive finite number, got ${windowMs}`);
    }
    if (!Number.isFinite(graceMs) || graceMs < 0) {
      throw new RangeError(`graceMs must be a non-negative finite number, got ${graceMs}`);
    }
    this.#windowMs = windowMs;
    this.#graceMs = graceMs;
  }

  /** Adds a sample; returns windows of this series that this sample closed (a sample in a later window closes the open one). A sample older than the series' open window is late: returns { closed: [], late: true } and is not counted. */
  add(series: string, ts: number, value: number): { closed: WindowStats[]; late: boolean } {
    if (!Number.isFinite(ts) || !Number.isFinite(value)) {
      // A single NaN would poison the window's mean and std for good; callers must filter first.
      throw new RangeError(
        `sample of ${series} must have a finite ts and value, got ts=${ts} value=${value}`,
      );
    }
    // Math.floor (not truncation) keeps alignment right for pre-1970 timestamps too.
    const start = Math.floor(ts / this.#windowMs) * this.#windowMs;
    const state = this.#series.get(series);
    if (state === undefined) {
      this.#series.set(series, { open: newWindow(start, value), closedUntil: Number.NEGATIVE_INFINITY });
      this.#openCount++;
      return { closed: [], late: false };
    }
    if (ts < state.closedUntil) return { closed: [], late: true };

    const open = state.open;
    if (open === null) {
      state.open = newWindow(start, value);
      this.#openCount++;
      return { closed: [], late: false };
    }
    if (start < open.start) return { closed: [], late: true };
    if (start === open.start) {
      addTo(open, value);
      return { closed: [], late: false };
    }
    const closed = this.#close(series, state, open);
    state.open = newWindow(start, value);
    this.#openCount++;
    return { closed: [closed], late: false };
  }

  /** Closes and returns every open window with end + graceMs <= now (for series that went quiet). */
  closeDue(now: number): WindowStats[] {
    const out: WindowStats[] = [];
    for (const [series, state] of this.#series) {
      const open = state.open;
      if (open !== null && open.start + this.#windowMs + this.#graceMs <= now) {
        out.push(this.#close(series, state, open));
      }
    }
    return out;
  }

  /** Closes and returns all open windows (shutdown). */
  closeAll(): WindowStats[] {
    const out: WindowStats[] = [];
    for (const [series, state] of this.#series) {
      if (state.open !== null) out.push(this.#close(series, state, state.open));
    }
    return out;
  }

  /** number of open windows (bounded by number of live series) */
  get openCount(): number {
    return this.#openCount;
  }

  #close(series: string, state: SeriesState, open: OpenWindow): WindowStats {
    const end = open.start + this.#windowMs;
    state.open = null;
    state.closedUntil = end;
    this.#openCount--;
    return {
      series,
      start: open.start,
      end,
      count: open.count,
      min: open.min,
      max: open.max,
      mean: open.mean,
      // Rounding can leave m2 a hair below zero for constant input; never report NaN for that.
      std: Math.sqrt(Math.max(0, open.m2) / open.count),
    };
  }
}

function newWindow(start: number, value: number): OpenWindow {
  return { start, count: 1, mean: value, m2: 0, min: value, max: value };
}

function addTo(w: OpenWindow, value: number): void {
  w.count++;
  const delta = value - w.mean;
  w.mean += delta / w.count;
  w.m2 += delta * (value - w.mean);
  if (value < w.min) w.min = value;
  if (value > w.max) w.max = value;
}
