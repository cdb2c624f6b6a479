/**
 * Rate limiting of the public memory endpoints. With Redis the counts are shared by every instance (a client
 * spread over N instances by the load balancer still gets `limit` requests per window, not N x limit); without
 * it each instance counts alone. Keys are client IPs, which need `trust proxy` behind Render's proxy (see
 * TRUST_PROXY_HOPS in service/config.ts: 1 on Render, else 0). A Redis outage lets requests through rather than failing them.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type Redis from 'ioredis';
import type { RequestHandler } from 'express';
import { rateLimit, type RateLimitRequestHandler } from 'express-rate-limit';
// rate-limit-redis is required only with Redis (below), not on import.
import type { RedisReply } from 'rate-limit-redis';
import { isLoadTestScopeId } from '../domain/scope-id';
import { tokenMatches } from '../http/admin-auth';

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
      ? new (require('rate-limit-redis') as typeof import('rate-limit-redis')).RedisStore({
          prefix: `${options.keyPrefix ?? ''}ratelimit:`,
          sendCommand: resilientScriptCommands(redis),
        })
      : undefined,
  });
}

/**
 * The header a load test sends its token in. Not Authorization: that one carries the caller's own credential, and a
 * load test is a caller like any other apart from the limit.
 */
export const LOAD_TEST_TOKEN_HEADER = 'x-load-test-token';

/** True only for the right token, compared in constant time; a missing, repeated or wrong header is simply false. */
export function presentsLoadTestToken(headers: IncomingHttpHeaders, loadTestToken: string): boolean {
  const presented = headers[LOAD_TEST_TOKEN_HEADER];
  return typeof presented === 'string' && tokenMatches(loadTestToken, presented);
}

/** A parsed request body that names a scope reserved for load tests (scope:loadtest-*). */
export function targetsLoadTestScope(body: unknown): boolean {
  return typeof body === 'object' && body !== null && isLoadTestScopeId((body as { scopeId?: unknown }).scopeId);
}

/**
 * The public limiter, skipped for a load test: a request with the right LOAD_TEST_TOKEN (X-Load-Test-Token) whose
 * JSON body names a load-test scope. Everything else, a wrong token included, takes the same path as before: the
 * limiter first, the body parsed only after it, so an unauthenticated flood is refused without parsing its bodies.
 * Only a request with the right token has its body parsed first (by the route's own parser, which then finds it
 * done); a leaked token still cannot lift the limit on customer scopes. The exemption is from the limiter only:
 * validation, credential checks and every other route stay as they are.
 */
export function exemptingLoadTests(limiter: RequestHandler, loadTestToken: string | undefined, parseJsonBody: RequestHandler): RequestHandler {
  if (!loadTestToken) return limiter;
  return (req, res, next) => {
    if (!presentsLoadTestToken(req.headers, loadTestToken)) {
      void limiter(req, res, next);
      return;
    }
    parseJsonBody(req, res, (parseError?: unknown) => {
      if (parseError === undefined && targetsLoadTestScope(req.body)) {
        next();
        return;
      }
      // A body that does not parse is still counted before its error is answered.
      void limiter(req, res, (limitError?: unknown) => next(limitError ?? parseError));
    });
  };
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
