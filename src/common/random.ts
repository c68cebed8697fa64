/**
 * Small seeded random sources for reproducible simulated data (sensor scenarios, test noise, test weights).
 * Not for anything that needs unpredictability.
 */

/**
 * mulberry32: a tiny, fast 32-bit PRNG. Returns a function that yields uniforms in [0, 1); the same seed
 * (taken as an unsigned 32-bit integer) always yields the same sequence.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Standard normal variates (mean 0, sd 1) from a uniform source in [0, 1), by the Box-Muller transform.
 * Each pair of uniforms (radius first, then angle) gives two variates: the cosine one is returned at once,
 * the sine one on the next call, so no draw is wasted. Draws from `uniform` only on every other call,
 * which matters when the same source is also used directly.
 */
export function gaussian(uniform: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    // 1 - u lies in (0, 1], so the logarithm is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}
