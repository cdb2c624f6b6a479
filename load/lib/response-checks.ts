/**
 * Response checks for load runs: status AND body shape (source, attestation), per endpoint.
 * They mirror service/contracts/http.ts, which k6 cannot import (no zod in k6); a vitest suite
 * holds the two in agreement. Pure: both the k6 script and the Node runner call evaluateResponse.
 */
import type { Endpoint, RequestPlan } from './traffic-mix.ts';

export interface CheckResult {
  name: string;
  ok: boolean;
}

const MEMORY_BACKENDS = ['context7', 'cache', 'database', 'hybrid'];

type Json = unknown;

function isObject(v: Json): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isNonNegInt(v: Json): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}
function isNonNegNumber(v: Json): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}
function isRate(v: Json): boolean {
  return typeof v === 'number' && v >= 0 && v <= 1;
}
function isPercent(v: Json): boolean {
  return typeof v === 'number' && v >= 0 && v <= 100;
}

function isSnippet(v: Json): boolean {
  return (
    isObject(v) &&
    typeof v.id === 'string' &&
    typeof v.content === 'string' &&
    (v.score === undefined || typeof v.score === 'number') &&
    (v.metadata === undefined || isObject(v.metadata))
  );
}

/** `POST /api/memory/snippets`: the disabled shape, or snippets + a source + an attestation. */
export function isSnippetsResponse(v: Json): boolean {
  if (!isObject(v) || !Array.isArray(v.snippets) || typeof v.source !== 'string') return false;
  if (v.source === 'disabled') return v.snippets.length === 0;
  if (MEMORY_BACKENDS.indexOf(v.source) < 0 || !v.snippets.every(isSnippet)) return false;
  const a = v.attestation;
  return isObject(a) && typeof a.backend === 'string' && MEMORY_BACKENDS.indexOf(a.backend) >= 0 && typeof a.scopeId === 'string' && isNonNegInt(a.snippetsApplied);
}

/** The attestation must name the scope that was asked for: anything else is training leakage. */
export function attestsScope(v: Json, scopeId: string): boolean {
  if (!isObject(v)) return false;
  if (v.source === 'disabled') return true;
  return isObject(v.attestation) && v.attestation.scopeId === scopeId;
}

export function isHealthResponse(v: Json): boolean {
  if (!isObject(v)) return false;
  if (v.available === true) return v.provider === 'context7';
  return v.available === false && typeof v.reason === 'string' && v.reason.length > 0;
}

export function isConfigResponse(v: Json): boolean {
  return isObject(v) && typeof v.enableContext7Memory === 'boolean' && typeof v.context7Available === 'boolean';
}

/** The fields a canary and the runbook's curls read; the full schema is the service's concern. */
export function isMetricsResponse(v: Json): boolean {
  if (!isObject(v)) return false;
  const byType = v.errorsByType;
  const cache = v.cache;
  return (
    isRate(v.errorRate) &&
    isPercent(v.errorRatePercent) &&
    isRate(v.fallbackRate) &&
    isPercent(v.fallbackRatePercent) &&
    isNonNegNumber(v.avgLatency) &&
    isNonNegNumber(v.p95Latency) &&
    isRate(v.cacheHitRate) &&
    isPercent(v.cacheHitRatePercent) &&
    isNonNegInt(v.context7Requests) &&
    isObject(byType) &&
    ['network', 'timeout', 'api_error', 'rate_limited'].every((k) => isNonNegInt(byType[k])) &&
    isObject(cache) &&
    ['hits', 'misses', 'size', 'ttlMs'].every((k) => isNonNegInt(cache[k])) &&
    typeof v.instanceId === 'string' &&
    typeof v.deployId === 'string' &&
    isObject(v.totals)
  );
}

/** `POST /api/memory/patterns`: how many were saved, their ids, and where they went. */
export function isPatternsResponse(v: Json): boolean {
  return (
    isObject(v) &&
    isNonNegInt(v.saved) &&
    isNonNegInt(v.inserted) &&
    Array.isArray(v.patternIds) &&
    v.patternIds.every((id) => typeof id === 'string') &&
    Array.isArray(v.destinations) &&
    v.destinations.every((d) => d === 'database' || d === 'context7')
  );
}

/** Nothing accepted is lost: every pattern sent is durable in the database before the 2xx. */
export function savedEveryPattern(v: Json, sent: number): boolean {
  return isObject(v) && v.saved === sent && Array.isArray(v.patternIds) && v.patternIds.length === sent && Array.isArray(v.destinations) && v.destinations.indexOf('database') >= 0;
}

function parseJson(text: string | null | undefined): { ok: boolean; value: Json } {
  if (typeof text !== 'string' || text.length === 0) return { ok: false, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, value: undefined };
  }
}

/** Expected success status per endpoint. */
function statusOk(endpoint: Endpoint, status: number): boolean {
  if (endpoint === 'patterns') return status >= 200 && status < 300;
  return status === 200;
}

/**
 * Every check for one response. Check names carry the endpoint, so a summary shows which
 * endpoint's shape broke.
 */
export function evaluateResponse(plan: RequestPlan, status: number, bodyText: string | null | undefined): CheckResult[] {
  const e = plan.endpoint;
  const body = parseJson(bodyText);
  const results: CheckResult[] = [
    { name: `${e}: status ${e === 'patterns' ? '2xx' : '200'}`, ok: statusOk(e, status) },
    { name: `${e}: JSON body`, ok: body.ok },
  ];
  const v = body.value;
  switch (e) {
    case 'snippets':
      results.push({ name: 'snippets: source and attestation shape', ok: isSnippetsResponse(v) });
      results.push({ name: 'snippets: attestation names the requested scope', ok: plan.scopeId !== undefined && attestsScope(v, plan.scopeId) });
      break;
    case 'patterns':
      results.push({ name: 'patterns: response shape', ok: isPatternsResponse(v) });
      results.push({ name: 'patterns: every pattern saved to the database', ok: plan.patternCount !== undefined && savedEveryPattern(v, plan.patternCount) });
      break;
    case 'health':
      results.push({ name: 'health: shape', ok: isHealthResponse(v) });
      break;
    case 'config':
      results.push({ name: 'config: shape', ok: isConfigResponse(v) });
      break;
    case 'metrics':
      results.push({ name: 'metrics: shape', ok: isMetricsResponse(v) });
      break;
  }
  return results;
}
