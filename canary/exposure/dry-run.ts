/**
 * The stepped canary's dry run changes no exposure, so the fleet never reaches a step's percentage and the analysis
 * would wait for it for ever. Instead a dry run judges the cohorts that exist now: each step's rules (its samples,
 * its looks and alpha, the thresholds) applied to the fleet's current split, and says what it would do at each
 * step. Pure.
 */
import type { SteppedPolicy } from './stepped-controller';

/** The policy with step `index` at the percentage the fleet applies now: what a dry run judges at that step. */
export function judgedAsExposedNow(policy: SteppedPolicy, index: number, appliedPercent: number): SteppedPolicy {
  const steps = policy.exposure.steps.map((step, i) => (i === index ? { ...step, percent: appliedPercent } : step));
  return { ...policy, exposure: { ...policy.exposure, steps } };
}

/** Why a dry run has nothing to judge at the fleet's current exposure, or null when it has. */
export function nothingToJudge(appliedPercent: number, stepPercent: number): string | null {
  if (appliedPercent > 0) return null;
  return `dry run: the fleet exposes 0% now, so there is no treatment cohort to judge; a real run would set ${stepPercent}% and judge it`;
}
