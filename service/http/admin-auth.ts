/**
 * Bearer ADMIN_TOKEN for /api/admin/*, compared in constant time (bearer.ts, shared with the caller keys).
 * Repeated failures from one client are limited (createAdminAuthLimiter), so guessing costs a window per try.
 */
import type { Request, RequestHandler } from 'express';
import { createAuthFailureLimiter, type AuthFailureLimiter, type AuthFailureLimiterEvents } from './auth-failure-limiter';
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

export const ADMIN_AUTH_LIMITED_MESSAGE = 'Too many failed admin authentications from this client: retry after the time in Retry-After';

export type { AuthFailureLimiterEvents as AdminAuthLimiterEvents } from './auth-failure-limiter';

/**
 * Counts only completed failed authentications (401) per client (auth-failure-limiter.ts): a request with the
 * correct token never counts, even when its client gave up before the answer. Once a client has used up its
 * failures, every admin request from it gets 429 with Retry-After until the window ends, a correct token included.
 */
export function createAdminAuthLimiter(
  limit: AdminAuthLimit = { maxFailures: ADMIN_AUTH_MAX_FAILURES, windowMs: ADMIN_AUTH_WINDOW_MS },
  events: AuthFailureLimiterEvents = {},
): AuthFailureLimiter {
  return createAuthFailureLimiter(limit, ADMIN_AUTH_LIMITED_MESSAGE, events);
}

/** `onFailure` records a refused token (the limiter) before the 401 is sent: only a completed failure counts. */
export function requireAdminToken(adminToken: string | undefined, onFailure: (req: Request) => void = () => undefined): RequestHandler {
  const expected = adminToken;
  return (req, res, next) => {
    if (!expected) {
      res.status(403).json({ error: ADMIN_DISABLED_MESSAGE });
      return;
    }
    const presented = bearerToken(req.headers.authorization);
    if (presented === null || !tokenMatches(expected, presented)) {
      onFailure(req);
      res.setHeader('WWW-Authenticate', 'Bearer realm="admin"');
      res.status(401).json({ error: presented === null ? 'Missing bearer token (Authorization: Bearer <ADMIN_TOKEN>)' : 'Invalid admin token' });
      return;
    }
    next();
  };
}
