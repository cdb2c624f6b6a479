/**
 * Scope-clustered, anytime-valid comparisons of the treatment against the control (progressive exposure). Pure.
 *
 * The unit of randomization is the scope (its sha256 bucket), so the unit of analysis is the cluster of 10
 * buckets (service/domain/exposure-clusters.ts): 1,000 clusters, each a random sample of scopes. Requests of one
 * scope are not independent (a scope has its own error rate and latency), clusters are.
 *
 * - Rates and mean latency are ratio estimators over clusters (sum of events / sum of requests), their variance by
 *   the delta method over clusters (cluster-robust), never below the independent-request variance at the pooled
 *   rate. H0: treatment <= scale * control + added (the policy's margin); one-sided for harm.
 * - CUPED: each cluster's figures from before it was exposed (its control and `off` slots at the step's baseline)
 *   are a covariate; theta minimizes the adjusted variance (Deng et al. 2013; the ratio-metric form of gbstats).
 * - Anytime-valid: the evidence at a look is a one-sided normal-mixture martingale (Robbins; Howard et al. 2021,
 *   Waudby-Smith et al. 2023) in the z statistic, on an information clock that is the smaller cohort's requests.
 *   The always-valid p-value is 1 / the largest evidence seen: valid at any number of looks, at irregular times,
 *   held or extended steps included (Ville's inequality).
 * - Few events: an exact test of how the events split between the cohorts (binomial given the total, Fisher's
 *   test's large-population form), as a mixture martingale over the odds ratio, its log-likelihood divided by
 *   the design effect the control's clusters show. Each figure's alpha is split between the two regimes.
 */
import { normalQuantile, normalUpperTail } from '../analysis/stats';
import {
  CLUSTER_COUNT,
  CLUSTER_FIELD_COUNT,
  CLUSTER_FIELD_INDEX,
  CLUSTER_SIZE,
  addClusterTables,
  emptyDenseClusters,
  type ClusterField,
  type ClusterTables,
  type DenseClusters,
  type DenseSlot,
} from '../../service/domain/exposure-clusters';

/** Per-cluster sums of one cohort over a window (and the same clusters' pre-exposure sums). */
export interface ClusterSample {
  /** numerator per cluster (events, or latency ms) */
  y: number[];
  /** denominator per cluster (requests) */
  n: number[];
  /** pre-exposure numerator and denominator of the same clusters (CUPED); absent: none */
  x?: number[];
  k?: number[];
}

export interface RatioEstimate {
  estimate: number;
  /** delta-method variance over clusters */
  variance: number;
  clusters: number;
  total: number;
}

/** Sum y / sum n, its cluster-robust variance m/(m-1) sum ((y_i - r n_i) / N)^2. */
export function ratioEstimate(sample: ClusterSample): RatioEstimate {
  let Y = 0;
  let N = 0;
  for (let i = 0; i < sample.n.length; i++) {
    Y += sample.y[i]!;
    N += sample.n[i]!;
  }
  const m = sample.n.length;
  const r = N > 0 ? Y / N : 0;
  let ss = 0;
  for (let i = 0; i < m; i++) {
    const e = (sample.y[i]! - r * sample.n[i]!) / N;
    ss += e * e;
  }
  return { estimate: r, variance: m > 1 && N > 0 ? (ss * m) / (m - 1) : Number.POSITIVE_INFINITY, clusters: m, total: N };
}

/** CUPED may shrink a difference's variance by at most this share (its standard error to no less than ~71 %). */
export const CUPED_MAX_VARIANCE_REDUCTION = 0.5;

export interface ClusteredDifference {
  /** treatment - (scale * control + added), CUPED-adjusted when `cuped` */
  difference: number;
  standardError: number;
  z: number;
  treatment: RatioEstimate;
  control: RatioEstimate;
  cuped: { theta: number; varianceReduction: number } | null;
}

/**
 * The one-sided difference treatment - (scale * control + added) with its cluster-robust standard error.
 * `floorRate`: for rates, each cohort's variance is at least the independent-request variance at the pooled
 * rate (a cohort with no events still has a variance). CUPED when both samples carry pre-exposure sums with at
 * least `cupedMinimum` pre-exposure requests in each.
 */
export function clusteredDifference(
  treatment: ClusterSample,
  control: ClusterSample,
  options: { scale?: number; added?: number; floorRate?: boolean; cupedMinimum?: number } = {},
): ClusteredDifference {
  const scale = options.scale ?? 1;
  const added = options.added ?? 0;
  const t = ratioEstimate(treatment);
  const c = ratioEstimate(control);
  const linear = (y: number[], n: number[], est: RatioEstimate) => {
    const out = new Float64Array(n.length);
    for (let i = 0; i < n.length; i++) out[i] = (y[i]! - est.estimate * n[i]!) / est.total;
    return out;
  };
  const et = linear(treatment.y, treatment.n, t);
  const ec = linear(control.y, control.n, c);
  const weight = { t: t.clusters > 1 ? t.clusters / (t.clusters - 1) : Number.POSITIVE_INFINITY, c: c.clusters > 1 ? c.clusters / (c.clusters - 1) : Number.POSITIVE_INFINITY };
  let difference = t.estimate - (scale * c.estimate + added);
  let variance = t.variance + scale * scale * c.variance;
  let cuped: ClusteredDifference['cuped'] = null;

  const minimum = options.cupedMinimum ?? Number.POSITIVE_INFINITY;
  const preTotal = (s: ClusterSample) => {
    let total = 0;
    for (const k of s.k ?? []) total += k;
    return total;
  };
  if (treatment.x && treatment.k && control.x && control.k && preTotal(treatment) >= minimum && preTotal(control) >= minimum && Number.isFinite(variance)) {
    const qt = ratioEstimate({ y: treatment.x, n: treatment.k });
    const qc = ratioEstimate({ y: control.x, n: control.k });
    const pooled = (qt.estimate * qt.total + qc.estimate * qc.total) / (qt.total + qc.total);
    const ft = linear(treatment.x, treatment.k, qt);
    const fc = linear(control.x, control.k, qc);
    const dot = (a: Float64Array, b: Float64Array) => {
      let sum = 0;
      for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
      return sum;
    };
    const sxx = weight.t * dot(ft, ft) + scale * scale * weight.c * dot(fc, fc);
    if (sxx > 0 && t.clusters > 2 && c.clusters > 2) {
      const theta = (weight.t * dot(et, ft) + scale * scale * weight.c * dot(ec, fc)) / sxx;
      // theta is fitted on the same clusters: the residuals' variance counts one degree of freedom fewer per
      // cohort (m / (m - 2), not m / (m - 1)), or the adjusted standard error is too small with few clusters.
      const adjusted = (e: Float64Array, f: Float64Array, m: number) => {
        let sum = 0;
        for (let i = 0; i < e.length; i++) sum += (e[i]! - theta * f[i]!) ** 2;
        return (m / (m - 2)) * sum;
      };
      const adjustedVariance = adjusted(et, ft, t.clusters) + scale * scale * adjusted(ec, fc, c.clusters);
      if (adjustedVariance < variance) {
        // Never more than CUPED_MAX_VARIANCE_REDUCTION: a covariate fitted on few heavy clusters can look better
        // than it is, and the level must not rest on it (bench:canary measures the level with CUPED on).
        const capped = Math.max(adjustedVariance, (1 - CUPED_MAX_VARIANCE_REDUCTION) * variance);
        cuped = { theta, varianceReduction: 1 - capped / variance };
        difference -= theta * (qt.estimate - pooled - scale * (qc.estimate - pooled));
        variance = capped;
      }
    }
  }
  if (options.floorRate) {
    const p = (t.estimate * t.total + c.estimate * c.total) / Math.max(1, t.total + c.total);
    const floor = (p * (1 - p)) / Math.max(1, t.total) + (scale * scale * p * (1 - p)) / Math.max(1, c.total);
    variance = Math.max(variance, floor);
  }
  const standardError = Math.sqrt(variance);
  const z = standardError > 0 && Number.isFinite(standardError) ? difference / standardError : 0;
  return { difference, standardError, z, treatment: t, control: c, cuped };
}

/** The mixture's tuning constant for level alpha (the optimum of the two-sided normal mixture; as in gbstats). */
export function mixtureTuning(alpha: number): number {
  return -2 * Math.log(alpha) + Math.log(1 - 2 * Math.log(alpha));
}

/**
 * Evidence against H0 (treatment not worse) of the one-sided normal mixture martingale: with r = rho^2 * I,
 * 2 (1 + r)^-1/2 exp(z^2 r / (2 (1 + r))) Phi(z sqrt(r / (1 + r))). Under H0 its running maximum exceeds 1/alpha
 * with probability at most alpha (Ville), however often and whenever it is read.
 */
export function mixtureEvidence(z: number, r: number): number {
  if (!(r > 0) || !Number.isFinite(z)) return z === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : 0;
  const shrink = r / (1 + r);
  const log = Math.log(2) - 0.5 * Math.log1p(r) + (z * z * shrink) / 2 + logNormalCdf(z * Math.sqrt(shrink));
  return Math.exp(Math.min(700, log));
}

/** ln Phi(x), accurate far into the lower tail (an asymptotic series below -5). */
export function logNormalCdf(x: number): number {
  if (x > -5) return Math.log(1 - normalUpperTail(x));
  const x2 = x * x;
  return -x2 / 2 - Math.log(-x) - 0.5 * Math.log(2 * Math.PI) + Math.log(1 - 1 / x2 + 3 / (x2 * x2));
}

/** The z the one-sided mixture needs at information ratio r for evidence 1/alpha (bisection). */
export function mixtureBoundary(alpha: number, r: number): number {
  let low = 0;
  let high = 40;
  for (let i = 0; i < 80; i++) {
    const mid = (low + high) / 2;
    // Adjacent doubles: no later halving moves either end (the evidence at `low` stays below 1/alpha).
    if (mid === low || mid === high) break;
    if (mixtureEvidence(mid, r) >= 1 / alpha) high = mid;
    else low = mid;
  }
  return high;
}

/** The largest odds ratio the event-split mixture weighs: a regression up to 16 times the control's odds. */
export const ODDS_MAX = 16;

/**
 * Exact evidence from how E events split: k in the treatment, E - k in the control, where under H0 a given event
 * is the treatment's with probability at most pi0. A mixture over odds ratios 1..ODDS_MAX (uniform in log) of the
 * binomial likelihood ratio, its log divided by the design effect (>= 1). A supermartingale under H0 over the
 * sequence of events, so 1 / its running maximum is an always-valid p-value (independent events; the design
 * effect widens it for clustered ones).
 */
export function eventSplitEvidence(k: number, events: number, pi0: number, designEffect = 1): number {
  if (!(events > 0) || !(pi0 > 0) || !(pi0 < 1)) return 0;
  const { perEvent, perNonEvent } = eventSplitLogs(pi0);
  let sum = 0;
  for (let g = 0; g < EVENT_SPLIT_GRID; g++) {
    const logRatio = k * perEvent[g]! + (events - k) * perNonEvent[g]!;
    sum += Math.exp(Math.min(700, logRatio / Math.max(1, designEffect)));
  }
  return sum / EVENT_SPLIT_GRID;
}

const EVENT_SPLIT_GRID = 64;
/** The last pi0's per-grid-point log ratios: callers ask at one pi0 many times (a step's looks, eventSplitNeeded's loop). */
let eventSplitMemo: { pi0: number; perEvent: Float64Array; perNonEvent: Float64Array } | null = null;

/** ln(pi / pi0) and ln((1 - pi) / (1 - pi0)) at each grid point: what an event in either cohort adds to the log ratio. */
function eventSplitLogs(pi0: number): { perEvent: Float64Array; perNonEvent: Float64Array } {
  if (eventSplitMemo?.pi0 === pi0) return eventSplitMemo;
  const perEvent = new Float64Array(EVENT_SPLIT_GRID);
  const perNonEvent = new Float64Array(EVENT_SPLIT_GRID);
  for (let g = 0; g < EVENT_SPLIT_GRID; g++) {
    const psi = Math.exp(((g + 0.5) / EVENT_SPLIT_GRID) * Math.log(ODDS_MAX));
    const pi = (pi0 * psi) / (1 - pi0 + pi0 * psi);
    perEvent[g] = Math.log(pi / pi0);
    perNonEvent[g] = Math.log((1 - pi) / (1 - pi0));
  }
  eventSplitMemo = { pi0, perEvent, perNonEvent };
  return eventSplitMemo;
}

/** Design effect of a rate's clusters: the cluster-robust variance over the independent-request one (>= 1). */
export function designEffect(sample: ClusterSample): number {
  const est = ratioEstimate(sample);
  const binomial = (est.estimate * (1 - est.estimate)) / Math.max(1, est.total);
  if (!(binomial > 0) || !Number.isFinite(est.variance)) return 1;
  return Math.max(1, est.variance / binomial);
}

/**
 * The smallest number of treatment events whose event-split evidence reaches 1/alpha when the control has its
 * expected events (nc * pc) over nt and nc requests; Infinity when none up to `limit` does.
 */
export function eventSplitNeeded(nt: number, nc: number, pc: number, margin: number, alpha: number, deff = 1, limit = 400): number {
  const controlEvents = Math.round(nc * pc);
  const pcUsed = Math.max(pc, 0.5 / Math.max(1, nc));
  const atMargin = Math.min(1, pcUsed + margin);
  const pi0 = (nt * atMargin) / (nt * atMargin + nc * pcUsed);
  for (let k = 0; k <= limit; k++) if (eventSplitEvidence(k, k + controlEvents, pi0, deff) >= 1 / alpha) return k;
  return Number.POSITIVE_INFINITY;
}

/**
 * P(X >= k) for a count of mean `mean` whose variance is `dispersion` times its mean: negative binomial (a Poisson
 * whose rate varies between clusters, gamma-mixed), Poisson at dispersion 1. The planning model of the treatment's
 * events: scopes with their own error rates make its count vary more than Poisson, by the design effect its
 * clusters show (measured on the control's).
 */
export function overdispersedAtLeast(mean: number, dispersion: number, k: number): number {
  if (!(dispersion > 1 + 1e-9)) return poissonAtLeast(mean, k);
  if (!Number.isFinite(k)) return 0;
  if (k <= 0) return 1;
  const size = mean / (dispersion - 1);
  const q = 1 / dispersion;
  let log = size * Math.log(q);
  let below = 0;
  for (let i = 0; i < k; i++) {
    below += Math.exp(log);
    log += Math.log((size + i) / (i + 1)) + Math.log(1 - q);
  }
  return Math.max(0, 1 - below);
}

/** P(Poisson(mean) >= k). */
export function poissonAtLeast(mean: number, k: number): number {
  if (!Number.isFinite(k)) return 0;
  let term = Math.exp(-mean);
  let below = 0;
  for (let i = 0; i < k; i++) {
    below += term;
    term *= mean / (i + 1);
  }
  return Math.max(0, 1 - below);
}

// ---- windows of cluster tables ----

export interface ClusterWindow {
  /** the window's counts per slot (latest minus the step's baseline) */
  window: DenseClusters;
  /** each cluster's counts before it was exposed: the control and off slots at the baseline */
  pre: DenseSlot;
}

const denseCache = new WeakMap<ClusterTables, DenseClusters>();

/** Registers the dense form of tables already at hand (a simulation's counters), so denseOf need not rebuild it. */
export function primeDense(tables: ClusterTables, dense: DenseClusters): ClusterTables {
  denseCache.set(tables, dense);
  return tables;
}

/** Tables as dense arrays; cached per tables object (a step's replay reads each observation at many looks). */
export function denseOf(tables: ClusterTables): DenseClusters {
  const cached = denseCache.get(tables);
  if (cached) return cached;
  const dense = emptyDenseClusters();
  addClusterTables(dense, tables);
  denseCache.set(tables, dense);
  return dense;
}

/** Each baseline's pre-exposure sums (its control plus off slots), cached per tables object: every look of a step shares its baseline. */
const preCache = new WeakMap<ClusterTables, DenseSlot>();

function preOf(baseline: ClusterTables, before: DenseClusters): DenseSlot {
  const cached = preCache.get(baseline);
  if (cached) return cached;
  const control = before.control.values;
  const off = before.off.values;
  const values = new Float64Array(control.length);
  for (let i = 0; i < values.length; i++) values[i] = control[i]! + off[i]!;
  const pre = { values, sketch: new Float64Array(0) };
  preCache.set(baseline, pre);
  return pre;
}

/** One slot's window (after - before), or null when a count went down. */
function windowSlot(after: DenseSlot, before: DenseSlot): DenseSlot | null {
  const a = after.values;
  const b = before.values;
  const values = new Float64Array(a.length);
  for (let i = 0; i < values.length; i++) {
    const v = a[i]! - b[i]!;
    if (v < -1e-6) return null;
    values[i] = v;
  }
  return { values, sketch: new Float64Array(0) };
}

/**
 * latest - baseline, slot by slot (the latency sketches are not windowed: the analysis reads sums); null when a
 * count went down (a restart). The window's `pre` is shared by every window from the same baseline: read it only.
 */
export function clusterWindow(latest: ClusterTables, baseline: ClusterTables): ClusterWindow | null {
  const after = denseOf(latest);
  const before = denseOf(baseline);
  const treatment = windowSlot(after.treatment, before.treatment);
  if (!treatment) return null;
  const control = windowSlot(after.control, before.control);
  if (!control) return null;
  const off = windowSlot(after.off, before.off);
  if (!off) return null;
  // A fleet-wide count against a sum of instances' own (the fleet view fell back to instances at one end) is no
  // difference of anything: no new scopes, so the sample-ratio share is not judged on this window.
  const comparable = latest.newScopesFleetWide === baseline.newScopesFleetWide;
  const newScopes = {
    treatment: comparable ? after.newScopes.treatment - before.newScopes.treatment : 0,
    control: comparable ? after.newScopes.control - before.newScopes.control : 0,
    off: comparable ? after.newScopes.off - before.newScopes.off : 0,
  };
  return { window: { treatment, control, off, newScopes }, pre: preOf(baseline, before) };
}

function field(slot: DenseSlot, cluster: number, name: ClusterField): number {
  return slot.values[cluster * CLUSTER_FIELD_COUNT + CLUSTER_FIELD_INDEX[name]]!;
}

/** One cohort's per-cluster sample of a ratio (numerator / denominator fields) over a window, with pre-exposure sums. */
export function sampleOf(w: ClusterWindow, cohort: 'treatment' | 'control', numerator: ClusterField, denominator: ClusterField): ClusterSample {
  const values = w.window[cohort].values;
  const pre = w.pre.values;
  const yk = CLUSTER_FIELD_INDEX[numerator];
  const nk = CLUSTER_FIELD_INDEX[denominator];
  const sample: Required<ClusterSample> = { y: [], n: [], x: [], k: [] };
  for (let cluster = 0; cluster < CLUSTER_COUNT; cluster++) {
    const at = cluster * CLUSTER_FIELD_COUNT;
    const n = values[at + nk]!;
    if (!(n > 0)) continue;
    sample.y.push(values[at + yk]!);
    sample.n.push(n);
    sample.x.push(pre[at + yk]!);
    sample.k.push(pre[at + nk]!);
  }
  return sample;
}

// ---- sample-ratio mismatch ----

export interface SampleRatioCheck {
  ok: boolean;
  /** two-sided binomial p of the treatment's share of the window's new scopes against the applied percentage */
  pValue: number;
  newScopes: { treatment: number; control: number };
  /** requests counted in a cohort their cluster cannot be in at this percentage, and requests with the flag off */
  misassigned: number;
  flagOff: number;
  requests: number;
  reason: string;
}

const SRM_CAUSES =
  'likely causes: an instance that never applied the percentage (or runs an older release), a cache answering one cohort from the other (sticky caching), a hash or bucketing bug, scopes counted under another id (probe or load traffic mixed in), or an instance with ENABLE_CONTEXT7_MEMORY off';

/**
 * At the applied percentage, the treatment's share of new scopes seen in the window is Binomial(percent / 100)
 * whatever the traffic (scopes hash uniformly; heavy scopes do not move it), provided each scope counts once: the
 * fleet view counts it once fleet-wide (service/fleet/fleet-metrics.ts), not once per instance that saw it (issue
 * 23: summed, pairs of counts passed for independent scopes, and a healthy step failed). No request can count in a
 * cohort its cluster is not in. A share off at p < threshold, or more than 1 % of the settled window's requests
 * (and at least 10) in the wrong cohort or with the flag off, is a mismatch: every comparison on these cohorts is
 * suspect. Misassignment is judged on `settled`, the later half of the step's looks: while a change spreads,
 * requests already in flight and an instance that has not applied it yet count in the old cohort, once (measured:
 * 12 of 98 requests in the first looks of a 2-instance step to 25 %). A cause that persists (an instance that
 * never applied it) shows in the later half as well. Without a settled window (the first looks) it is not judged.
 */
export function sampleRatioCheck(w: ClusterWindow, percent: number, threshold: number, settled: ClusterWindow | null): SampleRatioCheck {
  const nt = Math.round(w.window.newScopes.treatment);
  const nc = Math.round(w.window.newScopes.control);
  const pValue = binomialTwoSided(nt, nt + nc, percent / 100);
  const bucketsExposed = Math.round(percent * 100);
  let misassigned = 0;
  let requests = 0;
  let flagOff = 0;
  for (let cluster = 0; settled && cluster < CLUSTER_COUNT; cluster++) {
    const firstBucket = cluster * CLUSTER_SIZE;
    const t = field(settled.window.treatment, cluster, 'requests');
    const c = field(settled.window.control, cluster, 'requests');
    requests += t + c;
    flagOff += field(settled.window.off, cluster, 'requests');
    if (firstBucket + CLUSTER_SIZE <= bucketsExposed) misassigned += c; // wholly exposed
    else if (firstBucket >= bucketsExposed) misassigned += t; // wholly unexposed
  }
  const tolerance = Math.max(10, 0.01 * requests);
  const shareOff = nt + nc > 0 && pValue < threshold;
  const wrong = misassigned > tolerance || flagOff > tolerance;
  const share = nt + nc > 0 ? nt / (nt + nc) : Number.NaN;
  const shown = `treatment ${nt} of ${nt + nc} new scopes (${Number.isNaN(share) ? '-' : (share * 100).toFixed(1)}%, expected ${percent}%, p = ${pValue.toPrecision(2)})`;
  const parts: string[] = [];
  if (shareOff) parts.push(`${shown} below the threshold ${threshold}`);
  if (misassigned > tolerance) parts.push(`${misassigned} of ${requests} requests counted in a cohort their cluster is not in at ${percent}%`);
  if (flagOff > tolerance) parts.push(`${flagOff} requests answered with the flag off`);
  if (shareOff || wrong) return { ok: false, pValue, newScopes: { treatment: nt, control: nc }, misassigned, flagOff, requests, reason: `sample-ratio mismatch: ${parts.join('; ')}; ${SRM_CAUSES}` };
  return { ok: true, pValue, newScopes: { treatment: nt, control: nc }, misassigned, flagOff, requests, reason: `exposure as applied: ${shown}; ${settled ? `${misassigned} misassigned requests in the later half of the step's looks` : 'misassignment judged from the fourth look on'}` };
}

/** Two-sided exact binomial p (sum of outcomes no likelier than the observed), by log-probabilities. */
export function binomialTwoSided(k: number, n: number, p: number): number {
  if (n <= 0) return 1;
  if (p <= 0) return k === 0 ? 1 : 0;
  if (p >= 1) return k === n ? 1 : 0;
  if (n > 5000) {
    const z = (k - n * p) / Math.sqrt(n * p * (1 - p));
    return Math.min(1, 2 * normalUpperTail(Math.abs(z)));
  }
  const logs: number[] = [];
  let logP = n * Math.log(1 - p);
  logs.push(logP);
  for (let i = 1; i <= n; i++) {
    logP += Math.log((n - i + 1) / i) + Math.log(p / (1 - p));
    logs.push(logP);
  }
  const observed = logs[k]!;
  let total = 0;
  for (const l of logs) if (l <= observed + 1e-7) total += Math.exp(l);
  return Math.min(1, total);
}

// ---- power ----

/** z for the power wanted: P(Z > -z) = power. */
export function powerQuantile(power: number): number {
  return normalQuantile(power);
}

/** Two-sided fixed-sample 95 % interval of a ratio over clusters (reported figures; never acted on). */
export function ratioInterval(sample: ClusterSample, confidence = 0.95): { estimate: number; lower: number; upper: number; clusters: number; total: number } {
  const est = ratioEstimate(sample);
  const half = Number.isFinite(est.variance) ? normalQuantile(1 - (1 - confidence) / 2) * Math.sqrt(est.variance) : Number.POSITIVE_INFINITY;
  return { estimate: est.estimate, lower: est.estimate - half, upper: est.estimate + half, clusters: est.clusters, total: est.total };
}
