/**
 * `GET /api/metrics/memory/history?from=YYYY-MM-DD&to=YYYY-MM-DD&bucket=day`: the fleet's counters summed per UTC
 * day over [from, to) (`to` exclusive). Public like /api/metrics/memory: counters only, no tenant data.
 * One definition for the service (what it sends) and the 30-day evaluator (what it validates before judging).
 */
import { z } from 'zod';
import { clusterTablesSchema } from '../domain/exposure-clusters';
import { cohortTotalsPairSchema, metricTotalsSchema } from './http';

/** Longest range one request may ask for: the retention (35 days by default) with room to spare. */
export const MAX_HISTORY_DAYS = 92;
export const HISTORY_BUCKETS = ['day'] as const;

const isoDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a UTC date YYYY-MM-DD')
  .refine((value) => !Number.isNaN(Date.parse(`${value}T00:00:00Z`)) && new Date(`${value}T00:00:00Z`).toISOString().startsWith(value), 'not a calendar date');

export const metricsHistoryQuerySchema = z
  .strictObject({
    from: isoDay,
    to: isoDay,
    bucket: z.enum(HISTORY_BUCKETS, 'bucket must be "day"').default('day'),
    /** `clusters`: each day also carries the fleet's per-cluster tables (larger answers; the Month-1 review asks) */
    include: z.enum(['clusters'], 'include must be "clusters"').optional(),
  })
  .superRefine((query, ctx) => {
    const days = (Date.parse(`${query.to}T00:00:00Z`) - Date.parse(`${query.from}T00:00:00Z`)) / 86_400_000;
    if (days < 1) ctx.addIssue({ code: 'custom', path: ['to'], message: '`to` must be after `from` (the range is [from, to))' });
    if (days > MAX_HISTORY_DAYS) ctx.addIssue({ code: 'custom', path: ['to'], message: `at most ${MAX_HISTORY_DAYS} days per request` });
  });
export type MetricsHistoryQuery = z.infer<typeof metricsHistoryQuerySchema>;

export const metricsHistoryDaySchema = z.object({
  day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  /** instances (and process incarnations) that recorded counts that day */
  instances: z.number().int().nonnegative(),
  incarnations: z.number().int().nonnegative(),
  /** counter increases during the day, summed across instances */
  totals: metricTotalsSchema,
  /**
   * the same per cohort (treatment: scopes exposed to Context7; control: the rest), from the rows that carry them
   * (rows written before the service measured cohorts do not); absent when no row of the day did
   */
  cohorts: cohortTotalsPairSchema.optional(),
  /**
   * with include=clusters: the day's per-cluster tables summed across instances (columnar like /api/metrics/memory's
   * `clusters`, without latency sketches); absent for days no instance recorded them
   */
  clusters: clusterTablesSchema.optional(),
});

export const metricsHistoryResponseSchema = z.object({
  bucket: z.enum(HISTORY_BUCKETS),
  from: z.string(),
  to: z.string(),
  /** how often each instance records its counters, and how long rows are kept */
  intervalMs: z.number().int().positive(),
  retentionDays: z.number().int().positive(),
  days: z.array(metricsHistoryDaySchema),
});
export type MetricsHistoryResponse = z.infer<typeof metricsHistoryResponseSchema>;
