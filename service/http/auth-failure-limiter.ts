/**
 * Limits failed authentications per client, for the admin token and the caller keys alike. Only a completed
 * failure counts: the check that refused a credential records it before answering 401, so a request that
 * presented a correct credential never counts, whether or not its answer reached the client (an abandoned
 * request, a client timeout, a body cut short). express-rate-limit's skipSuccessfulRequests cannot do that: it
 * counts every request on arrival and takes a success back only when the answer finishes.
 *
 * Once a client has used up its failures, every request it makes to the guarded routes gets 429 with Retry-After
 * until the window ends, a correct credential included: answering a right guess differently would keep open the
 * oracle the limit exists to close.
 *
 * The client is `req.ip` (express-rate-limit's ipKeyGenerator: an IPv6 client by its /56), which honours `trust
 * proxy` (TRUST_PROXY_HOPS): see the trust model in service/README.md. Counts are per instance, in memory.
 */
import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, MemoryStore, type Options } from 'express-rate-limit';

export interface AuthFailureLimit {
  maxFailures: number;
  windowMs: number;
}

export interface AuthFailureLimiterEvents {
  /** Once per client and window, when its failures first run out (the operator's cue that someone is guessing). */
  onLimited?: (client: string, until: Date | undefined) => void;
  /** A store error: the request is let through (a broken limiter must not lock operators out). */
  onProblem?: (message: string, error: unknown) => void;
}

export interface AuthFailureLimiter {
  /** Runs before the credential check: 429 for a client over its limit, whatever it presents. */
  gate: RequestHandler;
  /** Called by the credential check when it refuses a credential, before it answers. */
  recordFailure(req: Request): void;
}

export function limiterClientKey(req: Request): string {
  return ipKeyGenerator(req.ip ?? req.socket.remoteAddress ?? 'unknown');
}

export function createAuthFailureLimiter(limit: AuthFailureLimit, message: string, events: AuthFailureLimiterEvents = {}): AuthFailureLimiter {
  const store = new MemoryStore();
  store.init({ windowMs: limit.windowMs } as Options);
  const problem = events.onProblem ?? (() => undefined);
  // No client can be over its limit when no failure was recorded for three windows (the store drops an entry within
  // two): such requests skip the client key (req.ip through proxy-addr) and the store's promise. That is every
  // request while nobody guesses, the cache-hit path included, where the gate was a visible cost (issue 29).
  let lastFailureMs = Number.NEGATIVE_INFINITY;
  return {
    gate: (req, res, next) => {
      if (Date.now() - lastFailureMs > 3 * limit.windowMs) {
        next();
        return;
      }
      const key = limiterClientKey(req);
      store.get(key).then(
        (info) => {
          if (!info || info.totalHits < limit.maxFailures) {
            next();
            return;
          }
          const seconds = info.resetTime ? Math.max(1, Math.ceil((info.resetTime.getTime() - Date.now()) / 1000)) : Math.ceil(limit.windowMs / 1000);
          res.setHeader('Retry-After', String(seconds));
          res.status(429).json({ error: message });
        },
        (error: unknown) => {
          problem('failure limiter store error', error);
          next();
        },
      );
    },
    recordFailure(req) {
      lastFailureMs = Date.now();
      const key = limiterClientKey(req);
      store.increment(key).then(
        (info) => {
          if (info.totalHits === limit.maxFailures) events.onLimited?.(key, info.resetTime);
        },
        (error: unknown) => problem('failure limiter store error', error),
      );
    },
  };
}
