/** Options of {@link RobustDetector}. */
export interface DetectorOptions {
  /** Samples kept as the baseline (a positive integer); default 60 */
  window?: number;
  /** Robust z-score above which a sample is anomalous (positive); default 6 */
  threshold?: number;
  /** Samples needed before any verdict (a non-negative integer; at least one is always needed); default 20 */
  warmup?: number;
  /** After an anomaly is raised, further anomalous samples within this many ms belong to the same episode and raise nothing, ms; default 60000 */
  cooldownMs?: number;
}

/** How one sample compares with the baseline before it. */
export interface AnomalyVerdict {
  /** robust z-score: |x - median| / scale */
  score: number;
  /** Median of the baseline the sample was scored against. */
  median: number;
  /** robust scale used (1.4826*MAD, with fallbacks) */
  scale: number;
  /** Whether score > threshold. */
  anomalous: boolean;
  /** true only for the first anomalous sample of an episode: raise an event for this one */
  raise: boolean;
  /** samples seen so far, including this one and any seeded */
  seen: number;
}

/** Makes the MAD a consistent estimator of the standard deviation for Gaussian data. */
const MAD_TO_SIGMA = 1.4826;
/** Same for the mean absolute deviation (sqrt(pi/2)). */
const MEAN_AD_TO_SIGMA = 1.2533;
/** Relative scale floor for a perfectly constant baseline: any real change to it scores as anomalous. */
const CONSTANT_FLOOR = 1e-9;

/**
 * Streaming median/MAD anomaly detector for one series.
 *
 * The baseline is a ring buffer of the last `window` samples plus a sorted copy of it, so each sample costs
 * O(window) with no allocation: a binary-search insert/remove in the sorted copy gives the median, and a
 * quickselect over a scratch buffer gives the MAD.
 *
 * Episodes: the first anomalous sample raises. Later anomalous samples raise again only once the series has
 * been back to normal (a non-anomalous sample since the last anomalous one) and `cooldownMs` has passed since
 * the last raise. A sustained anomaly therefore raises once, and a flapping one at most once per cooldown.
 */
export class RobustDetector {
  readonly #capacity: number;
  readonly #threshold: number;
  readonly #warmup: number;
  readonly #cooldownMs: number;
  /** Samples in arrival order; the slot at #next is the oldest once full. */
  readonly #ring: Float64Array;
  /** The same samples, ascending. */
  readonly #sorted: Float64Array;
  /** Reused for the MAD so that scoring never allocates. */
  readonly #scratch: Float64Array;
  #size = 0;
  #next = 0;
  #seen = 0;
  #lastRaiseTs: number | null = null;
  #normalSinceAnomaly = false;

  constructor(options: DetectorOptions = {}) {
    const { window = 60, threshold = 6, warmup = 20, cooldownMs = 60_000 } = options;
    if (!Number.isInteger(window) || window < 1)
      throw new RangeError(`window must be an integer >= 1, got ${window}`);
    if (!Number.isFinite(threshold) || threshold <= 0) {
      throw new RangeError(`threshold must be a positive number, got ${threshold}`);
    }
    if (!Number.isInteger(warmup) || warmup < 0)
      throw new RangeError(`warmup must be an integer >= 0, got ${warmup}`);
    if (!Number.isFinite(cooldownMs) || cooldownMs < 0) {
      throw new RangeError(`cooldownMs must be a non-negative number, got ${cooldownMs}`);
    }
    this.#capacity = window;
    this.#threshold = threshold;
    // A median of nothing is undefined, so even warmup 0 waits for one sample.
    this.#warmup = Math.max(1, warmup);
    this.#cooldownMs = cooldownMs;
    this.#ring = new Float64Array(window);
    this.#sorted = new Float64Array(window);
    this.#scratch = new Float64Array(window);
  }

  /** Scores the sample against the baseline BEFORE adding it, then adds it. Returns null while warming up (seen < warmup). */
  observe(ts: number, value: number): AnomalyVerdict | null {
    if (!Number.isFinite(value)) throw new RangeError(`value must be finite, got ${value}`);
    const before = this.#seen;
    let verdict: AnomalyVerdict | null = null;
    if (before >= this.#warmup) {
      const median = this.#median();
      const scale = this.#scale(median);
      const score = Math.abs(value - median) / scale;
      const anomalous = score > this.#threshold;
      let raise = false;
      if (anomalous) {
        raise =
          this.#lastRaiseTs === null ||
          (this.#normalSinceAnomaly && ts - this.#lastRaiseTs >= this.#cooldownMs);
        if (raise) this.#lastRaiseTs = ts;
        this.#normalSinceAnomaly = false;
      } else {
        this.#normalSinceAnomaly = true;
      }
      verdict = { score, median, scale, anomalous, raise, seen: before + 1 };
    }
    // Anomalies join the baseline too: median/MAD shrug off a few, and a lasting level shift becomes the new normal.
    this.#push(value);
    this.#seen = before + 1;
    return verdict;
  }

  /** Preloads the baseline from history (oldest first) without raising anything, e.g. after a restart. */
  seed(values: readonly number[]): void {
    for (const value of values) {
      if (!Number.isFinite(value)) throw new RangeError(`seed values must be finite, got ${value}`);
    }
    for (const value of values) this.#push(value);
    this.#seen += values.length;
  }

  #push(value: number): void {
    const sorted = this.#sorted;
    if (this.#size === this.#capacity) {
      const oldest = this.#ring[this.#next]!;
      const at = lowerBound(sorted, this.#size, oldest);
      sorted.copyWithin(at, at + 1, this.#size);
      this.#size--;
    }
    const at = upperBound(sorted, this.#size, value);
    sorted.copyWithin(at + 1, at, this.#size);
    sorted[at] = value;
    this.#size++;
    this.#ring[this.#next] = value;
    this.#next = (this.#next + 1) % this.#capacity;
  }

  #median(): number {
    const n = this.#size;
    const mid = n >> 1;
    return n % 2 === 1 ? this.#sorted[mid]! : (this.#sorted[mid - 1]! + this.#sorted[mid]!) / 2;
  }

  #scale(median: number): number {
    const n = this.#size;
    const dev = this.#scratch;
    let sumAbs = 0;
    for (let i = 0; i < n; i++) {
      const d = Math.abs(this.#sorted[i]! - median);
      dev[i] = d;
      sumAbs += d;
    }
    const mid = n >> 1;
    const upper = select(dev, n, mid);
    let mad = upper;
    if (n % 2 === 0) {
      // After selecting index mid, everything before it is <= it, so the lower middle is their maximum.
      let lower = dev[0]!;
      for (let i = 1; i < mid; i++) lower = Math.max(lower, dev[i]!);
      mad = (lower + upper) / 2;
    }
    if (mad > 0) return MAD_TO_SIGMA * mad;
    // More than half the baseline sits exactly on the median (quantised sensors): MAD says 0, the rest still varies.
    const meanAbs = sumAbs / n;
    if (meanAbs > 0) return MEAN_AD_TO_SIGMA * meanAbs;
    return CONSTANT_FLOOR * Math.max(1, Math.abs(median));
  }
}

/** First index in sorted[0, n) whose value is >= x. */
function lowerBound(sorted: Float64Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index in sorted[0, n) whose value is > x. */
function upperBound(sorted: Float64Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Rearranges a[0, n) so that a[k] holds the k-th smallest value and everything before it is <= a[k];
 * returns a[k]. Hoare partitioning around a median-of-three pivot, iterative, in place.
 */
function select(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    // Median of three guards against the V-shaped order that deviations from a sorted buffer have.
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    // Now a[lo..j] <= pivot <= a[i..hi], and any slots between j and i equal the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}
