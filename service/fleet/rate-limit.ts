/**
 * Rate limiting of the public memory endpoints. With Redis the counts are shared by every instance (a client
 * spread over N instances by the load balancer still gets `limit` requests per window, not N x limit); without
 * it each instance counts alone. Keys are client IPs, which need `trust proxy` behind Render's proxy (see
 * TRUST_PROXY_HOPS in service/fleet/config.ts). A Redis outage lets requests through rather than failing them.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import { rateLimit, type RateLimitRequestHandler } from 'express-rate-limit';
import { RedisStore, type RedisReply } from 'rate-limit-redis';

export interface PublicRateLimitOptions {
  windowMs: number;
  /** Requests per client per window. */
  limit: number;
  /** Shared counting when given; per-instance memory otherwise. */
  redis?: Redis;
  keyPrefix?: string;
  /** Store errors and misconfiguration warnings (instead of the library's console output). */
  onProblem?: (message: string, error: unknown) => void;
}

export function createPublicRateLimiter(options: PublicRateLimitOptions): RateLimitRequestHandler {
  const redis = options.redis;
  return rateLimit({
    windowMs: options.windowMs,
    limit: options.limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    passOnStoreError: true,
    ...(options.onProblem
      ? {
          logger: {
            error: (error: unknown, message?: string) => options.onProblem!(message ?? 'rate limiter error', error),
            warn: (error: unknown, message?: string) => options.onProblem!(message ?? 'rate limiter warning', error),
          },
        }
      : {}),
    message: { error: 'Too many requests, retry after the time in the RateLimit header' },
    store: redis
      ? new RedisStore({
          prefix: `${options.keyPrefix ?? ''}ratelimit:`,
          sendCommand: resilientScriptCommands(redis),
        })
      : undefined,
  });
}

/**
 * rate-limit-redis loads its Lua scripts once, at start, and keeps a failed load for ever: a Redis outage at
 * boot would turn rate limiting off until the next deploy. So SCRIPT LOAD is answered locally (the SHA1 of the
 * script, which is what Redis would return) while the real load happens in the background, and an EVALSHA that
 * finds the script missing (Redis restarted or was unreachable) is retried as EVAL, which also reloads it.
 */
function resilientScriptCommands(redis: Redis): (command: string, ...args: string[]) => Promise<RedisReply> {
  const scripts = new Map<string, string>();
  return async (command, ...args) => {
    const name = command.toUpperCase();
    if (name === 'SCRIPT' && args[0]?.toUpperCase() === 'LOAD' && args[1] !== undefined) {
      const sha = createHash('sha1').update(args[1]).digest('hex');
      scripts.set(sha, args[1]);
      redis.call('SCRIPT', 'LOAD', args[1]).catch(() => undefined);
      return sha;
    }
    try {
      return (await redis.call(command, ...args)) as RedisReply;
    } catch (error) {
      const script = name === 'EVALSHA' ? scripts.get(args[0] ?? '') : undefined;
      if (script === undefined || !/NOSCRIPT/.test((error as Error).message)) throw error;
      return (await redis.call('EVAL', script, ...args.slice(1))) as RedisReply;
    }
  };
}
