/**
 * The stepped canary's boundary (progressive exposure): the live controller observes cohorts and acts; the pure
 * analysis (canary/exposure/analyze-step.ts) decides from policy and observations alone.
 */
import type { CohortFigures, ExposureSummary } from '../../service/contracts/http';
import type { ClusterTables } from '../../service/domain/exposure-clusters';

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
  /** cumulative per-cluster tables (service/domain/exposure-clusters.ts), fleet-wide; absent from older services */
  clusters?: ClusterTables;
  /**
   * CUPED's covariate, read before the step started (on the step's first observation): each cluster's figures
   * from the persisted metrics history; absent, the counters since the instances started
   */
  preExposure?: PreExposure;
}

/** Where a step's pre-exposure covariate came from (canary/exposure/pre-exposure.ts reads it at the edge). */
export interface PreExposure {
  /** history: the metrics history's per-cluster days; counters: the counters since the instances started */
  source: 'history' | 'counters';
  /** the window's per-cluster tables summed over its days (source history); only control and off slots are read */
  clusters?: ClusterTables;
  /** [from, to) in UTC days (source history) */
  from?: string;
  to?: string;
  /** said in the decision and the report: the window read, or why it fell back */
  note: string;
}

export type StepDecisionKind = 'advance' | 'hold' | 'rollback' | 'promote' | 'abort';

/** A comparison of the treatment against the control on one figure. */
export interface CohortComparison {
  figure: 'serverErrorRate' | 'fallbackRate' | 'errorRate' | 'latency';
  /**
   * per-request tests (today's, kept for services without cluster tables): two-proportion, mann-whitney;
   * scope-clustered anytime-valid tests (clustered.ts): clustered-ratio (a rate), clustered-mean (latency),
   * event-split (a rate with few events: exact)
   */
  test: 'two-proportion' | 'mann-whitney' | 'clustered-ratio' | 'clustered-mean' | 'event-split';
  treatment: { value: number; n: number };
  control: { value: number; n: number };
  /** one-sided: the treatment is worse than the control */
  pValue: number;
  /**
   * the significance level this look used: per-request tests, the alpha spent since the previous look; clustered
   * tests, the figure's whole alpha (their p-value is always valid: 1 / the largest evidence of any look so far)
   */
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
  /** a hold that ends the step (sample-ratio mismatch, no traffic, too little data after the one extension) */
  final?: boolean;
  /** clustered analysis: the step's plan (length, smallest detectable regressions), its exposure check and A/B figures */
  plan?: StepPlan;
  sampleRatio?: { ok: boolean; pValue: number; reason: string };
  abResults?: AbResults;
}

/** The smallest regression a step can detect (80 % power by default) at lengths up to its bound, and its length. */
export interface StepPlan {
  /** the step's length after power lengthening and the data-sufficiency extension (policy seconds) */
  lengthSeconds: number;
  boundSeconds: number;
  /** from the step's first look: smallest true increase detectable at each candidate length */
  detectable: { seconds: number; serverErrorRate?: number; latencyMs?: number }[];
  /** the one extension for data sufficiency, once decided */
  extendedTo?: number;
  reason: string;
  /** CUPED's covariate: the persisted history's window, or the counters since start and why */
  covariate?: string;
}

/** Month 1's A/B figures per cohort over a window: reported, never acted on. */
export interface AbFigure {
  estimate: number;
  lower: number;
  upper: number;
  clusters: number;
  /** denominator total (reads) */
  reads: number;
}
export interface AbResults {
  treatment: AbCohort;
  control: AbCohort;
  pricePerCall: number;
  currency: string;
}
export interface AbCohort {
  snippetsPerRead: AbFigure;
  readsWithSnippetShare: AbFigure;
  context7CallsPerRead: AbFigure;
  /** context7CallsPerRead times the price per call */
  costPerThousandReads: { estimate: number; lower: number; upper: number };
}
