/** Validates summary files read from disk (baselines, k6 output) before anything trusts them. */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SUMMARY_FORMAT, type LoadSummary } from '../lib/summary';

const latency = z.object({
  avg: z.number().nonnegative(),
  min: z.number().nonnegative(),
  p50: z.number().nonnegative(),
  p90: z.number().nonnegative(),
  p95: z.number().nonnegative(),
  p99: z.number().nonnegative(),
  max: z.number().nonnegative(),
});
const stats = z.object({
  requests: z.number().int().nonnegative(),
  errorRate: z.number().min(0).max(1),
  checksPassRate: z.number().min(0).max(1),
  latencyMs: latency,
});
const endpointNames = z.enum(['snippets', 'patterns', 'health', 'config', 'metrics']);

export const loadSummarySchema = stats.extend({
  format: z.literal(SUMMARY_FORMAT),
  tool: z.enum(['k6', 'autocannon']),
  scenario: z.string().min(1),
  target: z.string().min(1),
  startedAt: z.string().nullable(),
  durationSeconds: z.number().nonnegative(),
  throughputRps: z.number().nonnegative(),
  endpoints: z.partialRecord(endpointNames, stats),
  thresholds: z.array(z.object({ metric: z.string(), expression: z.string(), ok: z.boolean(), actual: z.number().optional() })),
  thresholdsOk: z.boolean(),
  thresholdsSource: z.string(),
  breakpoint: z
    .object({
      sustainableRatePerSecond: z.number().nullable(),
      brokeAtRatePerSecond: z.number().nullable(),
      minRequestsPerStep: z.number(),
      steps: z.array(stats.extend({ rate: z.number(), thresholdsOk: z.boolean(), seconds: z.number().nonnegative().optional(), achievedRatePerSecond: z.number().nonnegative().optional() })),
    })
    .optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  offered: z
    .object({
      model: z.enum(['open', 'closed']),
      ratePerSecond: z.number().positive().optional(),
      profile: z.string().optional(),
      connections: z.number().int().positive().optional(),
      plannedDurationSeconds: z.number().nonnegative(),
    })
    .optional(),
  traffic: z.object({ seed: z.number(), runNonce: z.string().min(1), scopePrefix: z.string() }).optional(),
  rateLimited: z.number().int().nonnegative().optional(),
  iterations: z.number().int().nonnegative().optional(),
  droppedIterations: z.number().int().nonnegative().optional(),
  stages: z
    .array(
      stats.extend({
        stage: z.number().int().positive(),
        fromRatePerSecond: z.number().nonnegative(),
        toRatePerSecond: z.number().nonnegative(),
        seconds: z.number().nonnegative(),
        secondsRun: z.number().nonnegative(),
        achievedRatePerSecond: z.number().nonnegative(),
      }),
    )
    .optional(),
  machine: z
    .object({ cores: z.number().optional(), cpuModel: z.string().optional(), loadAverage1mAtStart: z.number().optional(), loadAverage1mAtEnd: z.number().optional(), node: z.string().optional() })
    .optional(),
  run: z
    .object({
      outcome: z.enum(['completed', 'interrupted', 'aborted_by_threshold', 'aborted', 'failed']),
      exitCode: z.number().int().nullable(),
      plannedDurationSeconds: z.number().nonnegative(),
      actualDurationSeconds: z.number().nonnegative(),
    })
    .optional(),
});

export class SummaryFileError extends Error {
  override name = 'SummaryFileError';
}

export function readSummaryFile(path: string): LoadSummary {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SummaryFileError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SummaryFileError(`${path} is not JSON`);
  }
  const parsed = loadSummarySchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new SummaryFileError(`${path} is not a ${SUMMARY_FORMAT} summary: ${problems.join('; ')}`);
  }
  return parsed.data as LoadSummary;
}
