/**
 * Recorded metric timelines: a hand-made corpus case (canary/timelines/*.json, with its expected
 * decision) or a canary run's report.json. Both carry the raw measurements the analysis judges.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { measurementSchema, type Measurement } from './analysis/measurement';
import { parsePolicy, type CanaryPolicy } from './policy';

export const expectedSchema = z.object({
  decision: z.enum(['rollback', 'promote', 'hold', 'abort']),
  trigger: z.enum(['breach', 'store_errors', 'service_down', 'never_reached', 'immediate_checks', 'checkpoint', 'end', 'measurement_errors', 'logs', 'platform']).optional(),
  /** when the regression truly began (policy minutes): the bench measures detection delay from it */
  breachOnsetMinute: z.number().nonnegative().optional(),
  /** the latest minute by which the decision must have been taken */
  decidedByMinute: z.number().nonnegative().optional(),
});
export type ExpectedDecision = z.infer<typeof expectedSchema>;

export const timelineSchema = z.object({
  name: z.string().min(1),
  description: z.string().optional(),
  deployId: z.string().min(1).optional(),
  /** the poll interval the timeline was recorded at, in policy seconds */
  pollIntervalSeconds: z.number().positive().optional(),
  /** healthy timelines count towards the bench's false-rollback figure */
  healthy: z.boolean().optional(),
  expected: expectedSchema.optional(),
  measurements: z.array(measurementSchema),
});
export type Timeline = z.infer<typeof timelineSchema> & {
  /** a canary report's own policy: replay judges it with that policy unless told otherwise */
  policy?: CanaryPolicy;
};

export class TimelineError extends Error {
  readonly exitCode = 64;
}

/** Reads a corpus timeline or a canary report.json (its `deployId` and `measurements`). */
export function loadTimeline(path: string): Timeline {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TimelineError(`cannot read timeline ${path}: ${(error as Error).message}`);
  }
  const candidate = isReport(raw) ? { name: path, deployId: raw.summary?.deployId, measurements: raw.measurements } : raw;
  const parsed = timelineSchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TimelineError(`invalid timeline ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  if (isReport(raw) && raw.policy !== undefined) {
    // Validated like a policy file, so a tampered or truncated report cannot judge with nonsense.
    return { ...parsed.data, policy: parsePolicy(JSON.stringify(raw.policy), `${path} (its policy)`) };
  }
  return parsed.data;
}

function isReport(raw: unknown): raw is { summary?: { deployId?: string }; measurements: Measurement[]; policy?: unknown } {
  return typeof raw === 'object' && raw !== null && 'summary' in raw && 'measurements' in raw;
}
