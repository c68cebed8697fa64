/** Time as the stages see it, injected so windows, cooldowns and retention are testable. */
export interface Clock {
  /** Wall-clock time, epoch milliseconds. */
  now(): number;
  /** Monotonic milliseconds for measuring durations. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  setInterval(fn: () => void, ms: number): Timer;
}

/** A scheduled callback that can be cancelled; `unref`ed timers never hold the process open. */
export interface Timer {
  cancel(): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
  setInterval(fn, ms) {
    const handle = setInterval(fn, ms);
    handle.unref();
    return { cancel: () => clearInterval(handle) };
  },
};
