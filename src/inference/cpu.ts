import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * Physical cores from /proc/cpuinfo (distinct physical id + core id pairs), for llama.cpp's thread count:
 * its default oversubscribes a small board (measured here: 500x slower on 2 cores). Hyper-threads do not
 * help matrix multiplication. Falls back to the logical CPU count where /proc is absent.
 */
export function physicalCores(cpuinfo = '/proc/cpuinfo'): number {
  const logical = availableParallelism();
  try {
    const cores = new Set<string>();
    let physical = '0';
    for (const line of readFileSync(cpuinfo, 'utf8').split('\n')) {
      const [key, value] = line.split(':').map((part) => part.trim());
      if (key === 'physical id') physical = value ?? '0';
      else if (key === 'core id') cores.add(`${physical}:${value}`);
    }
    // Arm boards often list no core ids: every logical CPU is a core there.
    return cores.size > 0 ? Math.min(cores.size, logical) : logical;
  } catch {
    return logical;
  }
}

/**
 * llama.cpp threads when none are configured: the physical cores but one, which stays free for ingest (the
 * broker session, the journal commits and the acknowledgements go on while the model generates). Measured
 * here on 2 cores: 2 threads generated 4-16x slower than 1 when anything else ran.
 */
export function defaultThreads(cores = physicalCores()): number {
  return Math.max(1, cores - 1);
}
