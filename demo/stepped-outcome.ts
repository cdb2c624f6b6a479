/**
 * What the demo reads from the stepped canary's report (canary/report/stepped.ts) and from its own traffic: the
 * step at which the rollout was caught, how many of the scopes that got traffic were never exposed, the kill-switch
 * and durable rollback times, and whether the control cohort stayed healthy. Pure: report JSON and counts in.
 */
import type { SteppedReport } from '../canary/report/stepped';
import { cohortOf } from '../service/domain/exposure';

export interface SteppedObservation {
  /** the policy's steps, in percent */
  steps: number[];
  /** the highest percentage the fleet applied (a step the canary set, or what the demo saw the service report) */
  highestExposurePercent: number;
  /** the highest step judged not worse than the control (the report summary's exposureReachedPercent) */
  exposureReachedPercent: number | null;
  decision: { kind: string; trigger: string; reason: string } | null;
  /** the step at which the canary rolled back (1-based) and its percentage; null when it did not */
  caughtAtStep: number | null;
  caughtAtPercent: number | null;
  /** the treatment-versus-control comparisons that found the treatment worse at that step, as the report words them */
  worseThanControl: string[];
  /** decision to exposure 0 % on every instance, and request to applied; null without a confirmed kill switch */
  killSwitchSeconds: number | null;
  killSwitchRequestSeconds: number | null;
  /** decision to the durable rollback verified (flag off, redeploy, latch, verify); null when never verified */
  rollbackSeconds: number | null;
  rollbackBudgetSeconds: number | null;
  /** scopes the demo's traffic reached, counted by hash at the highest exposure: never exposed = always control */
  scopes: { withTraffic: number; everExposed: number; neverExposed: number; neverExposedShare: number | null };
  /** the control cohort at the caught step, else at the last step reached that had one (below 100 %) */
  control: CohortHealth | null;
  /** that step's percentage */
  comparedAtPercent: number | null;
  /** the treatment at the same step, beside it */
  treatment: CohortHealth | null;
  /** the control had no 5xx answer in any step's window and the canary never aborted on it */
  controlHealthy: boolean;
}

export interface CohortHealth {
  requests: number;
  serverErrors: number;
  fallbackRate: number;
  errorRate: number;
  p50LatencyMs: number;
  p95LatencyMs: number;
}

/** The report fields the demo reads (a stepped report.json, parsed). */
export type SteppedReportView = Pick<SteppedReport, 'summary' | 'decision' | 'steps' | 'killSwitch' | 'rollbackDuration'>;

export function observeSteppedRun(report: SteppedReportView, requestsByScope: Record<string, number>, exposureSeenPercent: number): SteppedObservation {
  const stepsReached = report.steps.filter((step) => step.startedAtSeconds !== null);
  const highestExposurePercent = Math.max(exposureSeenPercent, 0, ...stepsReached.map((step) => step.percent));
  const decision = report.decision ? { kind: report.decision.kind, trigger: report.decision.trigger, reason: report.decision.reason } : null;
  const caughtIndex = report.decision?.kind === 'rollback' && report.decision.stepIndex !== undefined ? report.decision.stepIndex : null;
  const caught = caughtIndex === null ? undefined : report.steps[caughtIndex];
  // The cohorts side by side at the caught step, else at the last step that had a control (at 100 % there is none).
  const comparedStep = caught ?? stepsReached.filter((step) => step.percent < 100).at(-1);

  const withTraffic = Object.entries(requestsByScope).filter(([, requests]) => requests > 0).map(([scopeId]) => scopeId);
  // Exposure is monotonic in the percentage: a scope outside the highest percentage applied was never exposed.
  const everExposed = withTraffic.filter((scopeId) => cohortOf(scopeId, highestExposurePercent) === 'treatment').length;
  const neverExposed = withTraffic.length - everExposed;

  const health = (cohort: 'treatment' | 'control'): CohortHealth | null => {
    const figures = comparedStep?.cohorts?.[cohort];
    if (!figures) return null;
    return {
      requests: figures.totals.requests,
      serverErrors: figures.totals.serverErrors,
      fallbackRate: figures.fallbackRate,
      errorRate: figures.errorRate,
      p50LatencyMs: figures.p50LatencyMs,
      p95LatencyMs: figures.p95LatencyMs,
    };
  };
  const controlWindows = stepsReached.flatMap((step) => (step.cohorts && step.percent < 100 ? [step.cohorts.control] : []));
  return {
    steps: report.steps.map((step) => step.percent),
    highestExposurePercent,
    exposureReachedPercent: report.summary.exposureReachedPercent ?? null,
    decision,
    caughtAtStep: caughtIndex === null ? null : caughtIndex + 1,
    caughtAtPercent: caught?.percent ?? null,
    worseThanControl: (caught?.lastDecision?.comparisons ?? []).filter((c) => c.verdict === 'worse').map((c) => `${c.figure}: ${c.reason}`),
    killSwitchSeconds: report.killSwitch?.secondsFromDecision ?? null,
    killSwitchRequestSeconds: report.killSwitch?.secondsFromRequest ?? null,
    rollbackSeconds: report.rollbackDuration?.seconds ?? null,
    rollbackBudgetSeconds: report.rollbackDuration?.budgetSeconds ?? null,
    scopes: { withTraffic: withTraffic.length, everExposed, neverExposed, neverExposedShare: withTraffic.length ? neverExposed / withTraffic.length : null },
    control: health('control'),
    comparedAtPercent: comparedStep?.percent ?? null,
    treatment: health('treatment'),
    controlHealthy: controlWindows.length > 0 && controlWindows.every((c) => c.totals.serverErrors === 0) && report.decision?.kind !== 'abort',
  };
}
