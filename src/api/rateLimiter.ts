export interface RateLimiterOptions {
  /** Requests per minute a client may make, sustained; also the burst. */
  perMinute: number;
  /** Monotonic milliseconds. */
  now: () => number;
  /** Clients remembered at once; past it the least recently seen are forgotten. Default 10 000. */
  maxClients?: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * A token bucket per client (its address): `perMinute` tokens, refilled continuously; a request takes one.
 * Memory is bounded: a client not seen for long is forgotten (a full bucket is the same as none).
 */
export class RateLimiter {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #now: () => number;
  readonly #maxClients: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: RateLimiterOptions) {
    this.#capacity = options.perMinute;
    this.#perMs = options.perMinute / 60_000;
    this.#now = options.now;
    this.#maxClients = options.maxClients ?? 10_000;
  }

  take(client: string): RateDecision {
    const now = this.#now();
    const bucket = this.#buckets.get(client);
    let tokens = this.#capacity;
    if (bucket) {
      tokens = Math.min(this.#capacity, bucket.tokens + Math.max(0, now - bucket.at) * this.#perMs);
      // Re-inserted: the map's order is then least recently seen first.
      this.#buckets.delete(client);
    } else if (this.#buckets.size >= this.#maxClients) {
      const oldest = this.#buckets.keys().next();
      if (!oldest.done) this.#buckets.delete(oldest.value);
    }
    const ok = tokens >= 1;
    this.#buckets.set(client, { tokens: ok ? tokens - 1 : tokens, at: now });
    if (ok) return { ok: true };
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.#perMs / 1000)) };
  }

  /** Clients remembered now. */
  get size(): number {
    return this.#buckets.size;
  }
}
