/**
 * The treatment against the control (progressive exposure): one-sided tests that the treatment is worse, and the
 * alpha spent at each look so that polling every interval does not inflate the false-positive rate unseen.
 * Pure: numbers in, numbers out.
 */
import { latencyBin, latencyBinUpperMs, percentileFromBins } from '../../service/fleet/fleet-metrics';
import { logGamma, normalQuantile, normalUpperTail } from '../analysis/stats';
import type { ComparedFigure, ExposurePolicy } from '../policy';
import type { CohortComparison } from './types';

export interface Proportion {
  events: number;
  n: number;
}

export interface ProportionTest {
  /** pooled z below, Fisher's exact test when a cohort expects fewer than MIN_EXPECTED_EVENTS events (or non-events) */
  method: 'pooled-z' | 'fisher-exact';
  /** the z statistic (pooled-z only) */
  z?: number;
  /** one-sided: P(a difference at least this large | the treatment is not worse by more than the minimum difference) */
  pValue: number;
  treatmentRate: number;
  controlRate: number;
}

/** Below this many expected events (or non-events) in a cohort the normal approximation is poor: exact test. */
export const MIN_EXPECTED_EVENTS = 5;

/**
 * One-sided two-proportion test, H0: p_t - p_c <= minimumDifference against H1: p_t - p_c > minimumDifference.
 * z = (p_t - p_c - minimumDifference) / sqrt(p(1 - p)(1/n_t + 1/n_c)) with the pooled p. Small counts use
 * Fisher's exact test against the control's events raised by the margin (ceil(minimumDifference * n_c) more: the
 * boundary of H0, rounded to the conservative side), and the observed difference must exceed the margin: a tiny
 * harmless difference is never significant, on few events as on many.
 */
export function twoProportionTest(treatment: Proportion, control: Proportion, minimumDifference = 0): ProportionTest {
  for (const [name, p] of [['treatment', treatment], ['control', control]] as const) {
    if (!(p.n > 0) || p.events < 0 || p.events > p.n || !Number.isInteger(p.events) || !Number.isInteger(p.n)) {
      throw new RangeError(`twoProportionTest needs integers 0 <= events <= n, n > 0 (${name}: ${p.events}/${p.n})`);
    }
  }
  const treatmentRate = treatment.events / treatment.n;
  const controlRate = control.events / control.n;
  const pooled = (treatment.events + control.events) / (treatment.n + control.n);
  const smallerN = Math.min(treatment.n, control.n);
  const difference = treatmentRate - controlRate;
  if (smallerN * pooled < MIN_EXPECTED_EVENTS || smallerN * (1 - pooled) < MIN_EXPECTED_EVENTS) {
    const atMargin = { events: Math.min(control.n, control.events + Math.ceil(minimumDifference * control.n - 1e-9)), n: control.n };
    const exact = fisherExactGreater(treatment, atMargin);
    return { method: 'fisher-exact', pValue: difference > minimumDifference ? exact : 1, treatmentRate, controlRate };
  }
  const standardError = Math.sqrt(pooled * (1 - pooled) * (1 / treatment.n + 1 / control.n));
  const z = (difference - minimumDifference) / standardError;
  return { method: 'pooled-z', z, pValue: normalUpperTail(z), treatmentRate, controlRate };
}

/**
 * Fisher's exact test, one-sided (the treatment has more events): P(X >= observed) for X hypergeometric, the
 * treatment's events given both cohorts' sizes and the total events.
 */
export function fisherExactGreater(treatment: Proportion, control: Proportion): number {
  const events = treatment.events + control.events;
  const total = treatment.n + control.n;
  const logChoose = (n: number, k: number) => logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
  const logDenominator = logChoose(total, treatment.n);
  const highest = Math.min(events, treatment.n);
  let p = 0;
  for (let x = treatment.events; x <= highest; x++) {
    const term = Math.exp(logChoose(events, x) + logChoose(total - events, treatment.n - x) - logDenominator);
    p += term;
    // Past the observed count the terms only shrink once beyond the mode: stop when they no longer count.
    if (x > treatment.n * (events / total) && term < p * 1e-15) break;
  }
  return Math.min(1, p);
}

/** A latency histogram: bin (service/fleet/fleet-metrics.ts latencyBin) -> requests. */
export type LatencyBins = Record<string, number>;

export interface MannWhitneyTest {
  /** U of the treatment: pairs (treatment, control) with the treatment slower, ties counting one half */
  u: number;
  z: number;
  /** one-sided: the treatment is slower */
  pValue: number;
  nTreatment: number;
  nControl: number;
}

/**
 * Mann–Whitney U from two histograms, one-sided (treatment slower), normal approximation with the tie-corrected
 * variance (every request in a bin ties with every other in it) and a continuity correction of 1/2.
 * `controlShiftBins` moves the control's latencies up that many bins first, then `controlAddedMs` adds a fixed time
 * to each (from its bin's middle): H0 becomes "the treatment is not slower than the control's latencies times
 * 1.05^shift plus addedMs", the minimum practical difference.
 */
export function mannWhitneyFromBins(treatmentBins: LatencyBins, controlBins: LatencyBins, controlShiftBins = 0, controlAddedMs = 0): MannWhitneyTest {
  const treatment = toBinMap(treatmentBins, (bin) => bin);
  const control = toBinMap(controlBins, (bin) => {
    const shifted = bin + controlShiftBins;
    if (controlAddedMs === 0) return shifted;
    const middleMs = ((shifted === 0 ? 0 : latencyBinUpperMs(shifted - 1)) + latencyBinUpperMs(shifted)) / 2;
    return Math.max(shifted, latencyBin(middleMs + controlAddedMs));
  });
  const bins = [...new Set([...treatment.keys(), ...control.keys()])].sort((a, b) => a - b);
  const nTreatment = sum(treatment.values());
  const nControl = sum(control.values());
  const n = nTreatment + nControl;
  let u = 0;
  let controlBelow = 0;
  let tieTerm = 0;
  for (const bin of bins) {
    const t = treatment.get(bin) ?? 0;
    const c = control.get(bin) ?? 0;
    u += t * (controlBelow + c / 2);
    controlBelow += c;
    const tied = t + c;
    tieTerm += tied * tied * tied - tied;
  }
  const mean = (nTreatment * nControl) / 2;
  const variance = n > 1 ? ((nTreatment * nControl) / 12) * (n + 1 - tieTerm / (n * (n - 1))) : 0;
  if (!(variance > 0)) return { u, z: 0, pValue: 1, nTreatment, nControl };
  const z = (u - mean - 0.5) / Math.sqrt(variance);
  return { u, z, pValue: normalUpperTail(z), nTreatment, nControl };
}

/** One latency bin's growth factor (1.05), read from the histogram's own definition: bin 0 ends at 1.05 - 1 ms. */
const BIN_GROWTH = 1 + latencyBinUpperMs(0);

/** The whole number of 5 %-wide latency bins closest to a relative difference (0.1 -> 2 bins, i.e. +10.25 %). */
export function binsForRelativeDifference(relative: number): number {
  return Math.round(Math.log1p(relative) / Math.log(BIN_GROWTH));
}

function toBinMap(bins: LatencyBins, moved: (bin: number) => number): Map<number, number> {
  const map = new Map<number, number>();
  for (const [bin, count] of Object.entries(bins)) {
    if (!(count >= 0) || !Number.isInteger(count)) throw new RangeError(`latency bin ${bin} has count ${count}: counts are whole and >= 0`);
    const to = moved(Number(bin));
    if (count > 0) map.set(to, (map.get(to) ?? 0) + count);
  }
  return map;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

export type SpendingRule = ExposurePolicy['comparison']['spending'];

/**
 * Alpha spent by the fraction t of a step's analysis time (Lan–DeMets): Pocock-type alpha ln(1 + (e - 1) t),
 * O'Brien–Fleming-type 2 (1 - Phi(z_{1-alpha/2} / sqrt t)). Both are 0 at t = 0 and alpha at t >= 1.
 */
export function alphaSpent(rule: Exclude<SpendingRule, 'bonferroni'>, alpha: number, t: number): number {
  const fraction = Math.min(1, Math.max(0, t));
  if (fraction === 0) return 0;
  if (rule === 'pocock') return alpha * Math.log(1 + (Math.E - 1) * fraction);
  return Math.min(alpha, 2 * normalUpperTail(normalQuantile(1 - alpha / 2) / Math.sqrt(fraction)));
}

export interface Look {
  /** 1-based look at this step */
  look: number;
  /** the fraction of the step's analysis time elapsed at this look and at the previous one (0 for the first) */
  fraction: number;
  previousFraction: number;
}

/**
 * The significance level of one look: the alpha spent since the previous look. The levels of a step's looks sum
 * to at most alpha, so by the union bound the chance that any look of a null step says "worse" is at most alpha,
 * whatever the correlation between looks (conservative: exact group-sequential boundaries would be wider).
 * Looks past maxLooks, or after the step's analysis time is spent, test at 0.
 */
export function alphaForLook(comparison: ExposurePolicy['comparison'], look: Look, alpha = comparison.alpha): number {
  if (look.look < 1 || look.look > comparison.maxLooksPerStep) return 0;
  if (comparison.spending === 'bonferroni') return alpha / comparison.maxLooksPerStep;
  return Math.max(0, alphaSpent(comparison.spending, alpha, look.fraction) - alphaSpent(comparison.spending, alpha, look.previousFraction));
}

/** The figures the policy compares, in a stable order; alpha is split equally between them. */
export function comparedFigures(comparison: ExposurePolicy['comparison']): ComparedFigure[] {
  return (['serverErrorRate', 'fallbackRate', 'errorRate', 'latency'] as const).filter((figure) => comparison.figures[figure] !== undefined);
}

export type RateFigure = Exclude<ComparedFigure, 'latency'>;

/** A rate figure's verdict at one look: inconclusive below the minimum sample or with no alpha left. */
export function compareRate(
  figure: RateFigure,
  treatment: Proportion,
  control: Proportion,
  minimumDifference: number,
  alphaThisLook: number,
  minimumSamples: number,
): CohortComparison {
  const base = {
    figure,
    test: 'two-proportion' as const,
    treatment: { value: treatment.n > 0 ? treatment.events / treatment.n : 0, n: treatment.n },
    control: { value: control.n > 0 ? control.events / control.n : 0, n: control.n },
    alphaThisLook,
  };
  const shortfall = sampleShortfall(treatment.n, control.n, minimumSamples);
  if (shortfall) return { ...base, pValue: 1, verdict: 'inconclusive', reason: shortfall };
  const result = twoProportionTest(treatment, control, minimumDifference);
  const shown = `${pct(result.treatmentRate)} (${treatment.events}/${treatment.n}) vs ${pct(result.controlRate)} (${control.events}/${control.n})`;
  const test = `${result.method === 'pooled-z' ? `pooled z = ${result.z!.toFixed(2)}` : "Fisher's exact"}, margin ${pct(minimumDifference)}`;
  return verdictFor(base, result.pValue, `${shown}: ${test}`);
}

/** Latency's verdict at one look: Mann–Whitney on the window's histograms, the control shifted by the margin. */
export function compareLatency(
  treatmentBins: LatencyBins,
  controlBins: LatencyBins,
  margin: { minimumRelativeDifference: number; minimumAddedMs: number },
  alphaThisLook: number,
  minimumSamples: number,
): CohortComparison {
  const shift = binsForRelativeDifference(margin.minimumRelativeDifference);
  const result = mannWhitneyFromBins(treatmentBins, controlBins, shift, margin.minimumAddedMs);
  const median = (bins: LatencyBins) => percentileFromBins(new Map(Object.entries(bins).map(([bin, count]) => [Number(bin), count])), 50);
  const base = {
    figure: 'latency' as const,
    test: 'mann-whitney' as const,
    treatment: { value: median(treatmentBins), n: result.nTreatment },
    control: { value: median(controlBins), n: result.nControl },
    alphaThisLook,
  };
  const shortfall = sampleShortfall(result.nTreatment, result.nControl, minimumSamples);
  if (shortfall) return { ...base, pValue: 1, verdict: 'inconclusive', reason: shortfall };
  const shown = `median ${base.treatment.value.toFixed(0)} ms vs ${base.control.value.toFixed(0)} ms`;
  return verdictFor(base, result.pValue, `${shown}: U = ${result.u}, z = ${result.z.toFixed(2)}, margin +${pct(BIN_GROWTH ** shift - 1)} +${margin.minimumAddedMs} ms`);
}

function sampleShortfall(nTreatment: number, nControl: number, minimumSamples: number): string | undefined {
  if (nTreatment >= minimumSamples && nControl >= minimumSamples) return undefined;
  return `too few samples: treatment ${nTreatment}, control ${nControl}, minimum ${minimumSamples} each`;
}

function verdictFor(base: Omit<CohortComparison, 'pValue' | 'verdict' | 'reason'>, pValue: number, detail: string): CohortComparison {
  const level = `p = ${pValue.toPrecision(3)} vs alpha ${base.alphaThisLook.toPrecision(3)} at this look`;
  if (!(base.alphaThisLook > 0)) return { ...base, pValue, verdict: 'inconclusive', reason: `${detail}; no alpha left at this look (${level})` };
  const verdict = pValue <= base.alphaThisLook ? 'worse' : 'not_worse';
  return { ...base, pValue, verdict, reason: `${detail}; ${level}` };
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(rate < 0.1 ? 2 : 1)}%`;
}
