/*
 * How a mirror copes with an upstream that fails, on cockatiel's
 * policies: each operation is tried again after an exponentially growing
 * pause, half of it fixed and half random (so mirrors that failed together
 * do not come back together), and a circuit breaker per upstream stops all
 * work against one that keeps failing, for a cool-down that doubles each
 * time the trial after it fails too.
 *
 * Only UpstreamErrors take part: `retryable` ones are tried again,
 * `unhealthy` ones count against the upstream. Anything else is a bug or a
 * local problem (disk full): it neither retries nor counts.
 */
import {
  circuitBreaker, CircuitState, ConsecutiveBreaker, ExponentialBackoff, halfJitterGenerator, handleWhen, noJitterGenerator, retry,
  wrap, BrokenCircuitError, type CircuitBreakerPolicy, type IBackoff, type IBackoffFactory,
} from 'cockatiel';
import { asUpstreamError, UpstreamError } from '../fetch/errors.js';

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

export type BreakerState = 'closed' | 'open' | 'half-open';

/** A backoff that tells each pause it hands out (cockatiel keeps the breaker's to itself). */
function told<T>(inner: IBackoffFactory<T>, tell: (ms: number) => void): IBackoffFactory<T> {
  return {
    next(context: T): IBackoff<T> {
      const backoff = inner.next(context);
      tell(backoff.duration);
      return { duration: backoff.duration, next: told(backoff, tell).next };
    },
  };
}

/** One upstream's circuit breaker: cockatiel's, with the pause it is in made visible for logs and reports. */
export class CircuitBreaker {
  readonly policy: CircuitBreakerPolicy;
  private openedAt = 0;
  private cooldown = 0;

  constructor(policy: BreakerPolicy) {
    const cooldowns = new ExponentialBackoff({ initialDelay: policy.cooldownMs, maxDelay: policy.maxCooldownMs, generator: noJitterGenerator });
    this.policy = circuitBreaker(handleWhen((err) => err instanceof UpstreamError && err.unhealthy), {
      breaker: new ConsecutiveBreaker(policy.threshold),
      halfOpenAfter: told(cooldowns, (ms) => {
        this.openedAt = Date.now();
        this.cooldown = ms;
      }),
    });
  }

  get state(): BreakerState {
    if (this.policy.state === CircuitState.Closed) return 'closed';
    return this.pausedUntil() ? 'open' : 'half-open';
  }

  /** The cool-down of the latest opening. */
  get cooldownMs(): number {
    return this.cooldown;
  }

  /** When an open breaker lets work through again. */
  pausedUntil(): Date | undefined {
    if (this.policy.state !== CircuitState.Open) return undefined;
    const until = this.openedAt + this.cooldown;
    return Date.now() < until ? new Date(until) : undefined;
  }

  /** Calls `listener` each time failures open the breaker. */
  onOpen(listener: (until: Date, err: unknown) => void): void {
    this.policy.onBreak((reason) => listener(new Date(this.openedAt + this.cooldown), 'error' in reason ? reason.error : reason));
  }
}

/** Thrown instead of trying while the breaker is open. */
export class UpstreamPaused extends UpstreamError {
  constructor(readonly until: Date | undefined) {
    super(`upstream paused after repeated failures${until ? `, until ${until.toISOString()}` : ''}`, { retryable: false, unhealthy: false });
    this.name = 'UpstreamPaused';
  }
}

export interface RetryContext {
  policy: RetryPolicy;
  breaker: CircuitBreaker;
  signal?: AbortSignal;
  /** Called before each pause. */
  onRetry?: (err: UpstreamError, delayMs: number, attempt: number) => void;
}

/**
 * Runs `work` until it succeeds, fails for good, runs out of attempts, or
 * the breaker opens. A stop (the signal) ends the wait at once: cockatiel's
 * pause cannot be cut short, so the work it would start next finds the
 * signal raised and gives up without a request.
 */
export async function withRetry<T>(work: () => Promise<T>, ctx: RetryContext): Promise<T> {
  const { signal } = ctx;
  const retries = retry(handleWhen((err) => err instanceof UpstreamError && err.retryable && !signal?.aborted
    && ctx.breaker.policy.state === CircuitState.Closed), {
    maxAttempts: Math.max(0, ctx.policy.attempts - 1),
    backoff: new ExponentialBackoff({ initialDelay: ctx.policy.baseMs, maxDelay: ctx.policy.maxMs, generator: halfJitterGenerator }),
  }).dangerouslyUnref();
  // Cockatiel's pause is unref'd (so a stop does not wait for it); this timer keeps the process up while it runs.
  let hold: NodeJS.Timeout | undefined;
  const listener = retries.onRetry((event) => {
    hold = setTimeout(() => undefined, event.delay);
    if ('error' in event) ctx.onRetry?.(event.error as UpstreamError, event.delay, event.attempt);
  });
  const attempt = () => {
    signal?.throwIfAborted();
    return work();
  };
  const running = wrap(retries, ctx.breaker.policy).execute(attempt, signal).catch((err: unknown) => {
    throw err instanceof BrokenCircuitError ? new UpstreamPaused(ctx.breaker.pausedUntil()) : err;
  }).finally(() => {
    clearTimeout(hold);
    listener.dispose();
  });
  if (!signal) return running;
  return new Promise<T>((resolve, reject) => {
    const stop = () => {
      clearTimeout(hold);
      reject(asUpstreamError(signal.reason, 'the run was stopped'));
    };
    signal.addEventListener('abort', stop, { once: true });
    if (signal.aborted) stop();
    running.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}
