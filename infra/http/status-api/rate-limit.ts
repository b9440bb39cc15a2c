/**
 * In-memory token buckets, one per key (an API token, or a client address for failed logins). Each
 * bucket holds up to `perMinute` requests and refills at `perMinute` per minute, so a client may burst
 * up to a minute's allowance and then goes at the steady rate. Per process: with several API
 * processes behind a balancer each one counts on its own.
 */

/** Options of a limiter. */
export interface RateLimiterOptions {
  /** Requests per minute per key; also the burst size. */
  perMinute: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
  /** Most keys kept at once (default 100 000); beyond that the least recently created are dropped. */
  maxKeys?: number;
}

/** The outcome of taking one request from a bucket. */
export interface RateDecision {
  /** True when the request may go ahead. */
  allowed: boolean;
  /** Whole requests left in the bucket afterwards. */
  remaining: number;
  /** When refused: seconds until one request is available again (at least 1). */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** A set of token buckets keyed by string. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly capacity: number;
  private readonly now: () => number;
  private readonly maxKeys: number;
  private readonly timer: NodeJS.Timeout;

  constructor(opts: RateLimiterOptions) {
    if (!(opts.perMinute > 0)) throw new RangeError('perMinute must be positive');
    this.capacity = opts.perMinute;
    this.perMs = opts.perMinute / 60_000;
    this.now = opts.now ?? Date.now;
    this.maxKeys = opts.maxKeys ?? 100_000;
    this.timer = setInterval(() => this.sweep(), 60_000);
    this.timer.unref();
  }

  /** Requests per minute per key. */
  get limit(): number {
    return this.capacity;
  }

  /** Takes one request from `key`'s bucket. */
  take(key: string): RateDecision {
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.sweep();
      b = { tokens: this.capacity, updatedAt: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.capacity, b.tokens + (now - b.updatedAt) * this.perMs);
      b.updatedAt = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, remaining: Math.floor(b.tokens), retryAfterSeconds: 0 };
    }
    return {
      allowed: false,
      remaining: 0,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)),
    };
  }

  /** Forgets buckets that have refilled (they behave as new ones); keeps the map under `maxKeys`. */
  sweep(): void {
    const now = this.now();
    for (const [key, b] of this.buckets)
      if (b.tokens + (now - b.updatedAt) * this.perMs >= this.capacity) this.buckets.delete(key);
    for (const key of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) break;
      this.buckets.delete(key);
    }
  }

  /** Number of buckets held (tests, metrics). */
  get size(): number {
    return this.buckets.size;
  }

  /** Stops the periodic sweep. */
  stop(): void {
    clearInterval(this.timer);
  }
}
