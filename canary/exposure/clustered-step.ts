/**
 * A step's looks replayed with the scope-clustered, anytime-valid comparisons (clustered.ts): each compared figure's
 * always-valid p-value over every look so far, the step's plan (power lengthening, the one extension for data
 * sufficiency), the sample-ratio check and the Month-1 A/B figures at the latest look. Pure.
 */
import { CLUSTER_COUNT, CLUSTER_FIELD_COUNT, CLUSTER_FIELD_INDEX, CLUSTER_SIZE, type ClusterField, type ClusterTables } from '../../service/domain/exposure-clusters';
import type { CanaryPolicy, ComparedFigure, ExposureStep } from '../policy';
import {
  clusteredDifference,
  clusterWindow,
  denseOf,
  designEffect,
  eventSplitEvidence,
  eventSplitNeeded,
  overdispersedAtLeast,
  mixtureBoundary,
  mixtureEvidence,
  mixtureTuning,
  powerQuantile,
  ratioEstimate,
  ratioInterval,
  sampleOf,
  sampleRatioCheck,
  type ClusterSample,
  type ClusterWindow,
  type SampleRatioCheck,
} from './clustered';
import { comparedFigures } from './compare';
import type { AbCohort, AbResults, CohortComparison, CohortObservation, PreExposure, StepPlan } from './types';

/** Below this many expected treatment events (or non-events) at the pooled rate, a rate is tested exactly. */
export const FEW_EVENTS = 5;
/** Observed events in each cohort from which the normal regime is read too, when few are expected. */
export const NORMAL_TOO_EVENTS = 10;

const RATE_FIELDS: Record<Exclude<ComparedFigure, 'latency'>, { events: ClusterField; n: ClusterField }> = {
  serverErrorRate: { events: 'serverErrors', n: 'requests' },
  fallbackRate: { events: 'fallbacks', n: 'reads' },
  errorRate: { events: 'context7Errors', n: 'context7Calls' },
};

/** The step's baseline for the look at `index` (see analyze-step.ts windowAt); undefined when there is none. */
export type BaselineOf = (index: number) => number | undefined;

export interface ClusteredReplay {
  latest: CohortComparison[];
  /** figures tested at some look with both cohorts at the minimum sample */
  tested: Set<ComparedFigure>;
  plan: StepPlan;
  sampleRatio: SampleRatioCheck | null;
  ab: AbResults | null;
  /** requests in the latest window, both cohorts */
  windowRequests: { treatment: number; control: number };
}

/** The step's bound: the policy's maxAnalysisSeconds, by default 3 x analysisSeconds. */
export function stepBound(step: ExposureStep): number {
  return Math.max(step.analysisSeconds, step.maxAnalysisSeconds ?? 3 * step.analysisSeconds);
}

/**
 * Every look of the step in order. Returns null when the step's observations carry no cluster tables (a service
 * that predates them): the caller then uses the per-request tests.
 */
export function replayClustered(
  policy: CanaryPolicy,
  step: ExposureStep,
  observations: CohortObservation[],
  baselineOf: BaselineOf,
  /** called after every look with its verdicts (a simulation reads every look of one replay) */
  onLook?: (index: number, comparisons: CohortComparison[]) => void,
): ClusteredReplay | null {
  const comparison = policy.exposure.comparison;
  const figures = comparedFigures(comparison);
  const alphaPerFigure = comparison.alpha / figures.length;
  const tuning = mixtureTuning(alphaPerFigure);
  const minimum = step.minimumSamplesPerCohort;
  const best = new Map<string, number>();
  const tested = new Set<ComparedFigure>();
  let latest: CohortComparison[] = [];
  let lastWindow: ClusterWindow | null = null;
  // The settled window is read at the last look only (sampleRatioCheck below): its tables are kept, not windowed, at each look.
  let settledTables: [ClusterTables, ClusterTables] | null = null;
  let plan: StepPlan | null = null;
  let sawClusters = false;
  let extensionDecided = false;
  const start = observations[0]!.atSeconds;
  const preExposure = observations[0]!.preExposure;
  const history = historyCovariate(preExposure);

  for (let index = 1; index < observations.length; index++) {
    const base = baselineOf(index);
    if (base === undefined) continue;
    const later = observations[index]!.clusters;
    const earlier = observations[base]!.clusters;
    if (!later || !earlier) continue;
    sawClusters = true;
    const counted = clusterWindow(later, earlier);
    if (!counted) continue;
    const w = history ? { ...counted, pre: history } : counted;
    const elapsed = observations[index]!.atSeconds - observations[base]!.atSeconds;
    plan ??= elapsed > 0 ? planStep(policy, step, w, elapsed) : null;
    lastWindow = w;
    // The later half of the step's looks, for the misassignment check (sampleRatioCheck): from look 4 on.
    const middle = Math.floor((base + index) / 2);
    settledTables = index - base >= 4 ? [later, observations[middle]!.clusters ?? earlier] : null;
    const sinceStart = observations[index]!.atSeconds - start;
    if (plan && !extensionDecided && sinceStart >= plan.lengthSeconds) {
      extensionDecided = true;
      plan = extensionAt(plan, step, windowRequestsOf(w), elapsed);
    }
    latest = figures.map((figure) => {
      const result = lookAt(figure, w, policy, minimum, tuning, alphaPerFigure, best);
      if (result.testable) tested.add(figure);
      return result.comparison;
    });
    onLook?.(index, latest);
  }
  if (!sawClusters) return null;
  const settledWindow = settledTables ? clusterWindow(...settledTables) : null;
  const sampleRatio = lastWindow ? sampleRatioCheck(lastWindow, step.percent, comparison.sampleRatioPValue, settledWindow) : null;
  const ab = lastWindow ? abResults(lastWindow, comparison.context7PricePerCall, comparison.currency) : null;
  const windowRequests = lastWindow ? windowRequestsOf(lastWindow) : { treatment: 0, control: 0 };
  const covariate = history
    ? `CUPED covariate: each cluster's unexposed figures from the metrics history, ${preExposure!.note}`
    : `CUPED covariate: the counters since the instances started${preExposure ? ` (${preExposure.note})` : ''}`;
  return {
    latest,
    tested,
    plan: { ...(plan ?? unplanned(step)), covariate },
    sampleRatio,
    ab,
    windowRequests,
  };
}

/**
 * The persisted history's covariate: each cluster's control and off figures over the window (never its treatment
 * days, so a regression already in it cannot be adjusted away); null without one.
 */
function historyCovariate(pre: PreExposure | undefined): ClusterWindow['pre'] | null {
  if (pre?.source !== 'history' || !pre.clusters) return null;
  const dense = denseOf(pre.clusters);
  const values = new Float64Array(dense.control.values.length);
  for (let i = 0; i < values.length; i++) values[i] = dense.control.values[i]! + dense.off.values[i]!;
  return { values, sketch: new Float64Array(0) };
}

function windowRequestsOf(w: ClusterWindow): { treatment: number; control: number } {
  return { treatment: ratioEstimate(sampleOf(w, 'treatment', 'requests', 'requests')).total, control: ratioEstimate(sampleOf(w, 'control', 'requests', 'requests')).total };
}

function lookAt(
  figure: ComparedFigure,
  w: ClusterWindow,
  policy: CanaryPolicy,
  minimum: number,
  tuning: number,
  alpha: number,
  best: Map<string, number>,
): { comparison: CohortComparison; testable: boolean } {
  const figures = policy.exposure.comparison.figures;
  const cupedMinimum = minimum;
  const keep = (regime: string, evidence: number) => {
    const key = `${figure}:${regime}`;
    best.set(key, Math.max(best.get(key) ?? 0, evidence));
  };
  const evidenceOf = (regime: string) => best.get(`${figure}:${regime}`) ?? 0;

  if (figure === 'latency') {
    const margin = figures.latency!;
    const t = sampleOf(w, 'treatment', 'latencyMsSum', 'requests');
    const c = sampleOf(w, 'control', 'latencyMsSum', 'requests');
    const d = clusteredDifference(t, c, { scale: 1 + margin.minimumRelativeDifference, added: margin.minimumAddedMs, cupedMinimum });
    const testable = d.treatment.total >= minimum && d.control.total >= minimum && d.treatment.clusters > 1 && d.control.clusters > 1;
    const r = tuning * (Math.min(d.treatment.total, d.control.total) / minimum);
    if (testable) keep('normal', mixtureEvidence(d.z, r));
    const pValue = Math.min(1, 1 / Math.max(1e-300, evidenceOf('normal')));
    const base = {
      figure,
      test: 'clustered-mean' as const,
      treatment: { value: d.treatment.estimate, n: d.treatment.total },
      control: { value: d.control.estimate, n: d.control.total },
      alphaThisLook: alpha,
    };
    const detail =
      `mean ${d.treatment.estimate.toFixed(0)} ms (${d.treatment.clusters} clusters) vs ${d.control.estimate.toFixed(0)} ms (${d.control.clusters}); ` +
      `margin x${(1 + margin.minimumRelativeDifference).toFixed(2)} +${margin.minimumAddedMs} ms; z = ${d.z.toFixed(2)} (cluster-robust${d.cuped ? `, CUPED -${(d.cuped.varianceReduction * 100).toFixed(0)}% variance` : ''})`;
    return { comparison: verdict(base, pValue, testable, minimum, detail), testable };
  }

  const fields = RATE_FIELDS[figure];
  const margin = figures[figure]!.minimumDifference;
  const t = sampleOf(w, 'treatment', fields.events, fields.n);
  const c = sampleOf(w, 'control', fields.events, fields.n);
  const d = clusteredDifference(t, c, { added: margin, floorRate: true, cupedMinimum });
  const nt = d.treatment.total;
  const nc = d.control.total;
  const kt = Math.round(d.treatment.estimate * nt);
  const kc = Math.round(d.control.estimate * nc);
  const pooled = (kt + kc) / Math.max(1, nt + nc);
  const few = nt * pooled < FEW_EVENTS || nt * (1 - pooled) < FEW_EVENTS;
  const testable = nt >= minimum && nc >= minimum && d.treatment.clusters > 1 && d.control.clusters > 1;
  let detail: string;
  if (few) {
    const pc = kc > 0 ? kc / nc : 0.5 / Math.max(1, nc);
    const atMargin = Math.min(1, pc + margin);
    const pi0 = (nt * atMargin) / (nt * atMargin + nc * pc);
    const deff = designEffect(c);
    if (testable) keep('exact', eventSplitEvidence(kt, kt + kc, pi0, deff));
    detail = `${pct(d.treatment.estimate)} (${kt}/${nt}) vs ${pct(d.control.estimate)} (${kc}/${nc}); exact event split: ${kt} of ${kt + kc} events in the treatment, at most ${(pi0 * 100).toFixed(1)}% under H0 (margin ${pct(margin)}), design effect ${deff.toFixed(2)}`;
    // Few expected, but enough observed in each cohort for the normal regime as well (its own half of alpha): the
    // exact split divides its evidence by the control's design effect, which heavy control scopes make large.
    if (kt >= NORMAL_TOO_EVENTS && kc >= NORMAL_TOO_EVENTS && nt - kt >= NORMAL_TOO_EVENTS) {
      const r = tuning * (Math.min(nt, nc) / minimum);
      if (testable) keep('normal', mixtureEvidence(d.z, r));
      detail += `; also z = ${d.z.toFixed(2)} (cluster-robust${d.cuped ? `, CUPED -${(d.cuped.varianceReduction * 100).toFixed(0)}% variance` : ''})`;
    }
  } else {
    const r = tuning * (Math.min(nt, nc) / minimum);
    if (testable) keep('normal', mixtureEvidence(d.z, r));
    detail =
      `${pct(d.treatment.estimate)} (${kt}/${nt}, ${d.treatment.clusters} clusters) vs ${pct(d.control.estimate)} (${kc}/${nc}, ${d.control.clusters}); ` +
      `margin ${pct(margin)}; z = ${d.z.toFixed(2)} (cluster-robust${d.cuped ? `, CUPED -${(d.cuped.varianceReduction * 100).toFixed(0)}% variance` : ''})`;
  }
  // The two regimes each get half the figure's alpha: p = 2 min(1 / their largest evidence).
  const pValue = Math.min(1, 2 / Math.max(1e-300, evidenceOf('exact'), evidenceOf('normal')));
  const base = {
    figure,
    test: few ? ('event-split' as const) : ('clustered-ratio' as const),
    treatment: { value: d.treatment.estimate, n: nt },
    control: { value: d.control.estimate, n: nc },
    alphaThisLook: alpha,
  };
  return { comparison: verdict(base, pValue, testable, minimum, detail), testable };
}

function verdict(base: Omit<CohortComparison, 'pValue' | 'verdict' | 'reason'>, pValue: number, testable: boolean, minimum: number, detail: string): CohortComparison {
  const level = `always-valid p = ${pValue.toPrecision(3)} vs alpha ${base.alphaThisLook.toPrecision(3)}`;
  if (pValue <= base.alphaThisLook) return { ...base, pValue, verdict: 'worse', reason: `${detail}; ${level}` };
  if (!testable) return { ...base, pValue, verdict: 'inconclusive', reason: `too few samples: treatment ${base.treatment.n}, control ${base.control.n}, minimum ${minimum} each (and 2 clusters); ${detail}` };
  return { ...base, pValue, verdict: 'not_worse', reason: `${detail}; ${level}` };
}

/**
 * The smallest true increase each figure can detect with the policy's power, at lengths from analysisSeconds to
 * the bound (one poll apart), from the step's first window: traffic per second per cohort, the control's rate and
 * design effect, the latency's cluster-robust standard error; information grows with requests. The step's length
 * is the shortest whose detectable increase is within the policy's `detect`, or the bound.
 */
export function planStep(policy: CanaryPolicy, step: ExposureStep, w: ClusterWindow, elapsed: number): StepPlan {
  const comparison = policy.exposure.comparison;
  const figures = comparedFigures(comparison);
  const alphaPerFigure = comparison.alpha / figures.length;
  const tuning = mixtureTuning(alphaPerFigure);
  const zPower = powerQuantile(comparison.power.level);
  const bound = stepBound(step);
  const poll = policy.pollIntervalSeconds;
  const reqT = sampleOf(w, 'treatment', 'requests', 'requests');
  const reqC = sampleOf(w, 'control', 'requests', 'requests');
  // Each cohort's traffic: the first window's total, split as the cohorts' clusters split their pre-exposure
  // requests when those are many (a few heavy scopes make a 2-minute window's split a matter of luck).
  const windowT = ratioEstimate(reqT).total;
  const windowC = ratioEstimate(reqC).total;
  const preSplit = preRequestShare(w, step.percent);
  const share = preSplit && preSplit.requests >= 10 * step.minimumSamplesPerCohort && windowT > 0 ? preSplit.treatment : windowT / Math.max(1, windowT + windowC);
  const rateT = ((windowT + windowC) * share) / elapsed;
  const rateC = ((windowT + windowC) * (1 - share)) / elapsed;
  const errorsC = sampleOf(w, 'control', 'serverErrors', 'requests');
  const errorsT = sampleOf(w, 'treatment', 'serverErrors', 'requests');
  const pc = ratioEstimate(errorsC);
  const pt = ratioEstimate(errorsT);
  let pooled = Math.max(pc.estimate, (pc.estimate * pc.total + pt.estimate * pt.total) / Math.max(1, pc.total + pt.total), 0.001);
  const deff = designEffect(errorsC);
  const pre = preExposureErrors(w, step.percent);
  const dispersionT = dispersionModel(pre, 'treatment', deff);
  const dispersionC = dispersionModel(pre, 'control', deff);
  // The control's rate: from its pre-exposure figures when they hold enough events (a 2-minute window holds a few).
  const preControl = ratioEstimate(pre.control);
  if (preControl.estimate * preControl.total >= PRE_EXPOSURE_MINIMUM_EVENTS) pooled = Math.max(preControl.estimate, 0.001);
  const latency = figures.includes('latency') ? clusteredDifference(sampleOf(w, 'treatment', 'latencyMsSum', 'requests'), sampleOf(w, 'control', 'latencyMsSum', 'requests')) : null;

  const detectable: StepPlan['detectable'] = [];
  const lengths: number[] = [];
  for (let seconds = step.analysisSeconds; seconds <= bound + 1e-9; seconds += poll) lengths.push(seconds);
  if (lengths[lengths.length - 1]! < bound) lengths.push(bound);
  for (const seconds of lengths) {
    const nt = rateT * seconds;
    const nc = rateC * seconds;
    const r = tuning * (Math.min(nt, nc) / step.minimumSamplesPerCohort);
    const row: StepPlan['detectable'][number] = { seconds };
    if (figures.includes('serverErrorRate') && nt > 0 && nc > 0) {
      // Rates split alpha between the exact and normal regimes; few expected events: the exact test's own power.
      const margin = comparison.figures.serverErrorRate!.minimumDifference;
      // The standard error where the power is wanted: the treatment at the increased rate, not at the pooled one.
      const normalDetectable = () => {
        const boundary = mixtureBoundary(alphaPerFigure / 2, r);
        const seAt = (increase: number) => {
          const pt = Math.min(1, pooled + increase);
          return Math.sqrt((dispersionT(pt, nt) * pt * (1 - pt)) / nt + (dispersionC(pooled, nc) * pooled * (1 - pooled)) / nc);
        };
        let increase = margin + (boundary + zPower) * seAt(0);
        for (let i = 0; i < 20; i++) increase = margin + (boundary + zPower) * seAt(increase);
        return increase;
      };
      if (nt * pooled < FEW_EVENTS) {
        // The events the treatment needs do not depend on its rate; the chance of reaching them grows with it. Its
        // count is overdispersed (scopes with their own error rates): variance = mean x its clusters' design
        // effect at that rate and length; the exact test's evidence is divided by the control's.
        const needed = eventSplitNeeded(nt, nc, pooled, margin, alphaPerFigure / 2, dispersionC(pooled, nc));
        const reaches = (increase: number) => overdispersedAtLeast(nt * (pooled + increase), dispersionT(pooled + increase, nt), needed) >= comparison.power.level;
        let low = 0;
        let high = 1 - pooled;
        if (!reaches(high)) row.serverErrorRate = Number.POSITIVE_INFINITY;
        else {
          for (let i = 0; i < 30; i++) {
            const mid = (low + high) / 2;
            if (reaches(mid)) high = mid;
            else low = mid;
          }
          row.serverErrorRate = high;
        }
        // The normal regime is read too once each cohort shows NORMAL_TOO_EVENTS events (at the rate to detect).
        const normal = normalDetectable();
        if (nt * (pooled + normal) >= NORMAL_TOO_EVENTS && nc * pooled >= NORMAL_TOO_EVENTS) row.serverErrorRate = Math.min(row.serverErrorRate, normal);
      } else row.serverErrorRate = normalDetectable();
    }
    if (latency && Number.isFinite(latency.standardError) && nt > 0 && nc > 0) {
      const boundary = mixtureBoundary(alphaPerFigure, r);
      const margin = comparison.figures.latency!;
      const se = latency.standardError * Math.sqrt(Math.min(ratioEstimate(reqT).total, ratioEstimate(reqC).total) / Math.min(nt, nc));
      row.latencyMs = margin.minimumRelativeDifference * latency.control.estimate + margin.minimumAddedMs + (boundary + zPower) * se;
    }
    // Evidence is the largest over every look so far: what an earlier length could detect, a later one can too
    // (the few-event and normal regimes take turns as events accrue).
    const previous = detectable[detectable.length - 1];
    if (previous?.serverErrorRate !== undefined && row.serverErrorRate !== undefined) row.serverErrorRate = Math.min(row.serverErrorRate, previous.serverErrorRate);
    if (previous?.latencyMs !== undefined && row.latencyMs !== undefined) row.latencyMs = Math.min(row.latencyMs, previous.latencyMs);
    detectable.push(row);
  }
  const detect = comparison.power.detect;
  const enough = (row: StepPlan['detectable'][number]) =>
    (row.serverErrorRate === undefined || row.serverErrorRate <= detect.serverErrorRate) && (row.latencyMs === undefined || row.latencyMs <= detect.latencyMs);
  const chosen = detectable.find(enough);
  const first = detectable[0];
  const shown = (row: StepPlan['detectable'][number] | undefined) =>
    row ? [row.serverErrorRate !== undefined ? `5xx +${pct(row.serverErrorRate)}` : '', row.latencyMs !== undefined ? `latency +${row.latencyMs.toFixed(0)} ms` : ''].filter(Boolean).join(', ') : 'nothing (no traffic)';
  const power = `${(comparison.power.level * 100).toFixed(0)}% power`;
  let reason: string;
  let lengthSeconds: number;
  if (rateT === 0 && rateC === 0) {
    lengthSeconds = step.analysisSeconds;
    reason = 'no traffic in the first window: nothing is detectable';
  } else if (chosen && chosen.seconds === step.analysisSeconds) {
    lengthSeconds = step.analysisSeconds;
    reason = `smallest increase detectable at ${power} by ${step.analysisSeconds}s: ${shown(first)} (targets 5xx +${pct(detect.serverErrorRate)}, latency +${detect.latencyMs} ms)`;
  } else if (chosen) {
    lengthSeconds = chosen.seconds;
    reason = `smallest increase detectable at ${power} by ${step.analysisSeconds}s: ${shown(first)}, above the targets (5xx +${pct(detect.serverErrorRate)}, latency +${detect.latencyMs} ms): lengthened to ${chosen.seconds}s (${shown(chosen)}), bound ${bound}s`;
  } else if (comparison.power.outOfReach === 'run-to-bound') {
    // Out of reach within the bound: the bound gives the most power the policy allows; the plan is conservative
    // (its model of scope heterogeneity), so the step may well catch the target there (bench:canary).
    lengthSeconds = bound;
    reason = `smallest increase detectable at ${power} by ${step.analysisSeconds}s: ${shown(first)}; even at the bound ${bound}s only ${shown(detectable[detectable.length - 1])} by the plan's model: run to the bound, below the target power by that model`;
  } else {
    // keep-length: lengthening would only delay a verdict that stays underpowered; say so.
    lengthSeconds = step.analysisSeconds;
    reason = `smallest increase detectable at ${power} by ${step.analysisSeconds}s: ${shown(first)}; even at the bound ${bound}s only ${shown(detectable[detectable.length - 1])}: not lengthened, the step runs below the target power`;
  }
  return { lengthSeconds, boundSeconds: bound, detectable, reason };
}

/** Pre-exposure 5xx events a cohort's clusters need before their rate and design effect are read from them. */
const PRE_EXPOSURE_MINIMUM_EVENTS = 30;

/** Each cohort's clusters' pre-exposure 5xx (all its clusters, by index, not only those with traffic in the window). */
function preExposureErrors(w: ClusterWindow, percent: number): { treatment: ClusterSample; control: ClusterSample } {
  const exposedBuckets = Math.round(percent * 100);
  const requests = CLUSTER_FIELD_INDEX.requests;
  const errors = CLUSTER_FIELD_INDEX.serverErrors;
  const out = { treatment: { y: [] as number[], n: [] as number[] }, control: { y: [] as number[], n: [] as number[] } };
  for (let cluster = 0; cluster < CLUSTER_COUNT; cluster++) {
    const n = w.pre.values[cluster * CLUSTER_FIELD_COUNT + requests]!;
    if (!(n > 0)) continue;
    // A cluster straddling the percentage holds both cohorts' scopes: counted with the control, as most of its buckets are at 5 %.
    const cohort = (cluster + 1) * CLUSTER_SIZE <= exposedBuckets ? out.treatment : out.control;
    cohort.y.push(w.pre.values[cluster * CLUSTER_FIELD_COUNT + errors]!);
    cohort.n.push(n);
  }
  return out;
}

/** The treatment clusters' share of all pre-exposure requests (null without any). */
function preRequestShare(w: ClusterWindow, percent: number): { treatment: number; requests: number } | null {
  const pre = preExposureErrors(w, percent);
  const t = pre.treatment.n.reduce((a, b) => a + b, 0);
  const c = pre.control.n.reduce((a, b) => a + b, 0);
  return t + c > 0 ? { treatment: t / (t + c), requests: t + c } : null;
}

/**
 * The design effect of a cohort's 5xx count at a rate and a number of requests, for planning. Scopes with their
 * own error rates make a cluster's count a mixed Poisson: variance = mean x (1 + p V sum n_i^2 / sum n_i), so the
 * excess over Poisson grows with the rate and, as its clusters fill, with its requests. It is read from the
 * cohort's own clusters' pre-exposure figures (the metrics history, or the counters since start) when they hold
 * PRE_EXPOSURE_MINIMUM_EVENTS events; else all clusters' (scaled to requests per cluster); else the first
 * window's control design effect as it is.
 */
function dispersionModel(pre: { treatment: ClusterSample; control: ClusterSample }, cohort: 'treatment' | 'control', firstWindow: number): (rate: number, requests: number) => number {
  const fit = (sample: ClusterSample) => {
    const est = ratioEstimate(sample);
    return { est, events: est.estimate * est.total, deff: designEffect(sample) };
  };
  const mine = fit(pre[cohort]);
  const all = fit({ y: [...pre.treatment.y, ...pre.control.y], n: [...pre.treatment.n, ...pre.control.n] });
  const excess = (source: typeof mine, scale: (requests: number) => number) => (rate: number, requests: number) =>
    1 + Math.max(0, source.deff - 1) * (rate / source.est.estimate) * scale(requests);
  // Requests per cluster grow in proportion: the cohort's own clusters by its requests over their pre-exposure total.
  if (mine.events >= PRE_EXPOSURE_MINIMUM_EVENTS) return excess(mine, (requests) => requests / mine.est.total);
  if (all.events >= PRE_EXPOSURE_MINIMUM_EVENTS) {
    const clusters = Math.max(1, pre[cohort].n.length);
    return excess(all, (requests) => requests / clusters / (all.est.total / all.est.clusters));
  }
  return () => firstWindow;
}

function unplanned(step: ExposureStep): StepPlan {
  return { lengthSeconds: step.analysisSeconds, boundSeconds: stepBound(step), detectable: [], reason: 'no window yet: the plan is made at the step\'s first look' };
}

/**
 * The data-sufficiency rule, decided once, at the first look at or past the planned length: a cohort short of the
 * minimum sample extends the step to the time its request rate so far needs to reach the minimum, at most the
 * bound. No traffic at all is not extended: there is no rate to project.
 */
function extensionAt(plan: StepPlan, step: ExposureStep, requests: { treatment: number; control: number }, elapsed: number): StepPlan {
  const cohorts = step.percent < 100 ? [requests.treatment, requests.control] : [requests.treatment];
  const short = cohorts.filter((n) => n < step.minimumSamplesPerCohort);
  if (short.length === 0 || cohorts.every((n) => n === 0)) return plan;
  const want = Math.max(...short.map((n) => (n > 0 ? (elapsed * step.minimumSamplesPerCohort) / n : Number.POSITIVE_INFINITY)));
  return { ...plan, extendedTo: Math.min(plan.boundSeconds, Math.max(plan.lengthSeconds, Math.ceil(want))) };
}

function abCohort(w: ClusterWindow, cohort: 'treatment' | 'control', price: number): AbCohort {
  const figure = (numerator: ClusterField) => {
    const interval = ratioInterval(sampleOf(w, cohort, numerator, 'reads'));
    return { estimate: interval.estimate, lower: interval.lower, upper: interval.upper, clusters: interval.clusters, reads: interval.total };
  };
  const calls = figure('context7Calls');
  return {
    snippetsPerRead: figure('snippets'),
    readsWithSnippetShare: figure('readsWithSnippets'),
    context7CallsPerRead: calls,
    costPerThousandReads: { estimate: calls.estimate * price * 1000, lower: Math.max(0, calls.lower) * price * 1000, upper: calls.upper * price * 1000 },
  };
}

/** Month 1's A/B figures per cohort over the window, with 95 % cluster-robust intervals. Reported, never acted on. */
export function abResults(w: ClusterWindow, pricePerCall: number, currency: string): AbResults {
  return { treatment: abCohort(w, 'treatment', pricePerCall), control: abCohort(w, 'control', pricePerCall), pricePerCall, currency };
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(rate < 0.1 ? 2 : 1)}%`;
}
