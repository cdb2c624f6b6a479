/**
 * The memory service's public HTTP contract, as the rollout runbook specifies it.
 * One definition serves the service (what it sends), the canary (what it validates before
 * judging) and the load scripts' checks, so the three cannot drift apart.
 */
import { z } from 'zod';
import { clusterTablesSchema } from '../domain/exposure-clusters';

export const ERROR_TYPES = ['network', 'timeout', 'api_error', 'rate_limited'] as const;
export type Context7ErrorType = (typeof ERROR_TYPES)[number];

export const MEMORY_SOURCES = ['context7', 'cache', 'database', 'hybrid', 'disabled'] as const;
export type MemorySource = (typeof MEMORY_SOURCES)[number];

/** `GET /api/config` */
export const configResponseSchema = z.object({
  enableContext7Memory: z.boolean(),
  context7Available: z.boolean(),
});
export type ConfigResponse = z.infer<typeof configResponseSchema>;

/** `GET /api/memory/health` */
export const healthResponseSchema = z.union([
  z.object({ available: z.literal(true), provider: z.literal('context7') }),
  z.object({ available: z.literal(false), reason: z.string().min(1) }),
]);
export type HealthResponse = z.infer<typeof healthResponseSchema>;

/** The exact reason the runbook expects when the flag is off. */
export const DISABLED_REASON = 'Context7 disabled in environment';

const nonNegativeInt = z.number().int().nonnegative();
const rate = z.number().min(0).max(1);
const percent = z.number().min(0).max(100);

/** Raw monotonic counters: a canary computes windowed rates from their deltas. */
export const metricTotalsSchema = z.object({
  /** memory requests served while the flag is on (snippet reads) */
  requests: nonNegativeInt,
  /** memory requests answered from the local store because Context7 failed or timed out */
  fallbacks: nonNegativeInt,
  /** logical Context7 calls (a call's retries count once) */
  context7Requests: nonNegativeInt,
  /** logical Context7 calls that failed after retries */
  context7Errors: nonNegativeInt,
  cacheHits: nonNegativeInt,
  cacheMisses: nonNegativeInt,
  /** sum of Context7 call latencies in ms, with latencyCount the number of calls measured */
  latencyMsSum: z.number().nonnegative(),
  latencyCount: nonNegativeInt,
  /**
   * memory requests (snippet reads and learning writes, flag on or off) that needed the local store. A store
   * outage is not a Context7 failure: it is counted here and never as a fallback or a Context7 error.
   */
  storeRequests: nonNegativeInt.default(0),
  /** of those, the ones that failed because the store failed or missed its deadline (answered 503) */
  storeErrors: nonNegativeInt.default(0),
  /**
   * memory requests (reads and learning writes) in the canary's probe scopes (location prefix `canaryprobe-`).
   * They and everything they cause (store, cache, Context7 calls) are counted here only, never in the counters
   * above, so the canary's learning probe never moves the figures the canary judges.
   */
  probeRequests: nonNegativeInt.default(0),
});
export type MetricTotals = z.infer<typeof metricTotalsSchema>;

/** Every raw counter, in one place for whoever sums or diffs them (fleet metrics, the canary). */
export const METRIC_TOTAL_KEYS = metricTotalsSchema.keyof().options;

export function emptyTotals(): MetricTotals {
  return {
    requests: 0,
    fallbacks: 0,
    context7Requests: 0,
    context7Errors: 0,
    cacheHits: 0,
    cacheMisses: 0,
    latencyMsSum: 0,
    latencyCount: 0,
    storeRequests: 0,
    storeErrors: 0,
    probeRequests: 0,
  };
}

/**
 * Per-cohort figures (progressive exposure, service/domain/exposure.ts): memory requests in exposed scopes
 * (treatment) and in the others (control), measured the same way at the HTTP edge so the two compare. Monotonic
 * counters, like `totals`: a canary diffs two snapshots for a window. Probe scopes are counted in neither.
 */
export const cohortTotalsSchema = z.object({
  /** memory requests (snippet reads and learning writes) answered while the flag was on */
  requests: nonNegativeInt,
  /** of those, snippet reads */
  reads: nonNegativeInt,
  /** reads answered from the local store because Context7 failed (never counted for the control cohort) */
  fallbacks: nonNegativeInt,
  /** answers with a 5xx status */
  serverErrors: nonNegativeInt,
  /** sum of request latencies in ms, measured at the HTTP edge, with latencyCount the requests measured */
  latencyMsSum: z.number().nonnegative(),
  latencyCount: nonNegativeInt,
  /** logical Context7 calls made for this cohort's scopes (searches and upserts), and those that failed */
  context7Requests: nonNegativeInt,
  context7Errors: nonNegativeInt,
});
export type CohortTotals = z.infer<typeof cohortTotalsSchema>;

/** Both cohorts' counters side by side (the metrics time series keeps them per interval and per day). */
export const cohortTotalsPairSchema = z.object({ treatment: cohortTotalsSchema, control: cohortTotalsSchema });
export type CohortTotalsPair = z.infer<typeof cohortTotalsPairSchema>;

export const cohortFiguresSchema = z.object({
  totals: cohortTotalsSchema,
  /**
   * Request latency histogram since start: bin (service/fleet/fleet-metrics.ts latencyBin, 5 % wide) → count.
   * Cumulative like the totals, so a window's histogram is the difference of two snapshots.
   */
  latencyBins: z.record(z.string().regex(/^\d+$/), nonNegativeInt),
  fallbackRate: rate,
  serverErrorRate: rate,
  /** context7Errors / context7Requests */
  errorRate: rate,
  p50LatencyMs: z.number().nonnegative(),
  p95LatencyMs: z.number().nonnegative(),
});
export type CohortFigures = z.infer<typeof cohortFiguresSchema>;

/** What an instance applies right now (see `GET /api/admin/exposure` for the whole state). */
export const exposureSummarySchema = z.object({
  /** the percentage in force: 0 with the flag off */
  percent: percent,
  /** the stack's ceiling (CONTEXT7_EXPOSURE_PERCENT) */
  ceiling: percent,
  /** the change this instance has applied (0 before any runtime change) */
  version: nonNegativeInt,
});
export type ExposureSummary = z.infer<typeof exposureSummarySchema>;

/** `GET /api/metrics/memory` */
export const memoryMetricsSchema = z.object({
  errorRate: rate,
  errorRatePercent: percent,
  fallbackRate: rate,
  fallbackRatePercent: percent,
  /** mean Context7 call latency, ms */
  avgLatency: z.number().nonnegative(),
  /** p95 of recent Context7 call latencies, ms */
  p95Latency: z.number().nonnegative(),
  cacheHitRate: rate,
  cacheHitRatePercent: percent,
  /** storeErrors / storeRequests: the local store failing, which turning Context7 off cannot fix */
  storeErrorRate: rate.default(0),
  storeErrorRatePercent: percent.default(0),
  context7Requests: nonNegativeInt,
  errorsByType: z.object({
    network: nonNegativeInt,
    timeout: nonNegativeInt,
    api_error: nonNegativeInt,
    rate_limited: nonNegativeInt,
  }),
  cache: z.object({
    hits: nonNegativeInt,
    misses: nonNegativeInt,
    size: nonNegativeInt,
    ttlMs: nonNegativeInt,
  }),
  instanceId: z.string().min(1),
  deployId: z.string().min(1),
  /** ISO-8601 time this process (or, fleet-wide, this counter epoch) started */
  startedAt: z.string().datetime(),
  totals: metricTotalsSchema,
  /**
   * Fleet figures only: the deploy generation they cover (service/fleet/deploy-generation.ts), i.e. the processes
   * started together with this commit and configuration, and when its first process started. `deployId` stays
   * the commit; a rollback and a retry of the same commit are different generations.
   */
  deployGeneration: z.string().min(1).optional(),
  deployStartedAt: z.string().datetime().optional(),
  /** "instance": this process's counters; "fleet": summed across instances (data-plane issue) */
  scope: z.enum(['instance', 'fleet']).optional(),
  instancesSeen: z.array(z.string()).optional(),
  /** progressive exposure: the percentage this instance applies, and the two cohorts' figures */
  exposure: exposureSummarySchema.optional(),
  cohorts: z.object({ treatment: cohortFiguresSchema, control: cohortFiguresSchema }).optional(),
  /**
   * Progressive exposure per cluster of 10 exposure buckets (service/domain/exposure-clusters.ts): per slot
   * (treatment, control, and off while the flag is off) the clusters that saw a request, cumulative, plus new
   * scopes per slot. What the stepped canary's cluster-robust comparisons and sample-ratio check read.
   */
  clusters: clusterTablesSchema.optional(),
});
export type MemoryMetrics = z.infer<typeof memoryMetricsSchema>;

export const snippetSchema = z.object({
  id: z.string(),
  content: z.string(),
  score: z.number().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});
export type Snippet = z.infer<typeof snippetSchema>;

/** `POST /api/memory/snippets` request */
export const snippetsRequestSchema = z.strictObject({
  scopeId: z.string(),
  query: z.string().max(2_000).optional(),
  limit: z.number().int().min(1).max(50).optional(),
});
export type SnippetsRequest = z.infer<typeof snippetsRequestSchema>;

/** `POST /api/memory/snippets` response */
export const snippetsResponseSchema = z.union([
  z.object({ snippets: z.array(z.never()).length(0), source: z.literal('disabled') }),
  z.object({
    snippets: z.array(snippetSchema),
    source: z.enum(['context7', 'cache', 'database', 'hybrid']),
    attestation: z.object({
      backend: z.enum(['context7', 'cache', 'database', 'hybrid']),
      scopeId: z.string(),
      snippetsApplied: nonNegativeInt,
    }),
  }),
]);
export type SnippetsResponse = z.infer<typeof snippetsResponseSchema>;

/**
 * Pattern metadata: any JSON object, passed on as the very object that was sent. z.record would rebuild it and
 * silently drop an own `__proto__` key; the service refuses that key instead (service/domain/storable-input.ts).
 */
export const patternMetadataSchema = z.custom<Record<string, unknown>>(
  (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  { message: 'Invalid input: expected an object' },
);

/** `POST /api/memory/patterns` request: post-call learning */
export const patternInputSchema = z.union([
  z.string().min(1).max(10_000),
  z.strictObject({
    content: z.string().min(1).max(10_000),
    metadata: patternMetadataSchema.optional(),
    /** optional time-to-live for the pattern, ISO-8601 */
    expiresAt: z.string().datetime().optional(),
  }),
]);
export const patternsRequestSchema = z.strictObject({
  scopeId: z.string(),
  patterns: z.array(patternInputSchema).min(1).max(100),
});
export type PatternsRequest = z.infer<typeof patternsRequestSchema>;

/** Every 4xx/5xx body the service sends. */
export const errorResponseSchema = z.object({
  error: z.string(),
  details: z.unknown().optional(),
});
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

/** `POST /api/admin/sync-context7` 202 body */
export const SYNC_STARTED_MESSAGE = 'Full sync started (running async)';

/** `POST /api/memory/patterns` 200 body (added by the service helper). */
export const patternsResponseSchema = z.object({
  /** patterns in the request, all durable in the local store */
  saved: nonNegativeInt,
  /** of those, how many were new (the rest were already stored: same scope and content) */
  inserted: nonNegativeInt,
  /** stable ids, in request order */
  patternIds: z.array(z.string()),
  /** ["database","context7"] when Context7 acknowledged them now, else ["database"] (they wait in the outbox) */
  destinations: z.array(z.enum(['database', 'context7'])),
  /**
   * Present when some patterns were already stored with other metadata or expiry: their ids. A stored pattern is
   * immutable (its id is its content within the scope): the new metadata was not applied. To change it, erase the
   * pattern (POST /api/admin/erase) and post it again.
   */
  metadataKept: z.array(z.string()).optional(),
});
export type PatternsResponse = z.infer<typeof patternsResponseSchema>;

/** `PUT /api/admin/exposure` request: a runtime change of the percentage (0 is the kill switch). */
export const exposureChangeRequestSchema = z.strictObject({
  percent: z.number().min(0).max(100),
  /** who asks (a person or `canary`): recorded in the audit, never a credential */
  actor: z.string().min(1).max(100),
  reason: z.string().max(500).optional(),
});
export type ExposureChangeRequest = z.infer<typeof exposureChangeRequestSchema>;

/** One audited change of the runtime percentage. */
export const exposureAuditEntrySchema = z.object({
  version: z.number().int().positive(),
  at: z.string().datetime(),
  actor: z.string(),
  reason: z.string().nullable(),
  /** the runtime value before (null: none stored yet, the deploy started from the ceiling) */
  fromPercent: percent.nullable(),
  toPercent: percent,
  ceiling: percent,
  /** the instance that took the change */
  instanceId: z.string(),
});
export type ExposureAuditEntry = z.infer<typeof exposureAuditEntrySchema>;

/** `GET /api/admin/exposure` and the `PUT`'s 200 body. */
export const exposureStateSchema = z.object({
  flagOn: z.boolean(),
  /** the percentage in force on the answering instance */
  percent: percent,
  ceiling: percent,
  /** the stored runtime value (null: none yet, the ceiling applies) */
  runtimePercent: percent.nullable(),
  version: nonNegativeInt,
  updatedAt: z.string().datetime().nullable(),
  updatedBy: z.string().nullable(),
  /** how changes reach other instances, and the stated bound on that */
  propagation: z.object({ via: z.enum(['redis', 'polling', 'single-instance']), boundMs: nonNegativeInt }),
  /** with Redis: what each live instance of this deploy has applied (the kill switch is done when all have) */
  instances: z
    .array(z.object({ instanceId: z.string(), version: nonNegativeInt, percent: percent, appliedAt: z.string().datetime() }))
    .optional(),
});
export type ExposureState = z.infer<typeof exposureStateSchema>;

/** `GET /api/admin/exposure/audit` */
export const exposureAuditResponseSchema = z.object({ entries: z.array(exposureAuditEntrySchema) });
