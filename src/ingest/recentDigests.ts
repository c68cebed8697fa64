/**
 * The identities of the most recent messages, to recognise a broker's redelivery of a message that was
 * committed but whose acknowledgement was lost (only the in-flight window at a disconnect or crash, so a
 * bounded set suffices). Oldest forgotten first; seeded from the journal at start.
 */
export class RecentDigests {
  readonly #seen = new Map<string, number>();
  // Insertion order in a ring: evicting through Map.keys().next() rescans the holes deletions leave at
  // the front of V8's hash table, which a profile showed costing 10% of ingest.
  readonly #ring: { key: string; at: number }[] = [];
  #head = 0;

  /** @param capacity identities kept at most */
  constructor(private readonly capacity: number) {}

  /** Whether `digest` was added at or after `since` (epoch ms). */
  has(digest: Buffer, since: number): boolean {
    const at = this.#seen.get(digest.toString('base64'));
    return at !== undefined && at >= since;
  }

  add(digest: Buffer, at: number): void {
    const key = digest.toString('base64');
    if (this.#ring.length < this.capacity) {
      this.#ring.push({ key, at });
    } else {
      const old = this.#ring[this.#head]!;
      // A key added again since keeps its newer entry.
      if (this.#seen.get(old.key) === old.at) this.#seen.delete(old.key);
      this.#ring[this.#head] = { key, at };
      this.#head = (this.#head + 1) % this.capacity;
    }
    this.#seen.set(key, at);
  }

  get size(): number {
    return this.#seen.size;
  }
}
