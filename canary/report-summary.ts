/**
 * The part of a canary report other tools rely on: infra's production guard reads it to allow
 * turning the flag on only for a commit whose staging canary passed.
 */
import { z } from 'zod';

/** aborted_store_failing: stopped because the local store failed; the flag was left as it was. */
export const CANARY_OUTCOMES = ['promoted', 'signed_off', 'rolled_back', 'held', 'aborted', 'rollback_unverified', 'aborted_store_failing'] as const;
export type CanaryOutcome = (typeof CANARY_OUTCOMES)[number];

export const canaryReportSummarySchema = z.object({
  schemaVersion: z.literal(1),
  stack: z.enum(['staging', 'production']),
  /** The deploy under analysis: the git commit (RENDER_GIT_COMMIT) the service reported as deployId. */
  deployId: z.string().min(1),
  serviceId: z.string().nullable(),
  outcome: z.enum(CANARY_OUTCOMES),
  startedAt: z.string().datetime(),
  finishedAt: z.string().datetime(),
  /**
   * Stepped canary only (canary/exposure/): the highest exposure percentage the canary judged good (advanced
   * from, or promoted at); 0 when it judged none. The staging stack carries a promoted run's value
   * (memory-rollout exposure), so `pulumi up` never raises exposure past what a canary judged.
   */
  exposureReachedPercent: z.number().min(0).max(100).optional(),
});
export type CanaryReportSummary = z.infer<typeof canaryReportSummarySchema>;

/** A staging report that authorises turning the flag on in production for `commit`. */
export function stagingRunAuthorises(summary: CanaryReportSummary, commit: string): boolean {
  return summary.stack === 'staging' && summary.outcome === 'promoted' && summary.deployId === commit;
}
