/*
 * Failed logins, counted per key (a client address, a user name) in token
 * buckets: `burst` attempts at once, refilled at `per_minute`. An attempt
 * takes a token before its password is checked, so concurrent guesses
 * cannot all slip past an empty bucket, and gives it back if the password
 * was right: only failures add up. The table holds at most `maxKeys`
 * buckets; the least recently used goes first, so memory stays bounded
 * however many addresses or names clients make up.
 */

export interface RateSpec {
  burst: number;
  per_minute: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class FailureLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly spec: Readonly<RateSpec>,
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {}

  private level(key: string): number {
    const b = this.buckets.get(key);
    if (!b) return this.spec.burst;
    return Math.min(this.spec.burst, b.tokens + ((this.now() - b.at) / 60_000) * this.spec.per_minute);
  }

  /** Whole seconds until `key` may try again; 0 if it may now. */
  wait(key: string): number {
    const level = this.level(key);
    return level >= 1 ? 0 : Math.ceil(((1 - level) / this.spec.per_minute) * 60);
  }

  take(key: string): void {
    this.set(key, this.level(key) - 1);
  }

  give(key: string): void {
    this.set(key, this.level(key) + 1);
  }

  private set(key: string, tokens: number): void {
    this.buckets.delete(key);
    if (tokens >= this.spec.burst) return; // a full bucket is the same as none
    if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, { tokens, at: this.now() });
  }

  get size(): number {
    return this.buckets.size;
  }
}
