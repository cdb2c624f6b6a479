/**
 * The treatment-versus-control tests against known values: the expected numbers were computed independently with
 * SciPy 1.17 (scipy.stats.norm.sf, fisher_exact(alternative='greater'), mannwhitneyu(alternative='greater',
 * method='asymptotic', use_continuity=True)) and by hand where shown.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latencyBin } from '../../service/fleet/fleet-metrics';
import { describe, expect, it } from 'vitest';
import { logGamma, normalUpperTail } from '../../canary/analysis/stats';
import {
  alphaForLook,
  alphaSpent,
  binsForRelativeDifference,
  compareLatency,
  compareRate,
  fisherExactGreater,
  mannWhitneyFromBins,
  twoProportionTest,
  type LatencyBins,
} from '../../canary/exposure/compare';
import { parsePolicy, PolicyError, type ExposurePolicy } from '../../canary/policy';
import { seededRandom } from '../../canary/timelines/simulate';

const POLICY_TEXT = readFileSync(join(__dirname, '../../canary/policy.yaml'), 'utf8');

describe('normal tail and log-gamma', () => {
  it('match reference values', () => {
    expect(normalUpperTail(1)).toBeCloseTo(0.15865525393145707, 7);
    expect(normalUpperTail(-1.5)).toBeCloseTo(0.9331927987311419, 7);
    expect(normalUpperTail(3) / 0.0013498980316300933).toBeCloseTo(1, 5);
    expect(normalUpperTail(0)).toBeCloseTo(0.5, 7);
    expect(logGamma(10)).toBeCloseTo(Math.log(362880), 10);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 10);
  });
});

describe('two-proportion test (one-sided, pooled)', () => {
  it('gives the textbook z and p for 30/200 against 20/200', () => {
    // by hand: pooled p = 50/400 = 0.125; se = sqrt(0.125 * 0.875 * (2/200)) = 0.033072; z = 0.05 / se = 1.5119
    const result = twoProportionTest({ events: 30, n: 200 }, { events: 20, n: 200 });
    expect(result.method).toBe('pooled-z');
    expect(result.z).toBeCloseTo(1.5118578920369083, 8);
    expect(result.pValue).toBeCloseTo(0.06528500905786819, 6);
  });

  it('subtracts the minimum difference: 6% vs 3% with a 1-point margin', () => {
    const result = twoProportionTest({ events: 60, n: 1000 }, { events: 30, n: 1000 }, 0.01);
    expect(result.z).toBeCloseTo(2.1572826723019114, 8);
    expect(result.pValue).toBeCloseTo(0.015491823141923808, 6);
  });

  it("uses Fisher's exact test below five expected events", () => {
    const few = twoProportionTest({ events: 3, n: 100 }, { events: 0, n: 100 });
    expect(few.method).toBe('fisher-exact');
    expect(few.pValue).toBeCloseTo(0.12311557788944724, 9);
    expect(fisherExactGreater({ events: 5, n: 50 }, { events: 1, n: 50 })).toBeCloseTo(0.10220079251549678, 9);
    // the margin raises the control's events to the boundary of H0: 9/586 vs 0/587 is 9/586 vs 6/587 at 1 point
    expect(twoProportionTest({ events: 9, n: 586 }, { events: 0, n: 587 }).pValue).toBeCloseTo(0.0018790889138856769, 9);
    expect(twoProportionTest({ events: 9, n: 586 }, { events: 0, n: 587 }, 0.01).pValue).toBeCloseTo(0.30126144232014973, 9);
    // one event more than the control, but not by more than the margin: never significant
    expect(twoProportionTest({ events: 2, n: 200 }, { events: 0, n: 200 }, 0.01).pValue).toBe(1);
  });

  it('has no evidence when neither cohort has an event, and refuses impossible counts', () => {
    expect(twoProportionTest({ events: 0, n: 500 }, { events: 0, n: 500 }).pValue).toBe(1);
    expect(() => twoProportionTest({ events: 5, n: 3 }, { events: 0, n: 10 })).toThrow(RangeError);
    expect(() => twoProportionTest({ events: 0, n: 0 }, { events: 0, n: 10 })).toThrow(RangeError);
  });
});

describe('Mann–Whitney U from histogram bins', () => {
  it('matches SciPy on tied data (tie-corrected variance, continuity correction)', () => {
    // samples a = [1,2,2,3,5,5,5,8], b = [1,1,2,3,3,4] as bins
    const result = mannWhitneyFromBins({ 1: 1, 2: 2, 3: 1, 5: 3, 8: 1 }, { 1: 2, 2: 1, 3: 2, 4: 1 });
    expect(result.u).toBe(34);
    expect(result.pValue).toBeCloseTo(0.10590671211496988, 6);
    expect(result.nTreatment).toBe(8);
    expect(result.nControl).toBe(6);
  });

  it('counts U like a pairwise comparison of the samples', () => {
    const random = seededRandom(7);
    for (let round = 0; round < 20; round++) {
      const a = Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * 12));
      const b = Array.from({ length: 1 + Math.floor(random() * 30) }, () => Math.floor(random() * 12));
      let pairwise = 0;
      for (const x of a) for (const y of b) pairwise += x > y ? 1 : x === y ? 0.5 : 0;
      expect(mannWhitneyFromBins(histogram(a), histogram(b)).u).toBe(pairwise);
    }
  });

  it('shifts the control by the margin: 10% slower is two 5% bins', () => {
    expect(binsForRelativeDifference(0.1)).toBe(2);
    expect(binsForRelativeDifference(0)).toBe(0);
    const treatment = { 100: 500 };
    const control = { 99: 500 };
    expect(mannWhitneyFromBins(treatment, control).pValue).toBeLessThan(1e-6);
    expect(mannWhitneyFromBins(treatment, control, 2).pValue).toBeGreaterThan(0.5);
  });

  it('has no evidence when every request is in one bin', () => {
    expect(mannWhitneyFromBins({ 40: 100 }, { 40: 100 }).pValue).toBe(1);
  });
});

describe('alpha spending across looks', () => {
  const comparison = (spending: ExposurePolicy['comparison']['spending'], maxLooksPerStep = 30): ExposurePolicy['comparison'] => ({
    method: 'per-request',
    power: { level: 0.8, detect: { serverErrorRate: 0.035, latencyMs: 500 }, outOfReach: 'keep-length' },
    preExposureDays: 7,
    sampleRatioPValue: 0.001,
    context7PricePerCall: 0.001,
    currency: 'USD',
    alpha: 0.05,
    spending,
    maxLooksPerStep,
    figures: { serverErrorRate: { test: 'two-proportion', minimumDifference: 0 } },
  });

  it('spends the Lan–DeMets functions as published', () => {
    expect(alphaSpent('pocock', 0.05, 0.5)).toBeCloseTo(0.031005725347913876, 12);
    expect(alphaSpent('obrien-fleming', 0.05, 0.5)).toBeCloseTo(0.005574596680784415, 6);
    for (const rule of ['pocock', 'obrien-fleming'] as const) {
      expect(alphaSpent(rule, 0.05, 0)).toBe(0);
      expect(alphaSpent(rule, 0.05, 1)).toBeCloseTo(0.05, 6);
      expect(alphaSpent(rule, 0.05, 3)).toBeCloseTo(0.05, 6);
    }
  });

  it('gives looks levels that sum to at most alpha, and nothing past the step or maxLooks', () => {
    for (const rule of ['pocock', 'obrien-fleming', 'bonferroni'] as const) {
      let total = 0;
      let previousFraction = 0;
      for (let look = 1; look <= 12; look++) {
        const fraction = look / 8; // four looks after the step's analysis time
        total += alphaForLook(comparison(rule, 10), { look, fraction, previousFraction });
        previousFraction = fraction;
      }
      expect(total).toBeLessThanOrEqual(0.05 + 1e-12);
      expect(alphaForLook(comparison(rule, 10), { look: 11, fraction: 1, previousFraction: 1 })).toBe(0);
    }
    expect(alphaForLook(comparison('pocock'), { look: 9, fraction: 1.125, previousFraction: 1 })).toBe(0);
  });
});

describe('a figure compared at one look', () => {
  it('is inconclusive below the minimum sample or with no alpha left, worse when significant', () => {
    expect(compareRate('serverErrorRate', { events: 9, n: 50 }, { events: 0, n: 500 }, 0.01, 0.01, 100).verdict).toBe('inconclusive');
    expect(compareRate('serverErrorRate', { events: 60, n: 1000 }, { events: 5, n: 1000 }, 0.01, 0, 100).verdict).toBe('inconclusive');
    const worse = compareRate('serverErrorRate', { events: 60, n: 1000 }, { events: 5, n: 1000 }, 0.01, 0.001, 100);
    expect(worse.verdict).toBe('worse');
    expect(worse.reason).toContain('pooled z');
    expect(compareRate('serverErrorRate', { events: 12, n: 1000 }, { events: 10, n: 1000 }, 0.01, 0.001, 100).verdict).toBe('not_worse');
  });

  it('judges latency on the histograms and reports the medians', () => {
    const slow: LatencyBins = { 110: 400 };
    const fast: LatencyBins = { 100: 400 };
    const margin = { minimumRelativeDifference: 0.1, minimumAddedMs: 0 };
    const result = compareLatency(slow, fast, margin, 0.001, 100);
    expect(result.verdict).toBe('worse');
    expect(result.treatment.value).toBeGreaterThan(result.control.value);
    expect(compareLatency(fast, slow, margin, 0.001, 100).verdict).toBe('not_worse');
  });

  it('adds a fixed time to the control: the remote call a healthy treatment pays, which no relative margin absorbs', () => {
    // As measured end to end: treatment reads through the Context7 emulator ~2 ms, control reads local, under 1 ms.
    const treatment: LatencyBins = { [latencyBin(2.1)]: 300, [latencyBin(2.6)]: 100 };
    const control: LatencyBins = { [latencyBin(0.6)]: 300, [latencyBin(0.9)]: 100 };
    expect(compareLatency(treatment, control, { minimumRelativeDifference: 0.1, minimumAddedMs: 0 }, 0.001, 100).verdict).toBe('worse');
    expect(compareLatency(treatment, control, { minimumRelativeDifference: 0.1, minimumAddedMs: 250 }, 0.001, 100).verdict).toBe('not_worse');
    // A Context7 that got slow is still caught beyond the added time.
    const degraded: LatencyBins = { [latencyBin(900)]: 300, [latencyBin(1_400)]: 100 };
    const result = compareLatency(degraded, control, { minimumRelativeDifference: 0.1, minimumAddedMs: 250 }, 0.001, 100);
    expect(result.verdict).toBe('worse');
    expect(result.reason).toContain('+250 ms');
  });
});

describe('the exposure policy', () => {
  it('loads the committed steps and comparison', () => {
    const policy = parsePolicy(POLICY_TEXT);
    expect(policy.exposure.steps.map((step) => step.percent)).toEqual([5, 25, 50, 100]);
    expect(policy.exposure.comparison).toMatchObject({ alpha: 0.05, spending: 'pocock', maxLooksPerStep: 30 });
    expect(Object.keys(policy.exposure.comparison.figures)).toEqual(['serverErrorRate', 'latency']);
  });

  it('defaults the section so policies written before it still load', () => {
    const older = POLICY_TEXT.replace(/^exposure:[\s\S]*?(?=^# "Success Metrics)/m, '');
    expect(older).not.toContain('exposure:');
    expect(parsePolicy(older).exposure).toEqual(parsePolicy(POLICY_TEXT).exposure);
  });

  it('refuses steps that do not rise, a 0% step and a comparison of nothing', () => {
    const problems = (text: string) => {
      try {
        parsePolicy(text, 'edited.yaml');
      } catch (error) {
        if (error instanceof PolicyError) return error.problems.map((p) => `${p.path}: ${p.message}`).join('\n');
        throw error;
      }
      return 'accepted';
    };
    expect(problems(POLICY_TEXT.replace('{ percent: 50, ', '{ percent: 20, '))).toContain('exposure.steps.2.percent: steps must raise the percentage');
    expect(problems(POLICY_TEXT.replace('{ percent: 5, ', '{ percent: 0, '))).toContain('exposure.steps.0.percent');
    expect(problems(POLICY_TEXT.replace('{ percent: 25,  analysisSeconds: 900,', '{ percent: 25,  analysisSeconds: 60,'))).toContain(
      'exposure.steps.1.analysisSeconds: must be at least pollIntervalSeconds (120)',
    );
    const noFigures = POLICY_TEXT.replace(/^ {4}figures:\n/m, '    figures: {}\n').replace(/^ {6}serverErrorRate: .*\n/m, '').replace(/^ {6}latency: .*\n/m, '');
    expect(problems(noFigures)).toContain('exposure.comparison.figures: compare at least one figure');
  });
});

function histogram(values: number[]): LatencyBins {
  const bins: LatencyBins = {};
  for (const value of values) bins[value] = (bins[value] ?? 0) + 1;
  return bins;
}
