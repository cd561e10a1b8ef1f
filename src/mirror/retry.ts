/*
 * How a mirror copes with an upstream that fails: each operation is tried
 * again after an exponentially growing, jittered pause, and a circuit
 * breaker per upstream stops all work against one that keeps failing, for
 * a cool-down that doubles each time it fails again right after.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamError } from './upstream.js';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
}

export interface BreakerPolicy {
  /** Consecutive failures that open the breaker. */
  threshold: number;
  cooldownMs: number;
  maxCooldownMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 1000, maxMs: 60_000 };
export const DEFAULT_BREAKER: BreakerPolicy = { threshold: 5, cooldownMs: 5 * 60_000, maxCooldownMs: 6 * 3_600_000 };

/**
 * The pause before retry number `retry` (0 for the first retry): "equal
 * jitter", half of the exponential step fixed and half random, so clients
 * that failed together do not come back together and the pause still grows.
 */
export function backoffMs(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** retry);
  return Math.round(step / 2 + random() * (step / 2));
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private failures = 0;
  private openedTimes = 0;
  private openUntil = 0;

  constructor(
    private readonly policy: BreakerPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    if (this.openUntil === 0) return 'closed';
    return this.now() < this.openUntil ? 'open' : 'half-open';
  }

  /** Whether work may go to the upstream now (closed, or half-open: one trial). */
  allows(): boolean {
    return this.state !== 'open';
  }

  /** When an open breaker lets work through again. */
  pausedUntil(): Date | undefined {
    return this.state === 'open' ? new Date(this.openUntil) : undefined;
  }

  succeeded(): void {
    this.failures = 0;
    this.openedTimes = 0;
    this.openUntil = 0;
  }

  /** Counts a failure; true when this one opened the breaker. */
  failed(): boolean {
    if (this.state === 'open') return false;
    this.failures++;
    // Half-open: the trial failed, so open again at once, for longer.
    if (this.openUntil !== 0 || this.failures >= this.policy.threshold) {
      const cooldown = Math.min(this.policy.maxCooldownMs, this.policy.cooldownMs * 2 ** this.openedTimes);
      this.openedTimes++;
      this.openUntil = this.now() + cooldown;
      this.failures = 0;
      return true;
    }
    return false;
  }
}

/** Thrown instead of trying while the breaker is open. */
export class UpstreamPaused extends UpstreamError {
  constructor(readonly until: Date) {
    super(`upstream paused after repeated failures, until ${until.toISOString()}`, { retryable: false, unhealthy: false });
    this.name = 'UpstreamPaused';
  }
}

export interface RetryContext {
  policy: RetryPolicy;
  breaker: CircuitBreaker;
  signal?: AbortSignal;
  /** Called before each pause. */
  onRetry?: (err: UpstreamError, delayMs: number, attempt: number) => void;
  /** Called when a failure opened the breaker. */
  onOpen?: (until: Date, err: UpstreamError) => void;
}

/**
 * Runs `work` until it succeeds, fails for good, runs out of attempts, or
 * the breaker opens. Errors that are not UpstreamErrors are bugs or local
 * problems (disk full): they neither count against the upstream nor retry.
 */
export async function withRetry<T>(work: (attempt: number) => Promise<T>, ctx: RetryContext): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (!ctx.breaker.allows()) throw new UpstreamPaused(ctx.breaker.pausedUntil()!);
    try {
      const result = await work(attempt);
      ctx.breaker.succeeded();
      return result;
    } catch (err) {
      if (!(err instanceof UpstreamError) || ctx.signal?.aborted) throw err;
      if (err.unhealthy && ctx.breaker.failed()) ctx.onOpen?.(ctx.breaker.pausedUntil()!, err);
      if (!err.retryable || attempt >= ctx.policy.attempts || !ctx.breaker.allows()) throw err;
      const delay = backoffMs(attempt - 1, ctx.policy);
      ctx.onRetry?.(err, delay, attempt);
      await sleep(delay, undefined, ctx.signal ? { signal: ctx.signal } : {});
    }
  }
}
