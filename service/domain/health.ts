/**
 * Context7 availability for /api/memory/health and /api/config.
 * The probe result is cached for a few seconds and concurrent callers share one probe, so polling the
 * health endpoint can never hammer Context7. Reasons never include raw error text (no secrets leak).
 */
import { DISABLED_REASON, type HealthResponse } from '../contracts/http';
import { Context7Error, type Context7Port } from '../context7/port';

export const MISSING_KEY_REASON =
  'CONTEXT7_API_KEY is not set: running in fallback mode (local database only)';

export interface HealthReporterDeps {
  enabled: boolean;
  hasKey: boolean;
  context7: Context7Port | null;
  /** How long one probe's answer is reused. */
  cacheMs?: number;
  now?: () => number;
}

export interface HealthReporter {
  check(): Promise<HealthResponse>;
}

export function unavailableReason(error: unknown): string {
  if (!(error instanceof Context7Error)) return 'Context7 health check failed (api_error)';
  if (error.details.unauthorized) return 'Context7 rejected the API key (unauthorized): check CONTEXT7_API_KEY';
  if (error.details.circuitOpen) return `Context7 unreachable: circuit breaker open after repeated failures (${error.type})`;
  switch (error.type) {
    case 'timeout':
      return 'Context7 unreachable: health check timed out (timeout)';
    case 'network':
      return 'Context7 unreachable: network error (network)';
    case 'rate_limited':
      return 'Context7 is rate limiting this service (rate_limited)';
    default:
      return `Context7 unhealthy: it answered with an error${error.details.status ? ` (HTTP ${error.details.status})` : ''} (api_error)`;
  }
}

export function createHealthReporter(deps: HealthReporterDeps): HealthReporter {
  const cacheMs = deps.cacheMs ?? 5_000;
  const now = deps.now ?? Date.now;
  let cached: { at: number; result: Promise<HealthResponse> } | null = null;

  async function probe(context7: Context7Port): Promise<HealthResponse> {
    try {
      await context7.health();
      return { available: true, provider: 'context7' };
    } catch (error) {
      return { available: false, reason: unavailableReason(error) };
    }
  }

  return {
    check() {
      if (!deps.enabled) return Promise.resolve({ available: false, reason: DISABLED_REASON });
      if (!deps.hasKey || !deps.context7) return Promise.resolve({ available: false, reason: MISSING_KEY_REASON });
      const at = now();
      if (cached && at - cached.at < cacheMs) return cached.result;
      cached = { at, result: probe(deps.context7) };
      return cached.result;
    },
  };
}
