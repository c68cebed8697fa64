/** Tells the live stream that results or events were stored, so it reads them now, not at its next poll. */
export interface ChangeFeed {
  /** Calls `listener` after each change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

/**
 * The daemon's change notices: call `notify()` after a transaction that stored results or events has
 * committed. Notices carry no data (the stream reads rows from the store), so many collapse into one read.
 */
export class StoreChanges implements ChangeFeed {
  readonly #listeners = new Set<() => void>();

  notify(): void {
    for (const listener of this.#listeners) listener();
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}
