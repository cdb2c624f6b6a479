/**
 * HTTP thresholds for load runs, from the canary policy's `load:` section (one source of truth).
 * The Node wrapper reads the policy through canary/policy.ts and writes the section to a JSON
 * file; the k6 script open()s it and turns it into k6 thresholds here. The Node runner evaluates
 * the same specs against its own measurements, so both tools judge alike.
 */
import type { Endpoint } from './traffic-mix.ts';

export interface Bound {
  below?: number;
  above?: number;
}

/** The policy's `load:` section. */
export interface LoadThresholdPolicy {
  httpAvgLatencyMs: Bound;
  httpP95LatencyMs: Bound;
  httpErrorRate: Bound;
  checksPassRate: Bound;
}

/** What the wrapper writes and the k6 script open()s. */
export interface ThresholdsFile {
  /** where the figures came from, for the report */
  source: string;
  profile: ThresholdProfile;
  load: LoadThresholdPolicy;
}

/** `rollout`: the runbook's figures; `thirty-day`: average latency tightened to the 30-day profile. */
export const THRESHOLD_PROFILES = ['rollout', 'thirty-day'] as const;
export type ThresholdProfile = (typeof THRESHOLD_PROFILES)[number];

/** The statistics a threshold can read, from a whole run or one endpoint of it. */
export interface MeasuredStats {
  errorRate: number;
  checksPassRate: number;
  latencyMs: { avg: number; p95: number };
}

interface Definition {
  k6Metric: 'http_req_duration' | 'http_req_failed' | 'checks';
  k6Statistic: string;
  read: (s: MeasuredStats) => number;
}

const DEFINITIONS: Record<keyof LoadThresholdPolicy, Definition> = {
  httpAvgLatencyMs: { k6Metric: 'http_req_duration', k6Statistic: 'avg', read: (s) => s.latencyMs.avg },
  httpP95LatencyMs: { k6Metric: 'http_req_duration', k6Statistic: 'p(95)', read: (s) => s.latencyMs.p95 },
  httpErrorRate: { k6Metric: 'http_req_failed', k6Statistic: 'rate', read: (s) => s.errorRate },
  checksPassRate: { k6Metric: 'checks', k6Statistic: 'rate', read: (s) => s.checksPassRate },
};

export interface ThresholdSpec {
  key: keyof LoadThresholdPolicy;
  k6Metric: Definition['k6Metric'];
  /** k6 threshold expression, e.g. `p(95)<500` */
  expression: string;
  operator: '<' | '>';
  limit: number;
}

export interface ThresholdResult {
  /** k6 metric name, with a tag filter for per-endpoint thresholds: `http_req_duration{endpoint:snippets}` */
  metric: string;
  expression: string;
  ok: boolean;
  /** the measured value the expression judged, when known */
  actual?: number;
}

/** Validates the section (unknown keys or bad bounds are errors, not silently ignored) and lists its thresholds. */
export function thresholdSpecs(policy: LoadThresholdPolicy): ThresholdSpec[] {
  const keys = Object.keys(DEFINITIONS) as Array<keyof LoadThresholdPolicy>;
  for (const key of Object.keys(policy)) {
    if (keys.indexOf(key as keyof LoadThresholdPolicy) < 0) throw new Error(`unknown load threshold "${key}" (known: ${keys.join(', ')})`);
  }
  return keys.map((key) => {
    const bound = policy[key];
    if (bound === undefined || bound === null) throw new Error(`load threshold "${key}" is missing`);
    const hasBelow = typeof bound.below === 'number' && Number.isFinite(bound.below);
    const hasAbove = typeof bound.above === 'number' && Number.isFinite(bound.above);
    if (hasBelow === hasAbove) throw new Error(`load threshold "${key}" needs exactly one finite "below" or "above"`);
    const operator = hasBelow ? '<' : '>';
    const limit = (hasBelow ? bound.below : bound.above) as number;
    const def = DEFINITIONS[key];
    return { key, k6Metric: def.k6Metric, expression: `${def.k6Statistic}${operator}${limit}`, operator, limit };
  });
}

/** The load section under a profile: `thirty-day` tightens average latency to the 30-day figure. */
export function applyProfile(load: LoadThresholdPolicy, profile: ThresholdProfile, thirtyDayAvgLatencyMs?: number): LoadThresholdPolicy {
  if (profile === 'rollout') return load;
  if (typeof thirtyDayAvgLatencyMs !== 'number') throw new Error('the thirty-day profile needs thirtyDayProfile.avgLatencyMs.below in the policy');
  const current = load.httpAvgLatencyMs.below;
  const below = typeof current === 'number' ? Math.min(current, thirtyDayAvgLatencyMs) : thirtyDayAvgLatencyMs;
  return { ...load, httpAvgLatencyMs: { below } };
}

export type K6Threshold = string | { threshold: string; abortOnFail: boolean; delayAbortEval?: string };

export interface K6ThresholdOptions {
  /** also set each threshold per endpoint tag, so the summary shows each endpoint apart */
  endpoints: readonly Endpoint[];
  /** breakpoint runs stop as soon as a whole-run threshold fails */
  abortOnFail?: boolean;
  /** extra per-tag copies for reporting only (never abort), e.g. `rate_step:100` */
  reportOnlyTags?: readonly string[];
}

/** Lets the first seconds of a ramp fill the windows before an abort is judged. */
export const ABORT_EVAL_DELAY = '10s';

export function toK6Thresholds(specs: ThresholdSpec[], options: K6ThresholdOptions): Record<string, K6Threshold[]> {
  const out: Record<string, K6Threshold[]> = {};
  const add = (metric: string, value: K6Threshold) => {
    (out[metric] = out[metric] ?? []).push(value);
  };
  for (const spec of specs) {
    add(spec.k6Metric, options.abortOnFail ? { threshold: spec.expression, abortOnFail: true, delayAbortEval: ABORT_EVAL_DELAY } : spec.expression);
    for (const endpoint of options.endpoints) add(`${spec.k6Metric}{endpoint:${endpoint}}`, spec.expression);
    for (const tag of options.reportOnlyTags ?? []) add(`${spec.k6Metric}{${tag}}`, spec.expression);
  }
  return out;
}

/** Judges measured stats as k6 would; `metricSuffix` names the tag filter, e.g. `{endpoint:snippets}`. */
export function evaluateThresholds(specs: ThresholdSpec[], stats: MeasuredStats, metricSuffix = ''): ThresholdResult[] {
  return specs.map((spec) => {
    const actual = DEFINITIONS[spec.key].read(stats);
    const ok = spec.operator === '<' ? actual < spec.limit : actual > spec.limit;
    return { metric: `${spec.k6Metric}${metricSuffix}`, expression: spec.expression, ok, actual };
  });
}
