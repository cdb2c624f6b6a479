// Run-time faults of the Render emulator. Counters are consumed as matching requests arrive.

export interface RateLimitFault {
  /** How many matching responses are 429. */
  count: number;
  /** Retry-After in seconds; null (or absent) sends no Retry-After, only Ratelimit-* headers. */
  retryAfterSeconds?: number | null;
  /** Ratelimit-Reset in seconds. Default 1. */
  resetSeconds?: number;
  /** Only requests whose "METHOD /path" (path after /v1) contains this text. */
  match?: string;
}

export interface ServerErrorFault {
  count: number;
  /** 500 (default), 502, 503 or 504. */
  status?: number;
  match?: string;
}

export interface EmulatorFaults {
  rateLimit?: RateLimitFault;
  serverErrors?: ServerErrorFault;
  /** The next N POST /services/{id}/deploys answer 202 with an empty body (the deploy is still created). */
  emptyDeployResponses?: number;
  /** The next N deploys to reach the build step end as build_failed. */
  failBuilds?: number;
}

export function validateFaults(input: unknown): { ok: true; faults: EmulatorFaults } | { ok: false; message: string } {
  if (!input || typeof input !== 'object' || Array.isArray(input)) return { ok: false, message: 'faults must be an object' };
  const raw = input as Record<string, unknown>;
  const known = new Set(['rateLimit', 'serverErrors', 'emptyDeployResponses', 'failBuilds']);
  for (const key of Object.keys(raw)) if (!known.has(key)) return { ok: false, message: `unknown fault "${key}"` };
  const count = (value: unknown, name: string): number | string => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return `${name} must be a non-negative integer`;
    return value;
  };
  const faults: EmulatorFaults = {};
  for (const name of ['emptyDeployResponses', 'failBuilds'] as const) {
    if (raw[name] === undefined) continue;
    const n = count(raw[name], name);
    if (typeof n === 'string') return { ok: false, message: n };
    faults[name] = n;
  }
  if (raw.rateLimit !== undefined) {
    const r = raw.rateLimit as Record<string, unknown>;
    if (!r || typeof r !== 'object') return { ok: false, message: 'rateLimit must be an object' };
    const n = count(r.count, 'rateLimit.count');
    if (typeof n === 'string') return { ok: false, message: n };
    const fault: RateLimitFault = { count: n };
    if (r.retryAfterSeconds !== undefined && r.retryAfterSeconds !== null) {
      const s = count(r.retryAfterSeconds, 'rateLimit.retryAfterSeconds');
      if (typeof s === 'string') return { ok: false, message: s };
      fault.retryAfterSeconds = s;
    } else if (r.retryAfterSeconds === null) {
      fault.retryAfterSeconds = null;
    }
    if (r.resetSeconds !== undefined) {
      const s = count(r.resetSeconds, 'rateLimit.resetSeconds');
      if (typeof s === 'string') return { ok: false, message: s };
      fault.resetSeconds = s;
    }
    if (r.match !== undefined) {
      if (typeof r.match !== 'string') return { ok: false, message: 'rateLimit.match must be a string' };
      fault.match = r.match;
    }
    faults.rateLimit = fault;
  }
  if (raw.serverErrors !== undefined) {
    const r = raw.serverErrors as Record<string, unknown>;
    if (!r || typeof r !== 'object') return { ok: false, message: 'serverErrors must be an object' };
    const n = count(r.count, 'serverErrors.count');
    if (typeof n === 'string') return { ok: false, message: n };
    const fault: ServerErrorFault = { count: n };
    if (r.status !== undefined) {
      if (![500, 502, 503, 504].includes(r.status as number)) return { ok: false, message: 'serverErrors.status must be 500, 502, 503 or 504' };
      fault.status = r.status as number;
    }
    if (r.match !== undefined) {
      if (typeof r.match !== 'string') return { ok: false, message: 'serverErrors.match must be a string' };
      fault.match = r.match;
    }
    faults.serverErrors = fault;
  }
  return { ok: true, faults };
}
