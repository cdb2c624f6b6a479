/**
 * The stepped canary's statistics, measured by simulation (canary/exposure/simulate.ts, fixed seeds): per step,
 * the false-positive rate when the treatment is no worse than the control and every poll is a look, with the
 * policy's alpha spending and naively (every look at the per-look alpha, nothing spent); the other spending rules;
 * and the share of real regressions rolled back within the step. Run by `npm run bench:canary`.
 */
import type { CanaryPolicy } from '../canary/policy';
import { replayLooks, windowBaseline } from '../canary/exposure/analyze-step';
import { mixtureBoundary, mixtureTuning } from '../canary/exposure/clustered';
import { replayClustered, stepBound } from '../canary/exposure/clustered-step';
import { alphaForLook } from '../canary/exposure/compare';
import { normalQuantile } from '../canary/analysis/stats';
import {
  clusteredScopes,
  cohortWorld as clusteredWorld,
  detectionRate,
  falsePositiveRate,
  INDEPENDENT_SCOPES,
  NULL_WORLD as CLUSTERED_NULL,
  perRequest,
  pollsPerStep,
  stepTimeline,
  withoutClusterTables,
  withoutMargins,
  withScopes,
  type RateEstimate,
  type ScopeModel,
  type World,
} from '../canary/exposure/simulate';
import type { CohortObservation } from '../canary/exposure/types';

/** Today's per-request tests on independent requests (the section below compares both methods on clustered traffic). */
const cohortWorld = (...args: Parameters<typeof clusteredWorld>): World => withoutClusterTables(clusteredWorld(...args));
const NULL_WORLD = withoutClusterTables(CLUSTERED_NULL);

const pct = (estimate: RateEstimate) => `${(estimate.rate * 100).toFixed(1).padStart(5)}% ±${(estimate.standardError * 100).toFixed(1)}`;

/** Prints the tables; returns whether every claim held (spending <= alpha within 2 se; regressions caught >= 95%). */
export function benchStepped(clusteredPolicy: CanaryPolicy, runs: number): boolean {
  const policy = perRequest(clusteredPolicy);
  const alpha = policy.exposure.comparison.alpha;
  const tight = withoutMargins(policy);
  const steps = policy.exposure.steps.map((step, index) => ({ step, index })).filter(({ step }) => step.percent < 100);
  let pass = true;
  const withinAlpha = (estimate: RateEstimate) => estimate.rate <= alpha + 2 * Math.max(estimate.standardError, Math.sqrt((alpha * (1 - alpha)) / estimate.runs));

  console.log(`\nstepped canary: false positives per step, treatment and control alike, a look every ${policy.pollIntervalSeconds}s poll, ${runs} runs each, alpha ${alpha}`);
  console.log(`step   looks  ${policy.exposure.comparison.spending} (no margins)  naive (no margins)  ${policy.exposure.comparison.spending} (policy margins)  verdict`);
  for (const { step, index } of steps) {
    const spent = falsePositiveRate(tight, index, NULL_WORLD, runs, 10_000 * (index + 1), 'spending');
    const naive = falsePositiveRate(tight, index, NULL_WORLD, runs, 10_000 * (index + 1), 'naive');
    const margins = falsePositiveRate(policy, index, NULL_WORLD, runs, 10_000 * (index + 1), 'spending');
    const ok = withinAlpha(spent) && withinAlpha(margins);
    pass &&= ok;
    console.log(`${String(step.percent).padStart(3)}%  ${String(pollsPerStep(policy, index)).padStart(6)}  ${pct(spent).padStart(20)}  ${pct(naive).padStart(18)}  ${pct(margins).padStart(25)}  ${ok ? 'PASS' : 'FAIL'}`);
  }

  const middle = steps[Math.min(1, steps.length - 1)]!;
  console.log(`\nspending rules at the ${middle.step.percent}% step (no margins): false positives`);
  for (const spending of ['pocock', 'obrien-fleming', 'bonferroni'] as const) {
    const rule = structuredClone(tight);
    rule.exposure.comparison.spending = spending;
    const estimate = falsePositiveRate(rule, middle.index, NULL_WORLD, runs, 50_000, 'spending');
    pass &&= withinAlpha(estimate);
    console.log(`${spending.padEnd(15)} ${pct(estimate)}  ${withinAlpha(estimate) ? 'PASS' : 'FAIL'}`);
  }

  const regressions = [
    { name: 'Context7 call, healthy (80 -> 120 ms)', world: cohortWorld(() => ({ latencyMedianMs: 120 })) },
    { name: 'Context7 slow (80 -> 400 ms median)', world: cohortWorld(() => ({ latencyMedianMs: 400 })) },
    { name: '5xx 0.5% -> 4%', world: cohortWorld(() => ({ serverErrorRate: 0.04 })) },
    { name: '5xx 0.5% -> 10%', world: cohortWorld(() => ({ serverErrorRate: 0.1 })) },
    { name: 'fallbacks 2% -> 30% (threshold)', world: cohortWorld(() => ({ fallbackRate: 0.3 })) },
  ];
  const powerRuns = Math.max(50, Math.round(runs / 5));
  console.log(`\nregressions rolled back within the step (${powerRuns} runs each; median look of the rollback)`);
  console.log(`regression                            ${steps.map(({ step }) => `${step.percent}%`.padStart(16)).join('')}`);
  for (const regression of regressions) {
    const cells = steps.map(({ index }) => {
      const caught = detectionRate(policy, index, regression.world, powerRuns, 70_000 + index * 1000);
      return `${(caught.rate * 100).toFixed(0)}% look ${Number.isNaN(caught.medianLook) ? '-' : caught.medianLook}`.padStart(16);
    });
    console.log(`${regression.name.padEnd(38)}${cells.join('')}`);
  }
  return pass;
}

const STRENGTHS: { name: string; scopes: ScopeModel }[] = [
  { name: 'independent', scopes: INDEPENDENT_SCOPES },
  { name: 'clustered 0.25', scopes: clusteredScopes(0.25) },
  { name: 'clustered 0.5', scopes: clusteredScopes(0.5) },
  { name: 'clustered 1.0', scopes: clusteredScopes(1) },
];

/** Seconds of traffic before the step: the counters since the instances started, CUPED's fallback covariate. */
const PRE_SECONDS = 900;
/** The persisted history CUPED reads by default (comparison.preExposureDays: 7 days). */
const HISTORY_SECONDS = 7 * 86_400;

function clusteredVerdicts(policy: CanaryPolicy, stepIndex: number, observations: CohortObservation[]) {
  const step = policy.exposure.steps[stepIndex]!;
  return replayClustered(policy, step, observations, (i) => windowBaseline(observations, i, step))!;
}

/** The step's observations without the persisted history: CUPED on the counters since start (the fallback). */
function withoutHistory(observations: CohortObservation[]): CohortObservation[] {
  const [first, ...rest] = observations;
  const { preExposure: _dropped, ...plain } = first!;
  return [plain, ...rest];
}

/**
 * One replay of every look: the policy seconds of the first look that says "worse" (on `figure`, or any), and the
 * step's plan. The always-valid p-value only falls, so "worse within T" is "first worse look <= T".
 */
function firstWorse(policy: CanaryPolicy, stepIndex: number, observations: CohortObservation[], figure?: string) {
  const step = policy.exposure.steps[stepIndex]!;
  let at = Number.POSITIVE_INFINITY;
  const replay = replayClustered(policy, step, observations, (i) => windowBaseline(observations, i, step), (index, comparisons) => {
    if (at === Number.POSITIVE_INFINITY && comparisons.some((c) => c.verdict === 'worse' && (!figure || c.figure === figure))) at = observations[index]!.atSeconds - observations[0]!.atSeconds;
  })!;
  return { at, plan: replay.plan };
}

/**
 * Clustered traffic (heavy-tailed scope volumes: Pareto tail 1.2 over 2,000 scopes; each scope's 5xx rate and
 * latency multiplied by log-normals of sd 1.5 s and 0.6 s at strength s), and the independent case (5,000 equal
 * scopes alike): today's per-request tests and the scope-clustered anytime-valid ones on the same timelines, the
 * latter with CUPED on the counters since start and on 7 days of persisted history.
 * Returns whether the clustered tests held their level (<= alpha within 2 simulation se) at every step and strength.
 */
export function benchClustered(policy: CanaryPolicy, runs: number): boolean {
  const alpha = policy.exposure.comparison.alpha;
  const tight = withoutMargins(policy);
  const tightPerRequest = perRequest(tight);
  const steps = policy.exposure.steps.map((step, index) => ({ step, index })).filter(({ step }) => step.percent < 100);
  const pct = (hits: number, n: number) => `${((hits / n) * 100).toFixed(1).padStart(5)}%`;
  const se = Math.sqrt((alpha * (1 - alpha)) / runs);
  let pass = true;

  console.log(`\nclustered traffic: false positives per step, treatment and control alike, NO margins, a look every ${policy.pollIntervalSeconds}s to analysisSeconds, ${runs} runs each, alpha ${alpha} (se ${(se * 100).toFixed(1)})`);
  console.log('per-request | clustered, CUPED on the counters since start | clustered, CUPED on 7 days of history (the level must hold for both clustered columns)');
  console.log(`traffic          ${steps.map(({ step }) => `${step.percent}%`.padStart(24)).join('')}  verdict`);
  for (const strength of STRENGTHS) {
    const world = { ...withScopes(CLUSTERED_NULL, strength.scopes, PRE_SECONDS), historySeconds: HISTORY_SECONDS };
    let ok = true;
    const cells = steps.map(({ step, index }) => {
      const polls = pollsPerStep(tight, index);
      let old = 0;
      let counters = 0;
      let history = 0;
      for (let run = 0; run < runs; run++) {
        const observations = stepTimeline(tight, index, world, 90_000 + 1_000 * index + run, polls);
        if (replayLooks(tightPerRequest, step, observations).perLook.some((look) => look.some((c) => c.verdict === 'worse'))) old++;
        if (clusteredVerdicts(tight, index, withoutHistory(observations)).latest.some((c) => c.verdict === 'worse')) counters++;
        if (clusteredVerdicts(tight, index, observations).latest.some((c) => c.verdict === 'worse')) history++;
      }
      ok &&= counters / runs <= alpha + 2 * se && history / runs <= alpha + 2 * se;
      return `${pct(old, runs)} |${pct(counters, runs)} |${pct(history, runs)}`.padStart(24);
    });
    pass &&= ok;
    console.log(`${strength.name.padEnd(16)} ${cells.join('')}  ${ok ? 'PASS' : 'FAIL'}`);
  }

  // A step the plan lengthens runs past analysisSeconds: the level must hold over every look to the bound.
  const lengthened = steps.find(({ step }) => stepBound(step) > step.analysisSeconds * 3) ?? steps[0]!;
  const boundLooks = Math.ceil(stepBound(lengthened.step) / policy.pollIntervalSeconds);
  console.log(`\nthe ${lengthened.step.percent}% step over every look to its bound (${boundLooks} looks, ${stepBound(lengthened.step)}s), NO margins, ${runs} runs: clustered, CUPED on the counters since start | on 7 days of history`);
  for (const strength of STRENGTHS) {
    const world = { ...withScopes(CLUSTERED_NULL, strength.scopes, PRE_SECONDS), historySeconds: HISTORY_SECONDS };
    let counters = 0;
    let history = 0;
    for (let run = 0; run < runs; run++) {
      const observations = stepTimeline(tight, lengthened.index, world, 95_000 + run, boundLooks);
      if (clusteredVerdicts(tight, lengthened.index, withoutHistory(observations)).latest.some((c) => c.verdict === 'worse')) counters++;
      if (clusteredVerdicts(tight, lengthened.index, observations).latest.some((c) => c.verdict === 'worse')) history++;
    }
    const ok = counters / runs <= alpha + 2 * se && history / runs <= alpha + 2 * se;
    pass &&= ok;
    console.log(`${strength.name.padEnd(16)} ${pct(counters, runs)} |${pct(history, runs)}  ${ok ? 'PASS' : 'FAIL'}`);
  }

  const powerRuns = Math.max(20, Math.round(runs / 2));
  const regressions = [
    { name: '5xx 0.5% -> 4%', treatment: { serverErrorRate: 0.04 } },
    { name: 'latency 80 -> 400 ms median', treatment: { latencyMedianMs: 400 } },
  ];
  console.log(`\npower: regressions rolled back within the step, policy margins (${powerRuns} runs each): per-request within analysisSeconds | clustered (7 days of history) within its planned length (median)`);
  console.log(`regression / traffic                 ${steps.map(({ step }) => `${step.percent}%`.padStart(26)).join('')}`);
  for (const regression of regressions) {
    for (const strength of [STRENGTHS[0]!, STRENGTHS[2]!]) {
      const world = { ...withScopes(clusteredWorld(() => regression.treatment), strength.scopes, PRE_SECONDS), historySeconds: HISTORY_SECONDS };
      const cells = steps.map(({ step, index }) => {
        const boundPolls = Math.ceil(stepBound(step) / policy.pollIntervalSeconds);
        let old = 0;
        let clustered = 0;
        const lengths: number[] = [];
        for (let run = 0; run < powerRuns; run++) {
          const observations = stepTimeline(policy, index, world, 120_000 + 1_000 * index + run, boundPolls);
          const { at, plan } = firstWorse(policy, index, observations);
          lengths.push(plan.lengthSeconds);
          if (at <= plan.lengthSeconds) clustered++;
          const today = observations.slice(0, pollsPerStep(policy, index) + 1);
          if (replayLooks(perRequest(policy), step, today).perLook.some((look) => look.some((c) => c.verdict === 'worse'))) old++;
        }
        lengths.sort((a, b) => a - b);
        return `${pct(old, powerRuns)} | ${pct(clustered, powerRuns)} ${String(lengths[lengths.length >> 1]).padStart(5)}s`.padStart(26);
      });
      console.log(`${`${regression.name}, ${strength.name}`.padEnd(37)}${cells.join('')}`);
    }
  }

  // The target: the 5 % step catches 5xx 0.5 % -> 4 % at least 80 % of the time within its bound.
  const first = steps[0]!;
  const bound = stepBound(first.step);
  const lengths = [...new Set([1, 1.5, 2, 3].map((f) => Math.round(first.step.analysisSeconds * f)).concat(bound))].filter((l) => l <= bound).sort((a, b) => a - b);
  console.log(`\npower table: 5xx 0.5% -> 4% at the ${first.step.percent}% step, clustered tests, policy margins, ${powerRuns} runs, 5 memory requests a second; by step length (bound ${bound}s), and within the step's planned length (median)`);
  console.log(`traffic, covariate                      ${lengths.map((l) => `${l}s`.padStart(8)).join('')}   planned (median length)`);
  const targetWorld = clusteredWorld(() => ({ serverErrorRate: 0.04 }));
  for (const strength of [STRENGTHS[0]!, STRENGTHS[1]!, STRENGTHS[2]!]) {
    const world = { ...withScopes(targetWorld, strength.scopes, PRE_SECONDS), historySeconds: HISTORY_SECONDS };
    const rows = { counters: { hits: lengths.map(() => 0), planned: 0, lengths: [] as number[] }, history: { hits: lengths.map(() => 0), planned: 0, lengths: [] as number[] } };
    for (let run = 0; run < powerRuns; run++) {
      const observations = stepTimeline(policy, first.index, world, 150_000 + run, Math.ceil(bound / policy.pollIntervalSeconds));
      for (const [key, obs] of [['counters', withoutHistory(observations)], ['history', observations]] as const) {
        const row = rows[key];
        const { at, plan } = firstWorse(policy, first.index, obs, 'serverErrorRate');
        lengths.forEach((length, i) => {
          if (at <= length) row.hits[i]!++;
        });
        row.lengths.push(plan.lengthSeconds);
        if (at <= plan.lengthSeconds) row.planned++;
      }
    }
    for (const [key, label] of [['counters', 'counters since start'], ['history', '7 days of history']] as const) {
      const row = rows[key];
      row.lengths.sort((a, b) => a - b);
      console.log(`${`${strength.name}, ${label}`.padEnd(39)} ${row.hits.map((h) => pct(h, powerRuns).padStart(8)).join('')}   ${pct(row.planned, powerRuns)} (${row.lengths[row.lengths.length >> 1]}s)`);
    }
  }

  // How wide: the z a comparison must reach at each planned look, today's (alpha spent by look) against the
  // anytime-valid mixture's; an interval's half-width is that z times the standard error.
  const middle = steps[Math.min(1, steps.length - 1)]!;
  const polls = pollsPerStep(policy, middle.index);
  const figures = Object.keys(policy.exposure.comparison.figures).length;
  const alphaFigure = alpha / figures;
  const perRate = policy.pollIntervalSeconds * 5 * Math.min(middle.step.percent, 100 - middle.step.percent) / 100;
  console.log(`\ncritical z per look at the ${middle.step.percent}% step (alpha ${alphaFigure} per figure): today's ${policy.exposure.comparison.spending} spending vs the anytime-valid mixture (rates: half alpha each for the exact and normal regimes)`);
  console.log(`look ${Array.from({ length: polls }, (_, i) => String(i + 1).padStart(6)).join('')}   later`);
  const today = Array.from({ length: polls }, (_, i) =>
    normalQuantile(1 - Math.max(1e-12, alphaForLook(policy.exposure.comparison, { look: i + 1, fraction: (i + 1) / polls, previousFraction: i / polls }, alphaFigure))),
  );
  const mixture = (a: number) =>
    Array.from({ length: polls + 1 }, (_, i) => mixtureBoundary(a, (mixtureTuning(a) * perRate * (i + 1)) / middle.step.minimumSamplesPerCohort));
  console.log(`today ${today.map((z) => z.toFixed(2).padStart(6)).join('')}   none (no alpha left)`);
  const latencyZ = mixture(alphaFigure);
  const rateZ = mixture(alphaFigure / 2);
  console.log(`mix.  ${latencyZ.slice(0, polls).map((z) => z.toFixed(2).padStart(6)).join('')}   ${latencyZ[polls]!.toFixed(2)} (latency)`);
  console.log(`mix.  ${rateZ.slice(0, polls).map((z) => z.toFixed(2).padStart(6)).join('')}   ${rateZ[polls]!.toFixed(2)} (rates)`);
  console.log(`(at 5 requests a second; the clustered standard error is also larger than the per-request one by the square root of the design effect)`);
  return pass;
}
