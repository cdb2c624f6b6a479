/**
 * The stepped canary's pure analysis on generated timelines (canary/exposure/simulate.ts, fixed seeds), with
 * today's per-request tests (comparison.method per-request; what a service without cluster tables gets): their
 * false-positive rate under a look at every poll on independent requests, their power against real regressions,
 * and the step decisions. The scope-clustered method: exposure-clustered.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeStep } from '../../canary/exposure/analyze-step';
import { alphaForLook, twoProportionTest } from '../../canary/exposure/compare';
import {
  detectionRate,
  falsePositiveRate,
  falsePositiveRates,
  cohortWorld as clusteredWorld,
  NULL_WORLD as CLUSTERED_NULL_WORLD,
  perRequest,
  pollsPerStep,
  withoutClusterTables,
  runStepped,
  stepTimeline,
  withoutMargins,
  type RateEstimate,
  type World,
} from '../../canary/exposure/simulate';
import type { CohortObservation } from '../../canary/exposure/types';
import { loadPolicy } from '../../canary/policy';
import { seededRandom } from '../../canary/timelines/simulate';

const policy = perRequest(loadPolicy(join(__dirname, '../../canary/policy.yaml')));
/** Observations without cluster tables: the per-request analysis does not read them, and the simulation is faster. */
const cohortWorld = (...args: Parameters<typeof clusteredWorld>): World => withoutClusterTables(clusteredWorld(...args));
const NULL_WORLD = withoutClusterTables(CLUSTERED_NULL_WORLD);
const ALPHA = policy.exposure.comparison.alpha;

// CPU-bound simulations: sized to finish in a few seconds on a quiet 2-core machine, with room for a busy one.
describe('false-positive rate under a look at every poll (simulation, fixed seed)', { timeout: 180_000 }, () => {
  const runs = 600;
  const tight = withoutMargins(policy);

  it('stays at or below alpha per step with alpha spending, and naive peeking exceeds it', () => {
    expect(pollsPerStep(tight, 1)).toBeGreaterThanOrEqual(7); // many looks: the case spending is for
    // Both rules on the same 600 seeded timelines, generated once (the generator was half of this file's CPU).
    const [spending, naive] = falsePositiveRates([{ policy: tight, mode: 'spending' }, { policy: tight, mode: 'naive' }], 1, NULL_WORLD, runs, 1_000) as [RateEstimate, RateEstimate];
    console.log(
      `null 25% step, ${pollsPerStep(tight, 1)} looks, ${runs} runs: false positives with Pocock spending ` +
        `${(spending.rate * 100).toFixed(1)}% (se ${(spending.standardError * 100).toFixed(1)}), naive ${(naive.rate * 100).toFixed(1)}% ` +
        `(se ${(naive.standardError * 100).toFixed(1)}), alpha ${ALPHA * 100}%`,
    );
    // The tolerance is the simulation's own standard error (two of them); the Bonferroni-on-increments bound
    // is conservative, so the estimate sits well below alpha.
    expect(spending.rate).toBeLessThanOrEqual(ALPHA + 2 * Math.max(spending.standardError, Math.sqrt((ALPHA * (1 - ALPHA)) / runs)));
    // The same looks tested at the per-look alpha with nothing spent: significantly above alpha.
    expect(naive.rate - 2 * naive.standardError).toBeGreaterThan(ALPHA);
  });

  it('holds for the other spending rules too', () => {
    const spendings = ['obrien-fleming', 'bonferroni'] as const;
    const rules = spendings.map((spending) => {
      const rule = structuredClone(tight);
      rule.exposure.comparison.spending = spending;
      return { policy: rule, mode: 'spending' as const };
    });
    // Both rules on the same 500 seeded timelines, generated once.
    const estimates = falsePositiveRates(rules, 1, NULL_WORLD, 500, 2_000);
    spendings.forEach((spending, i) => expect(estimates[i]!.rate, spending).toBeLessThanOrEqual(ALPHA + 2 * Math.sqrt((ALPHA * (1 - ALPHA)) / 500)));
  });

  it('several rules on shared timelines give exactly what each rule gives on its own', () => {
    const obrien = structuredClone(tight);
    obrien.exposure.comparison.spending = 'obrien-fleming';
    const rules = [{ policy: tight, mode: 'spending' as const }, { policy: tight, mode: 'naive' as const }, { policy: obrien, mode: 'spending' as const }];
    const shared = falsePositiveRates(rules, 1, NULL_WORLD, 40, 1_000);
    expect(shared).toEqual(rules.map(({ policy: p, mode }) => falsePositiveRate(p, 1, NULL_WORLD, 40, 1_000, mode)));
    expect(shared[1]!.hits).toBeGreaterThan(shared[0]!.hits); // not three copies of one estimate
    const otherStep = structuredClone(tight);
    otherStep.exposure.steps[1]!.percent = 30;
    expect(() => falsePositiveRates([rules[0]!, { policy: otherStep, mode: 'spending' }], 1, NULL_WORLD, 1, 1)).toThrow(/must share/);
  });

  it('never rolls back identical cohorts with the committed margins over a whole stepped run', () => {
    for (let seed = 1; seed <= 10; seed++) expect(runStepped(policy, NULL_WORLD, seed).outcome.kind, `seed ${seed}`).toBe('promote');
  });
});

describe('power: a real regression is caught within the step', { timeout: 180_000 }, () => {
  const runs = 100;

  it('latency 80 ms -> 400 ms median (Context7 slow: past the policy\'s +10 % + 250 ms) at the 25% step', () => {
    const slower = detectionRate(policy, 1, cohortWorld(() => ({ latencyMedianMs: 400 })), runs, 5_000);
    expect(slower.rate).toBeGreaterThanOrEqual(0.95);
    expect(slower.medianLook).toBeLessThanOrEqual(pollsPerStep(policy, 1));
  });

  it('a healthy treatment paying a fixed Context7 call (80 ms -> 120 ms median) is not rolled back on latency', () => {
    // The remote call every treatment read makes: within the policy's added 250 ms, so never "worse".
    expect(detectionRate(policy, 1, cohortWorld(() => ({ latencyMedianMs: 120 })), runs, 5_500).rate).toBe(0);
  });

  it('5xx 0.5% -> 4% at the 25% step; at the 5% step (about 225 treatment requests) it takes 0.5% -> 10%', () => {
    expect(detectionRate(policy, 1, cohortWorld(() => ({ serverErrorRate: 0.04 })), runs, 6_000).rate).toBeGreaterThanOrEqual(0.95);
    expect(detectionRate(policy, 0, cohortWorld(() => ({ serverErrorRate: 0.1 })), runs, 7_000).rate).toBeGreaterThanOrEqual(0.95);
  });

  it('fallbacks 2% -> 30% (Context7 failing for the treatment) by the runbook threshold', () => {
    expect(detectionRate(policy, 1, cohortWorld(() => ({ fallbackRate: 0.3 })), runs, 8_000).rate).toBeGreaterThanOrEqual(0.95);
  });

  it('a fallback rate 2% -> 10% by the two-proportion test under Pocock spending, at the 25% step sample sizes', () => {
    // Cohorts that both fall back (a policy comparing fallbackRate): treatment ~120 reads a poll, control ~360.
    const comparison = { ...policy.exposure.comparison, figures: { fallbackRate: { test: 'two-proportion' as const, minimumDifference: 0.02 } } };
    const polls = pollsPerStep(policy, 1);
    const random = seededRandom(9_000);
    const binomial = (n: number, p: number) => Array.from({ length: n }).filter(() => random() < p).length;
    let caught = 0;
    for (let run = 0; run < runs; run++) {
      const t = { events: 0, n: 0 };
      const c = { events: 0, n: 0 };
      for (let look = 1; look <= polls; look++) {
        t.events += binomial(120, 0.1);
        t.n += 120;
        c.events += binomial(360, 0.02);
        c.n += 360;
        const alpha = alphaForLook(comparison, { look, fraction: look / polls, previousFraction: (look - 1) / polls });
        if (twoProportionTest(t, c, 0.02).pValue <= alpha) {
          caught++;
          break;
        }
      }
    }
    expect(caught / runs).toBeGreaterThanOrEqual(0.95);
  });
});

describe('stepped decisions on generated timelines', () => {
  it('a healthy run advances 5 -> 25 -> 50 -> 100 and promotes', () => {
    const run = runStepped(policy, cohortWorld(), 42);
    const moves = run.decisions.filter((d) => d.kind !== 'hold');
    expect(moves.map((d) => [d.kind, d.percent])).toEqual([
      ['advance', 5],
      ['advance', 25],
      ['advance', 50],
      ['promote', 100],
    ]);
    // each step waits for its analysis length: never advances before it
    for (const move of moves) expect(move.look).toBeGreaterThanOrEqual(pollsPerStep(policy, move.stepIndex));
    const last = moves[3]!;
    expect(last.comparisons).toEqual([]);
    expect(last.reason).toContain('no control at 100%');
  });

  it('a degradation that starts at 25% rolls back at step 25 (index 1), 75% of scopes never exposed', () => {
    const degradesAt25 = cohortWorld((percent) => (percent >= 25 ? { latencyMedianMs: 600, serverErrorRate: 0.03 } : {}));
    for (const seed of [1, 2, 3]) {
      const run = runStepped(policy, degradesAt25, seed);
      expect(run.outcome.kind).toBe('rollback');
      expect(run.outcome.stepIndex).toBe(1);
      expect(run.reachedPercent).toBe(25);
      expect(run.outcome.comparisons.some((c) => c.verdict === 'worse')).toBe(true);
      expect(run.outcome.look).toBeLessThanOrEqual(pollsPerStep(policy, 1));
    }
  });

  it('a figure tested earlier in the step stays "not worse" at a look with no alpha left (not "inconclusive")', () => {
    // Past the analysis length Pocock has spent all of alpha: such a look tests nothing new.
    const observations = stepTimeline(policy, 1, cohortWorld(), 11, pollsPerStep(policy, 1) + 3);
    const decision = analyzeStep(policy, 1, observations);
    expect(decision.comparisons.length).toBeGreaterThan(0);
    for (const comparison of decision.comparisons) {
      expect(comparison.alphaThisLook).toBe(0);
      expect(comparison.verdict).toBe('not_worse');
      expect(comparison.reason).toMatch(/not worse at each earlier look of this step that had alpha/);
    }
  });

  it('too few samples holds past the analysis length, saying what it waits for', () => {
    const quiet = cohortWorld(() => ({}), {}, 0.1); // 12 requests a poll: the 5% treatment sees under one a poll
    const observations = stepTimeline(policy, 0, quiet, 3, pollsPerStep(policy, 0) + 2);
    const decision = analyzeStep(policy, 0, observations);
    expect(decision.kind).toBe('hold');
    expect(decision.reason).toMatch(/treatment has \d+ requests in the window, needs 100/);
    expect(decision.comparisons.every((c) => c.verdict === 'inconclusive')).toBe(true);
  });

  it('aborts when the control itself fails (the store), even with the treatment also failing', () => {
    const storeDown = cohortWorld(() => ({ serverErrorRate: 0.25 }), { serverErrorRate: 0.25 });
    const decision = analyzeStep(policy, 1, stepTimeline(policy, 1, storeDown, 4, 3));
    expect(decision.kind).toBe('abort');
    expect(decision.reason).toContain('the control itself is failing');
  });

  it('holds until the fleet applies the step percentage, and restarts the window after a counter reset', () => {
    const observations = stepTimeline(policy, 1, cohortWorld(() => ({ serverErrorRate: 0.2 })), 5, 4);
    const lagging = observations.map((o, i) => (i === 4 ? { ...o, exposure: { ...o.exposure, percent: 5 } } : o));
    const held = analyzeStep(policy, 1, lagging);
    expect(held.kind).toBe('hold');
    expect(held.reason).toContain('the fleet reports 5% exposed, the step is 25%');
    // a restart zeroes the counters at the last observation: no window yet, hold (never a negative rate)
    const restarted = observations.map((o, i) => (i === 4 ? zeroed(o) : o));
    const afterReset = analyzeStep(policy, 1, restarted);
    expect(afterReset.kind).toBe('hold');
    expect(afterReset.reason).toContain('the counters were reset');
    // the first observation at the step's percentage is the baseline: hold at it, judge from the next one
    const lateStart = observations.map((o, i) => (i < 2 ? { ...o, exposure: { ...o.exposure, percent: 5 } } : o));
    expect(analyzeStep(policy, 1, lateStart.slice(0, 3))).toMatchObject({ kind: 'hold' });
    expect(analyzeStep(policy, 1, lateStart).kind).toBe('rollback');
    // ...and the untouched timeline rolls back (the 20% 5xx treatment), so the holds above are the reset's doing
    expect(analyzeStep(policy, 1, observations).kind).toBe('rollback');
  });

  it('holds with only a baseline, and refuses a step that does not exist or observations out of order', () => {
    const observations = stepTimeline(policy, 0, cohortWorld(), 6, 2);
    expect(analyzeStep(policy, 0, observations.slice(0, 1))).toMatchObject({ kind: 'hold', look: 0 });
    expect(analyzeStep(policy, 0, [])).toMatchObject({ kind: 'hold', look: 0 });
    expect(() => analyzeStep(policy, 9, observations)).toThrow(/step 9 does not exist/);
    expect(() => analyzeStep(policy, 0, [observations[1]!, observations[0]!])).toThrow(/time order/);
  });
});

function zeroed(observation: CohortObservation): CohortObservation {
  const zero = (figures: CohortObservation['treatment']) => ({
    ...figures,
    totals: Object.fromEntries(Object.keys(figures.totals).map((key) => [key, 0])) as CohortObservation['treatment']['totals'],
    latencyBins: {},
  });
  return { ...observation, treatment: zero(observation.treatment), control: zero(observation.control) };
}
