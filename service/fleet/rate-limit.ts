/**
 * Rate limiting of the public memory endpoints. With Redis the counts are shared by every instance (a client
 * spread over N instances by the load balancer still gets `limit` requests per window, not N x limit); without
 * it each instance counts alone. Keys are client IPs, which need `trust proxy` behind Render's proxy (see
 * TRUST_PROXY_HOPS in service/fleet/config.ts). A Redis outage lets requests through rather than failing them.
 */
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
}

export function createPublicRateLimiter(options: PublicRateLimitOptions): RateLimitRequestHandler {
  const redis = options.redis;
  return rateLimit({
    windowMs: options.windowMs,
    limit: options.limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    passOnStoreError: true,
    message: { error: 'Too many requests, retry after the time in the RateLimit header' },
    store: redis
      ? new RedisStore({
          prefix: `${options.keyPrefix ?? ''}ratelimit:`,
          sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args) as Promise<RedisReply>,
        })
      : undefined,
  });
}
