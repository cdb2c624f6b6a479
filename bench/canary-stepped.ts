/**
 * The stepped canary's statistics, measured by simulation (canary/exposure/simulate.ts, fixed seeds): per step,
 * the false-positive rate when the treatment is no worse than the control and every poll is a look, with the
 * policy's alpha spending and naively (every look at the per-look alpha, nothing spent); the other spending rules;
 * and the share of real regressions rolled back within the step. Run by `npm run bench:canary`.
 */
import type { CanaryPolicy } from '../canary/policy';
import { cohortWorld, detectionRate, falsePositiveRate, NULL_WORLD, pollsPerStep, withoutMargins, type RateEstimate } from '../canary/exposure/simulate';

const pct = (estimate: RateEstimate) => `${(estimate.rate * 100).toFixed(1).padStart(5)}% ±${(estimate.standardError * 100).toFixed(1)}`;

/** Prints the tables; returns whether every claim held (spending <= alpha within 2 se; regressions caught >= 95%). */
export function benchStepped(policy: CanaryPolicy, runs: number): boolean {
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
