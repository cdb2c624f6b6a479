/**
 * The stepped canary's decision at one step (progressive exposure): a pure function of the policy and the step's
 * observations (no I/O, no clock). The live controller calls it at every poll with every observation of the step
 * so far, in time order, and acts on the answer.
 */
import type { CohortFigures, CohortTotals } from '../../service/contracts/http';
import { COHORTS } from '../../service/domain/exposure';
import { zeroCounts, type Counts } from '../analysis/counters';
import { judgeMetric, verdictOf, type MetricJudgement } from '../analysis/judge';
import { wilsonInterval } from '../analysis/stats';
import { activeCheckpoint, type CanaryPolicy, type ComparedFigure, type ExposureStep } from '../policy';
import { alphaForLook, comparedFigures, compareLatency, compareRate, type LatencyBins, type RateFigure } from './compare';
import { replayClustered } from './clustered-step';
import type { CohortComparison, CohortObservation, StepDecision } from './types';

/** One cohort's figures over a window: the difference of two cumulative snapshots. */
export interface CohortWindow {
  totals: CohortTotals;
  latencyBins: LatencyBins;
}

/** The runbook thresholds judged on the treatment's own figures (what the cohort totals can say). */
const ABSOLUTE_METRICS = ['errorRate', 'fallbackRate', 'avgLatencyMs'] as const;

/**
 * The decision at the latest observation of step `stepIndex`:
 * - abort: the control's 5xx rate is significantly above `exposure.abortIfControl` (the control reads the local
 *   store, never Context7: the store or the service is broken, and turning Context7 off cannot fix it). Wins.
 * - rollback: the treatment significantly breaches a threshold in force (checkpoints' rollbackIf), or is
 *   significantly worse than the control on a compared figure: by default scope-clustered and anytime-valid
 *   (clustered-step.ts: always-valid p over every look so far), or per request with alpha spent per look
 *   (comparison.method per-request, or observations without cluster tables).
 * - hold, final: a sample-ratio mismatch (never promotes), no traffic at the planned length, or too little data
 *   after the one extension (clustered method).
 * - advance (promote after the last step): the step's analysis time has passed, each cohort has the step's
 *   minimum sample (the control's is waived at 100%: there is none), every compared figure was tested at a look of
 *   this step and no threshold is in doubt.
 * - hold: otherwise (too early, too few samples, the fleet not yet at the step's percentage, a threshold in doubt).
 */
export function analyzeStep(policy: CanaryPolicy, stepIndex: number, observations: CohortObservation[]): StepDecision {
  const steps = policy.exposure.steps;
  const step = steps[stepIndex];
  if (!step) throw new RangeError(`step ${stepIndex} does not exist: the policy has ${steps.length} steps`);
  for (let i = 1; i < observations.length; i++) {
    if (observations[i]!.atSeconds < observations[i - 1]!.atSeconds) {
      throw new RangeError(`observations must be in time order (${observations[i]!.atSeconds}s after ${observations[i - 1]!.atSeconds}s)`);
    }
  }
  const decide = (kind: StepDecision['kind'], reason: string, comparisons: CohortComparison[] = []): StepDecision => ({
    kind,
    stepIndex,
    percent: step.percent,
    reason,
    comparisons,
    look: Math.max(0, observations.length - 1),
  });
  const latest = observations[observations.length - 1];
  if (!latest || observations.length < 2) return decide('hold', 'the step has no window yet: its first observation is the baseline');

  const window = windowAt(observations, observations.length - 1, step);
  if (!window) {
    const why = latest.exposure.percent !== step.percent
      ? `the fleet reports ${latest.exposure.percent}% exposed, the step is ${step.percent}%: waiting for the change to reach every instance`
      : `no window at ${step.percent}% before this observation (the counters were reset by a restart or a new deploy, or the fleet only now applies ${step.percent}%): the window starts here`;
    return decide('hold', why);
  }

  const controlBroken = judgeControl(policy, window.control);
  const absolute = judgeTreatment(policy, window.treatment, latest.atSeconds);
  const comparing = step.percent < 100;
  const clustered = comparing && policy.exposure.comparison.method === 'clustered'
    ? replayClustered(policy, step, observations, (index) => windowBaseline(observations, index, step))
    : null;
  const looks = clustered
    ? { latest: clustered.latest, tested: clustered.tested }
    : comparing ? replayLooks(policy, step, observations) : { latest: [], perLook: [], tested: new Set<ComparedFigure>() };
  const comparisons = looks.latest;
  const extras = clustered ? { plan: clustered.plan, ...(clustered.sampleRatio ? { sampleRatio: pick(clustered.sampleRatio) } : {}), ...(clustered.ab ? { abResults: clustered.ab } : {}) } : {};
  const decideWith = (kind: StepDecision['kind'], reason: string, final = false): StepDecision => ({ ...decide(kind, reason, comparisons), ...extras, ...(final ? { final } : {}) });

  if (controlBroken.verdict === 'fail') {
    return decideWith('abort', `the control itself is failing (5xx ${controlBroken.reason}): not a Context7 fault, turning it off cannot fix it`);
  }
  const breaches = absolute.filter((j) => j.verdict === 'fail');
  if (breaches.length > 0) {
    const parts = breaches.map((j) => `treatment ${j.metric} breaches its threshold: ${j.reason}`);
    const worse = comparisons.filter((c) => c.verdict === 'worse').map((c) => `treatment ${c.figure} is worse than the control: ${c.reason}`);
    return decideWith('rollback', [...parts, ...worse].join('; '));
  }
  // A mismatch makes every comparison on these cohorts suspect: hold (never promote, never roll back on them).
  if (clustered?.sampleRatio && !clustered.sampleRatio.ok) return decideWith('hold', clustered.sampleRatio.reason, true);
  const worse = comparisons.filter((c) => c.verdict === 'worse');
  if (worse.length > 0) {
    return decideWith('rollback', worse.map((c) => `treatment ${c.figure} is worse than the control: ${c.reason}`).join('; '));
  }

  const elapsed = latest.atSeconds - observations[0]!.atSeconds;
  const waiting: string[] = [];
  if (clustered) {
    const plan = clustered.plan;
    const length = plan.extendedTo ?? plan.lengthSeconds;
    const requests = clustered.windowRequests;
    const noTraffic = requests.treatment + requests.control === 0;
    if (elapsed >= plan.lengthSeconds && noTraffic) {
      return decideWith('hold', `no traffic: 0 memory requests in either cohort over ${elapsed.toFixed(0)}s at ${step.percent}%; nothing was judged, and no traffic is never read as healthy`, true);
    }
    const short = COHORTS.filter((cohort) => !(cohort === 'control' && step.percent === 100) && requests[cohort] < step.minimumSamplesPerCohort);
    if (elapsed >= plan.lengthSeconds && short.length > 0 && (plan.extendedTo === undefined || elapsed >= plan.extendedTo)) {
      const have = short.map((cohort) => `${cohort} ${requests[cohort]}`).join(', ');
      const why = plan.extendedTo === undefined || plan.extendedTo <= plan.lengthSeconds
        ? `the minimum sample (${step.minimumSamplesPerCohort} per cohort) cannot be reached within the bound ${plan.boundSeconds}s at this traffic`
        : `still short of the minimum sample (${step.minimumSamplesPerCohort} per cohort) after the one extension to ${plan.extendedTo}s`;
      return decideWith('hold', `insufficient data: ${have} requests; ${why}; nothing was judged healthy`, true);
    }
    if (noTraffic) waiting.push('no traffic in the window yet');
    if (elapsed < length) waiting.push(`${elapsed.toFixed(0)}s of ${length}s analysed (${plan.extendedTo ? `extended once from ${plan.lengthSeconds}s for too little data; ` : ''}${plan.reason})`);
  } else if (elapsed < step.analysisSeconds) {
    waiting.push(`${elapsed.toFixed(0)}s of ${step.analysisSeconds}s analysed`);
  }
  for (const cohort of COHORTS) {
    if (cohort === 'control' && step.percent === 100) continue;
    const n = window[cohort].totals.requests;
    if (n < step.minimumSamplesPerCohort) waiting.push(`${cohort} has ${n} requests in the window, needs ${step.minimumSamplesPerCohort}`);
  }
  for (const doubt of absolute.filter((j) => j.verdict === 'inconclusive')) waiting.push(`treatment ${doubt.metric}: ${doubt.reason}`);
  if (comparing) {
    for (const figure of comparedFigures(policy.exposure.comparison)) {
      if (!looks.tested.has(figure)) waiting.push(`${figure} not yet compared with enough samples${clustered ? '' : ' at a look that had alpha to spend'}`);
    }
  }
  if (waiting.length > 0) return decideWith('hold', waiting.join('; '));

  const belowPower = clustered && /below the target power/.test(clustered.plan.reason) ? `; below the target power (${clustered.plan.reason})` : '';
  const method = clustered ? `scope-clustered, anytime-valid${belowPower}` : 'per-request';
  const judged = comparing ? `no threshold breached, the treatment not worse than the control (${method})` : 'no threshold breached (no control at 100%)';
  if (stepIndex === steps.length - 1) return decideWith('promote', `last step (${step.percent}%) passed: ${judged}`);
  return decideWith('advance', `${step.percent}% passed: ${judged}; next ${steps[stepIndex + 1]!.percent}%`);
}

function pick(check: { ok: boolean; pValue: number; reason: string }): { ok: boolean; pValue: number; reason: string } {
  return { ok: check.ok, pValue: check.pValue, reason: check.reason };
}

/**
 * The window at observation `index`: from the first observation after the last counter reset (or deploy change)
 * that applies the step's percentage, to `index`. Undefined while there is none before `index`, or when the
 * observation at `index` does not apply the step's percentage.
 */
export function windowAt(observations: CohortObservation[], index: number, step: ExposureStep): { treatment: CohortWindow; control: CohortWindow } | undefined {
  const baseline = windowBaseline(observations, index, step);
  if (baseline === undefined) return undefined;
  const current = observations[index]!;
  const from = observations[baseline]!;
  return { treatment: difference(current.treatment, from.treatment), control: difference(current.control, from.control) };
}

/** The index of the window's baseline for the look at `index` (see windowAt), or undefined. */
export function windowBaseline(observations: CohortObservation[], index: number, step: ExposureStep): number | undefined {
  const current = observations[index]!;
  if (current.exposure.percent !== step.percent) return undefined;
  let start = 0;
  for (let i = 1; i <= index; i++) if (wasReset(observations[i - 1]!, observations[i]!)) start = i;
  let baseline = start;
  while (baseline < index && observations[baseline]!.exposure.percent !== step.percent) baseline++;
  return baseline >= index ? undefined : baseline;
}

/**
 * wasReset of each observation against the one before it, kept per observation object (observations are never
 * changed once made): the controller's analysis at every poll, and each replay's look, asks again for every pair
 * before it.
 */
const resetMemo = new WeakMap<CohortObservation, { earlier: CohortObservation; reset: boolean }>();

function wasReset(earlier: CohortObservation, later: CohortObservation): boolean {
  const known = resetMemo.get(later);
  if (known?.earlier === earlier) return known.reset;
  const reset = countersWentDown(earlier, later);
  resetMemo.set(later, { earlier, reset });
  return reset;
}

function countersWentDown(earlier: CohortObservation, later: CohortObservation): boolean {
  if (earlier.deployId !== later.deployId) return true;
  return COHORTS.some((cohort) => {
    const before = earlier[cohort];
    const after = later[cohort];
    const totalsDown = (Object.keys(before.totals) as (keyof CohortTotals)[]).some((key) => after.totals[key] < before.totals[key]);
    const binsDown = Object.entries(before.latencyBins).some(([bin, count]) => (after.latencyBins[bin] ?? 0) < count);
    return totalsDown || binsDown;
  });
}

function difference(later: CohortFigures, earlier: CohortFigures): CohortWindow {
  const totals = { ...later.totals };
  for (const key of Object.keys(totals) as (keyof CohortTotals)[]) totals[key] = later.totals[key] - (earlier.totals[key] ?? 0);
  const latencyBins: LatencyBins = {};
  for (const [bin, count] of Object.entries(later.latencyBins)) {
    const delta = count - (earlier.latencyBins[bin] ?? 0);
    if (delta > 0) latencyBins[bin] = delta;
  }
  return { totals, latencyBins };
}

/**
 * The cohort's figures in the canary's counters, for the runbook judgement: fallbacks over reads (the runbook's
 * fallback rate is per snippet read), Context7 errors over calls, and the request latency at the HTTP edge (it
 * includes the Context7 call, so a call-latency breach is an edge breach too; the edge is the stricter reading).
 */
export function cohortCounts(window: CohortWindow): Counts {
  const t = window.totals;
  return {
    ...zeroCounts(),
    requests: t.reads,
    fallbacks: t.fallbacks,
    context7Requests: t.context7Requests,
    context7Errors: t.context7Errors,
    latencyMsSum: t.latencyMsSum,
    latencyCount: t.latencyCount,
  };
}

function judgeTreatment(policy: CanaryPolicy, treatment: CohortWindow, atSeconds: number): MetricJudgement[] {
  const bounds = activeCheckpoint(policy, atSeconds / 60).rollbackIf;
  const counts = cohortCounts(treatment);
  return ABSOLUTE_METRICS.flatMap((metric) => {
    const bound = bounds[metric];
    return bound ? [judgeMetric(metric, bound, 'breach', counts, policy)] : [];
  });
}

function judgeControl(policy: CanaryPolicy, control: CohortWindow): ReturnType<typeof verdictOf> {
  const { serverErrors, requests } = control.totals;
  const bound = policy.exposure.abortIfControl.serverErrorRate;
  if (serverErrors < 0 || serverErrors > requests) return { verdict: 'inconclusive', reason: 'inconsistent counters in this window' };
  const interval = wilsonInterval(serverErrors, requests, policy.confidence);
  return verdictOf({ value: interval.estimate, lower: interval.lower, upper: interval.upper, sample: requests, minimumSample: policy.minimumSample.memoryRequests }, bound, 'breach');
}

interface LookResult {
  comparison: CohortComparison;
  /** both cohorts had the minimum sample and consistent counters: this look could test the figure */
  testable: boolean;
}

/** A look's comparison of every compared figure; `previousTestable` holds each figure's last testable fraction. */
function comparisonsAt(policy: CanaryPolicy, step: ExposureStep, observations: CohortObservation[], index: number, previousTestable: Map<ComparedFigure, number>): LookResult[] {
  const comparison = policy.exposure.comparison;
  const figures = comparedFigures(comparison);
  const window = windowAt(observations, index, step);
  if (!window) return [];
  const fraction = lookFraction(observations, index, step);
  const alphaPerFigure = comparison.alpha / figures.length;
  const minimum = step.minimumSamplesPerCohort;
  return figures.map((figure): LookResult => {
    const alphaThisLook = alphaForLook(comparison, { look: index, fraction, previousFraction: previousTestable.get(figure) ?? 0 }, alphaPerFigure);
    if (figure === 'latency') {
      const result = compareLatency(window.treatment.latencyBins, window.control.latencyBins, comparison.figures.latency!, alphaThisLook, minimum);
      return { comparison: result, testable: result.treatment.n >= minimum && result.control.n >= minimum };
    }
    const treatment = proportionOf(figure, window.treatment.totals);
    const control = proportionOf(figure, window.control.totals);
    if (treatment.events > treatment.n || control.events > control.n || treatment.events < 0 || control.events < 0) {
      const inconsistent: CohortComparison = {
        figure,
        test: 'two-proportion',
        treatment: { value: Number.NaN, n: treatment.n },
        control: { value: Number.NaN, n: control.n },
        pValue: 1,
        alphaThisLook,
        verdict: 'inconclusive',
        reason: 'inconsistent counters in this window (more events than requests)',
      };
      return { comparison: inconsistent, testable: false };
    }
    const result = compareRate(figure, treatment, control, comparison.figures[figure]!.minimumDifference, alphaThisLook, minimum);
    return { comparison: result, testable: treatment.n >= minimum && control.n >= minimum };
  });
}

function lookFraction(observations: CohortObservation[], index: number, step: ExposureStep): number {
  return (observations[index]!.atSeconds - observations[0]!.atSeconds) / step.analysisSeconds;
}

function proportionOf(figure: RateFigure, totals: CohortTotals): { events: number; n: number } {
  if (figure === 'serverErrorRate') return { events: totals.serverErrors, n: totals.requests };
  if (figure === 'fallbackRate') return { events: totals.fallbacks, n: totals.reads };
  return { events: totals.context7Errors, n: totals.context7Requests };
}

/**
 * Every look of the step replayed in order: a figure's level at a look is the alpha spent since the last look at
 * which that figure could be tested (enough samples in both cohorts). Looks that cannot test spend nothing, so a
 * step that gathers its samples late still has alpha left; which looks can test depends on the request counts
 * only, never on the outcomes, so the levels still sum to at most alpha under the null.
 */
export function replayLooks(
  policy: CanaryPolicy,
  step: ExposureStep,
  observations: CohortObservation[],
): { latest: CohortComparison[]; perLook: CohortComparison[][]; tested: Set<ComparedFigure> } {
  const previousTestable = new Map<ComparedFigure, number>();
  const tested = new Set<ComparedFigure>();
  const perLook: CohortComparison[][] = [];
  for (let index = 1; index < observations.length; index++) {
    const results = comparisonsAt(policy, step, observations, index, previousTestable);
    for (const { comparison, testable } of results) {
      if (!testable) continue;
      previousTestable.set(comparison.figure, lookFraction(observations, index, step));
      if (comparison.alphaThisLook > 0) tested.add(comparison.figure);
    }
    perLook.push(results.map((result) => result.comparison));
  }
  // A look with no alpha left tests nothing new; a figure tested at the step's earlier looks and never worse there
  // stands as not worse, rather than reading as never judged.
  const latest = (perLook[perLook.length - 1] ?? []).map((comparison): CohortComparison => {
    const spent = !(comparison.alphaThisLook > 0) && comparison.verdict === 'inconclusive' && tested.has(comparison.figure);
    const everWorse = perLook.some((look) => look.some((c) => c.figure === comparison.figure && c.verdict === 'worse'));
    if (!spent || everWorse) return comparison;
    return { ...comparison, verdict: 'not_worse', reason: `${comparison.reason}; not worse at each earlier look of this step that had alpha` };
  });
  return { latest, perLook, tested };
}
