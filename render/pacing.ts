// Pure rate-limit arithmetic: token bucket, Retry-After / Ratelimit-* parsing, jittered backoff.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export type Sleep = (ms: number) => Promise<void>;

export const systemClock: Clock = { now: () => Date.now() };
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Token bucket on an injected clock: `capacity` tokens, refilled continuously at
 * capacity per `windowMs`. Render publishes 10 deploys per minute per service.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly capacity: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {
    this.tokens = capacity;
    this.updatedAt = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.updatedAt);
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.capacity) / this.windowMs);
    this.updatedAt = now;
  }

  /** Takes a token if one is available and returns 0, else returns the ms to wait before trying again. */
  tryTake(): number {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * this.windowMs) / this.capacity);
  }

  /** Waits (on the injected sleeper) until a token is available, then takes it. Returns total ms waited. */
  async take(sleep: Sleep): Promise<number> {
    let waited = 0;
    for (;;) {
      const waitMs = this.tryTake();
      if (waitMs === 0) return waited;
      await sleep(waitMs);
      waited += waitMs;
    }
  }
}

type HeaderBag = Record<string, unknown>;

function header(headers: HeaderBag, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted && value !== undefined && value !== null) return String(value);
  }
  return undefined;
}

/** Retry-After as ms: delta-seconds or an HTTP date. undefined when absent or unreadable. */
export function parseRetryAfterMs(headers: HeaderBag, nowMs: number): number | undefined {
  const raw = header(headers, 'retry-after')?.trim();
  if (!raw) return undefined;
  if (/^\d+(\.\d+)?$/.test(raw)) return Math.round(Number(raw) * 1000);
  const date = Date.parse(raw);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

export interface RateLimitInfo {
  limit?: number;
  remaining?: number;
  /** ms until the window resets. */
  resetMs?: number;
}

/**
 * Ratelimit-Limit / -Remaining / -Reset. Reset is taken as delta-seconds, or as epoch seconds when it is
 * too large to be a delta (both forms are seen in the wild).
 */
export function parseRateLimit(headers: HeaderBag, nowMs: number): RateLimitInfo {
  const num = (name: string): number | undefined => {
    const raw = header(headers, name);
    if (raw === undefined) return undefined;
    const value = Number(raw.split(',')[0]?.trim());
    return Number.isFinite(value) ? value : undefined;
  };
  const info: RateLimitInfo = {};
  const limit = num('ratelimit-limit');
  const remaining = num('ratelimit-remaining');
  const reset = num('ratelimit-reset');
  if (limit !== undefined) info.limit = limit;
  if (remaining !== undefined) info.remaining = remaining;
  if (reset !== undefined) info.resetMs = reset > 1e9 ? Math.max(0, reset * 1000 - nowMs) : reset * 1000;
  return info;
}

/** Exponential backoff with full jitter: random in [base, base * 2^attempt], capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.round(baseMs + random() * Math.max(0, ceiling - baseMs));
}

/** Adds up to +20% jitter to a server-given wait so that many clients don't return at once. */
export function jitterUp(ms: number, random: () => number): number {
  return Math.round(ms * (1 + 0.2 * random()));
}
