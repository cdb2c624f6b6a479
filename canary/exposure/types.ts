/**
 * The stepped canary's boundary (progressive exposure): the live controller observes cohorts and acts; the pure
 * analysis (canary/exposure/analyze-step.ts) decides from policy and observations alone.
 */
import type { CohortFigures, ExposureSummary } from '../../service/contracts/http';

/** One observation of the service's per-cohort figures (`/api/metrics/memory`, fleet-wide where available). */
export interface CohortObservation {
  /** seconds since the stepped canary started (policy time) */
  atSeconds: number;
  /** the exposure the fleet reported applying (every instance seen) */
  exposure: ExposureSummary;
  /** cumulative cohort figures, as reported; the analysis diffs them from the step's first observation */
  treatment: CohortFigures;
  control: CohortFigures;
  /** the runbook's absolute figures for the treatment, as today's analysis reads them (`totals` et al.) */
  deployId: string;
  instancesSeen: string[];
}

export type StepDecisionKind = 'advance' | 'hold' | 'rollback' | 'promote' | 'abort';

/** A comparison of the treatment against the control on one figure. */
export interface CohortComparison {
  figure: 'serverErrorRate' | 'fallbackRate' | 'errorRate' | 'latency';
  test: 'two-proportion' | 'mann-whitney';
  treatment: { value: number; n: number };
  control: { value: number; n: number };
  /** one-sided: the treatment is worse than the control */
  pValue: number;
  /** the significance level this look used (alpha spent across looks, see the policy's comparison) */
  alphaThisLook: number;
  verdict: 'worse' | 'not_worse' | 'inconclusive';
  reason: string;
}

export interface StepDecision {
  kind: StepDecisionKind;
  /** the step this decision is about (index into policy.exposure.steps) */
  stepIndex: number;
  percent: number;
  reason: string;
  comparisons: CohortComparison[];
  /** which look at this step this was (1-based), for the alpha spending */
  look: number;
}
