/**
 * The part of a canary report other tools rely on: infra's production guard reads it to allow
 * turning the flag on only for a commit whose staging canary passed.
 */
import { z } from 'zod';
import { RENDER_PLATFORM_KINDS } from '../render/platform';
import { isValidExposurePercent } from '../service/domain/exposure';

/**
 * aborted_store_failing: stopped because the local store failed; the flag was left as it was. would_roll_back: a dry
 * run decided to roll back; nothing was done.
 */
export const CANARY_OUTCOMES = ['promoted', 'signed_off', 'rolled_back', 'held', 'aborted', 'rollback_unverified', 'aborted_store_failing', 'would_roll_back'] as const;
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
   * Progressive exposure: the highest percentage of scopes a stepped canary judged good (advanced from, or
   * promoted at); 0 when it judged none. Absent in reports of runs that judged the flag as a whole, which exposed
   * every scope. The production guard never lets exposure go past it (infra/guards.ts).
   */
  exposureReachedPercent: z
    .number()
    .refine(isValidExposurePercent, { error: 'must be a percentage from 0 to 100 in steps of 0.01' })
    .optional(),
  /**
   * Where the run was measured: Render's own API, an emulator (the local platform), or no Render API at all
   * (render/platform.ts). The production guard refuses an emulator's staging report for a production stack
   * that targets Render. Absent in reports written before it was recorded.
   */
  measuredOnKind: z.enum(RENDER_PLATFORM_KINDS).optional(),
});
export type CanaryReportSummary = z.infer<typeof canaryReportSummarySchema>;

/** A staging report that authorises turning the flag on in production for `commit`. */
export function stagingRunAuthorises(summary: CanaryReportSummary, commit: string): boolean {
  return summary.stack === 'staging' && summary.outcome === 'promoted' && summary.deployId === commit;
}

/** A report judged the flag as a whole before progressive exposure: with the flag on, every scope was exposed. */
export const WHOLE_FLAG_EXPOSURE_PERCENT = 100;

/** The exposure percentage a run judged: what it reached, or every scope for a run without exposure steps. */
export function judgedExposurePercent(summary: CanaryReportSummary): number {
  return summary.exposureReachedPercent ?? WHOLE_FLAG_EXPOSURE_PERCENT;
}

/**
 * Which kind of canary wrote a staging report, in words the production guard prints: a stepped run (exposure
 * steps, `exposureReachedPercent` recorded) or a whole-flag run (`canary run`, every scope exposed at once).
 */
export function describeReportKind(summary: CanaryReportSummary): string {
  return summary.exposureReachedPercent === undefined
    ? `a whole-flag report (canary run: the flag judged as a whole, ${WHOLE_FLAG_EXPOSURE_PERCENT} % of scopes)`
    : `a stepped report (canary stepped: exposure reached ${summary.exposureReachedPercent} %)`;
}
