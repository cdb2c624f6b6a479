/**
 * Bearer ADMIN_TOKEN for /api/admin/*, compared in constant time (bearer.ts, shared with the caller keys).
 * Repeated failures from one client are rate limited (createAdminAuthLimiter), so guessing costs a window per try.
 */
import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { bearerToken, tokenMatches } from './bearer';

export { bearerToken, tokenMatches } from './bearer';

export const ADMIN_DISABLED_MESSAGE = 'Admin endpoints are disabled: set ADMIN_TOKEN to enable them';

/** Failed admin authentications (401s) a client may make per window before every admin request gets 429. */
export const ADMIN_AUTH_MAX_FAILURES = 10;
export const ADMIN_AUTH_WINDOW_MS = 15 * 60_000;

export interface AdminAuthLimit {
  maxFailures: number;
  windowMs: number;
}

/**
 * Counts only failed authentications (401) per client IP (req.ip: it honours `trust proxy`, so behind Render's
 * proxy set TRUST_PROXY_HOPS, or every client shares one count). Once a client has used up its failures, every
 * admin request from it gets 429 with Retry-After until the window ends, a correct token included: answering a
 * right guess differently would keep the oracle the limit exists to close. Counts are per instance.
 */
export interface AdminAuthLimiterEvents {
  /** Once per client and window, when its failures first run out (the operator's cue that someone is guessing). */
  onLimited?: (client: string, until: Date | undefined) => void;
  /** Store errors and misconfiguration warnings from the library. */
  onProblem?: (message: string, error: unknown) => void;
}

export const ADMIN_AUTH_LIMITED_MESSAGE = 'Too many failed admin authentications from this client: retry after the time in Retry-After';

export function createAdminAuthLimiter(
  limit: AdminAuthLimit = { maxFailures: ADMIN_AUTH_MAX_FAILURES, windowMs: ADMIN_AUTH_WINDOW_MS },
  events: AdminAuthLimiterEvents = {},
): RequestHandler {
  const onProblem = events.onProblem ?? (() => undefined);
  return rateLimit({
    windowMs: limit.windowMs,
    limit: limit.maxFailures,
    skipSuccessfulRequests: true,
    // A refused (429) request counts as well: `used` then passes the limit exactly once per window, which is when
    // onLimited fires; the window is fixed, so it does not lengthen the block.
    requestWasSuccessful: (_req, res) => res.statusCode !== 401 && res.statusCode !== 429,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (req, res, _next, options) => {
      const info = (req as typeof req & { rateLimit?: { used: number; limit: number; key: string; resetTime?: Date } }).rateLimit;
      if (info && info.used === info.limit + 1) events.onLimited?.(info.key, info.resetTime);
      res.status(options.statusCode).json({ error: ADMIN_AUTH_LIMITED_MESSAGE });
    },
    logger: {
      error: (error: unknown, message?: string) => onProblem(message ?? 'admin auth limiter error', error),
      warn: (error: unknown, message?: string) => onProblem(message ?? 'admin auth limiter warning', error),
    },
  });
}

export function requireAdminToken(adminToken: string | undefined): RequestHandler {
  const expected = adminToken;
  return (req, res, next) => {
    if (!expected) {
      res.status(403).json({ error: ADMIN_DISABLED_MESSAGE });
      return;
    }
    const presented = bearerToken(req.headers.authorization);
    if (presented === null || !tokenMatches(expected, presented)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="admin"');
      res.status(401).json({ error: presented === null ? 'Missing bearer token (Authorization: Bearer <ADMIN_TOKEN>)' : 'Invalid admin token' });
      return;
    }
    next();
  };
}
