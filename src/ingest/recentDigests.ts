/**
 * The identities of the most recent messages, to recognise a broker's redelivery of a message that was
 * committed but whose acknowledgement was lost (only the in-flight window at a disconnect or crash, so a
 * bounded set suffices). Oldest forgotten first; seeded from the journal at start.
 */
export class RecentDigests {
  readonly #seen = new Map<string, number>();

  /** @param capacity identities kept at most */
  constructor(private readonly capacity: number) {}

  /** Whether `digest` was added at or after `since` (epoch ms). */
  has(digest: Buffer, since: number): boolean {
    const at = this.#seen.get(digest.toString('base64'));
    return at !== undefined && at >= since;
  }

  add(digest: Buffer, at: number): void {
    const key = digest.toString('base64');
    this.#seen.delete(key); // re-insert: the map's order is the age order
    this.#seen.set(key, at);
    if (this.#seen.size > this.capacity) this.#seen.delete(this.#seen.keys().next().value!);
  }

  get size(): number {
    return this.#seen.size;
  }
}
