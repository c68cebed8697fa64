import { describe, expect, it } from 'vitest';
import { RecentDigests } from '../../src/ingest/recentDigests.js';

const d = (n: number) => Buffer.from(String(n));

describe('RecentDigests', () => {
  it('forgets the oldest beyond its capacity and honours the time bound', () => {
    const digests = new RecentDigests(3);
    for (let n = 1; n <= 5; n++) digests.add(d(n), n * 10);
    expect([1, 2, 3, 4, 5].map((n) => digests.has(d(n), 0))).toEqual([false, false, true, true, true]);
    expect(digests.size).toBe(3);
    expect(digests.has(d(5), 50)).toBe(true);
    expect(digests.has(d(5), 51)).toBe(false);
  });

  it('keeps a re-added identity until its newest entry ages out', () => {
    const digests = new RecentDigests(3);
    digests.add(d(1), 1);
    digests.add(d(2), 2);
    digests.add(d(1), 3); // seen again
    digests.add(d(3), 4); // evicts the first entry of 1, not its newer one
    expect(digests.has(d(1), 3)).toBe(true);
    digests.add(d(4), 5);
    digests.add(d(5), 6); // now the newer entry of 1 goes
    expect(digests.has(d(1), 0)).toBe(false);
    expect(digests.has(d(5), 0)).toBe(true);
  });
});
