/**
 * Caller credentials on /api/memory/snippets and /patterns: `Authorization: Bearer <caller key>`.
 * Every configured key is compared in constant time (bearer.ts); the matching key's name (never its secret) is
 * what logs see. The scope check runs on the request's scope id alone, before any store or cache is touched,
 * so a refusal takes the same path and gives the same body whether the scope exists or not.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { MemoryAuthMode } from '../config';
import { keyMayAccessScope, type CallerKey } from '../domain/caller-keys';
import { bearerToken, findMatchingSecret, tokenDigest } from './bearer';

export interface CallerAuthPolicy {
  mode: MemoryAuthMode;
  keys: readonly CallerKey[];
}

/** Who is calling: a configured key, or anyone while MEMORY_AUTH=open. */
export type Caller = { kind: 'key'; name: string; locations: ReadonlySet<string> | null } | { kind: 'open' };

export const CALLER_KEYS_MISSING_MESSAGE =
  'Memory API has no caller keys: set MEMORY_API_KEYS (or MEMORY_AUTH=open for local development only)';
export const CALLER_MISSING_MESSAGE = 'Missing caller credential (Authorization: Bearer <memory API key>)';
export const CALLER_INVALID_MESSAGE = 'Invalid caller credential';
/** One body for every scope a key may not reach: it says nothing about whether the scope exists. */
export const SCOPE_FORBIDDEN_MESSAGE = 'Forbidden: this credential may not access this scope';

export class ScopeForbiddenError extends Error {
  constructor() {
    super(SCOPE_FORBIDDEN_MESSAGE);
    this.name = 'ScopeForbiddenError';
  }
}

export type CallerAuthOutcome =
  | { ok: true; caller: Caller }
  | { ok: false; status: 401; message: string };

/** Decides a request's caller from its Authorization header; pure apart from hashing. */
export function authenticateCaller(policy: CallerAuthPolicy, authorization: string | undefined, digests: readonly Buffer[]): CallerAuthOutcome {
  if (policy.mode === 'open') return { ok: true, caller: { kind: 'open' } };
  if (policy.keys.length === 0) return { ok: false, status: 401, message: CALLER_KEYS_MISSING_MESSAGE };
  const presented = bearerToken(authorization);
  if (presented === null) return { ok: false, status: 401, message: CALLER_MISSING_MESSAGE };
  const index = findMatchingSecret(
    policy.keys.map((_key, i) => i),
    (i) => digests[i]!,
    presented,
  );
  if (index === null) return { ok: false, status: 401, message: CALLER_INVALID_MESSAGE };
  const key = policy.keys[index]!;
  return { ok: true, caller: { kind: 'key', name: key.name, locations: key.locations } };
}

export function callerMayAccessScope(caller: Caller, scopeId: string): boolean {
  return caller.kind === 'open' || keyMayAccessScope(caller, scopeId);
}

/** Throws ScopeForbiddenError (403) unless the caller may reach the scope. */
export function assertCallerMayAccess(caller: Caller, scopeId: string): void {
  if (!callerMayAccessScope(caller, scopeId)) throw new ScopeForbiddenError();
}

export function callerOf(res: Response): Caller {
  const caller = (res.locals as { caller?: Caller }).caller;
  // The route is mounted behind requireCaller; reaching here without one is a wiring bug, refused closed.
  if (!caller) throw new ScopeForbiddenError();
  return caller;
}

/** Failed caller authentications a client may make per window before its memory requests get 429. */
export const CALLER_AUTH_MAX_FAILURES = 20;
export const CALLER_AUTH_WINDOW_MS = 15 * 60_000;
export const CALLER_AUTH_LIMITED_MESSAGE = 'Too many failed caller authentications from this client: retry after the time in Retry-After';

/**
 * The middleware: 401 for a missing or unknown key, else the caller is kept in res.locals for the route.
 * `onFailure` records a refused credential (the failure limiter) before the 401; a service without keys
 * configured refuses everyone alike and counts nothing (there is no key to guess).
 */
export function requireCaller(policy: CallerAuthPolicy, onFailure: (req: Request) => void = () => undefined): RequestHandler {
  // Digests are computed once; the secrets themselves are not kept by the handler.
  const digests = policy.keys.map((key) => tokenDigest(key.secret));
  return (req, res, next) => {
    const outcome = authenticateCaller(policy, req.headers.authorization, digests);
    if (!outcome.ok) {
      if (outcome.message !== CALLER_KEYS_MISSING_MESSAGE) onFailure(req);
      res.setHeader('WWW-Authenticate', 'Bearer realm="memory"');
      res.status(outcome.status).json({ error: outcome.message });
      return;
    }
    (res.locals as { caller?: Caller }).caller = outcome.caller;
    next();
  };
}
