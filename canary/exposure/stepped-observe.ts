/**
 * The stepped canary's observe phase: wait for the step's next look on the policy's schedule (showing the
 * countdown), take one measurement and read the cohorts out of it. Nothing here decides or changes the service.
 */
import type { Measurement } from '../analysis/measurement';
import { observeCohorts } from './observe';
import type { SteppedRun } from './stepped-run';
import type { CohortObservation } from './types';

export type Look =
  | { readable: true; measurement: Measurement; observation: CohortObservation }
  | { readable: false; measurement: Measurement; detail: string };

/** Look k of the step is due k poll intervals after it began (the first, the baseline, right away). */
export async function takeLook(run: SteppedRun): Promise<Look> {
  const { o, s, st } = run;
  const step = st.steps[st.stepIndex]!;
  const taken = s.measurements.length - step.fromMeasurement!;
  await waitUntil(run, step.startedAtSeconds! + taken * o.policy.pollIntervalSeconds);
  const measurement = await o.source.measure(Math.round(run.policySeconds() * 1000) / 1000);
  s.measurements.push(measurement);
  const observed = observeOf(run, measurement);
  return observed.ok ? { readable: true, measurement, observation: observed.observation } : { readable: false, measurement, detail: observed.detail };
}

/** The cohorts of one measurement, judged against the deploy under analysis. */
export function observeOf(run: SteppedRun, measurement: Measurement): ReturnType<typeof observeCohorts> {
  const deployId = run.s.deployId ?? undefined;
  const createdAt = run.s.analysedDeploy?.createdAt;
  const cached = observed.get(measurement);
  if (cached && cached.deployId === deployId && cached.createdAt === createdAt) return cached.result;
  const result = observeCohorts(measurement, deployId, createdAt);
  observed.set(measurement, { deployId, createdAt, result });
  return result;
}

/**
 * A recorded measurement never changes, so what it shows is worked out once per (deploy, deploy time), not at every
 * look: every look judges the step's observations so far, and re-validating each sample (zod) and re-summing each
 * cluster table at every look grew with the square of the looks (issue 23: a third of a stepped run's CPU at 60x).
 * The observation is the same object each time, so the cluster tables' dense form (canary/exposure/clustered.ts)
 * is cached with it. Its figures are read, never changed, by what judges them.
 */
const observed = new WeakMap<Measurement, { deployId: string | undefined; createdAt: string | undefined; result: ReturnType<typeof observeCohorts> }>();

/** Every readable observation from measurement `from` on: what analyzeStep judges a step by. */
export function observationsOf(run: SteppedRun, from: number): CohortObservation[] {
  return run.s.measurements.slice(from).flatMap((m) => {
    const observed = observeOf(run, m);
    return observed.ok ? [observed.observation] : [];
  });
}

async function waitUntil(run: SteppedRun, dueAtPolicySeconds: number): Promise<void> {
  const { o, st } = run;
  for (;;) {
    const now = run.policySeconds();
    const remaining = dueAtPolicySeconds - now;
    if (remaining <= 0) return;
    const step = st.steps[st.stepIndex]!;
    o.progress.countdown({
      policySeconds: now,
      nextPollInSeconds: remaining,
      nextCheckpoint: `step ${st.stepIndex + 1} (${step.percent}%) length`,
      checkpointInSeconds: step.startedAtSeconds! + o.policy.exposure.steps[st.stepIndex]!.analysisSeconds - now,
    });
    // At least 1 ms (as setTimeout would): a remainder lost to float rounding must not spin a fake clock.
    await o.sleep(Math.max(1, Math.min(run.realMs(remaining), 1000)));
  }
}
