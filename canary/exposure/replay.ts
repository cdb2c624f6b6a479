/**
 * `canary replay` of a stepped canary's report.json: the run is walked again, step by step, with the stepped analysis
 * (analyzeStep, its looks and its alpha spending) over the measurements the run recorded at each step. Pure.
 *
 * A replay can only judge what was measured: the run's exposure changes decided which measurements belong to which
 * step. When the replayed decisions leave the recorded path (advancing earlier, or still holding where the run
 * advanced), there are no measurements for what would have followed: the replay says so and gives no verdict,
 * never a guessed one. The rules per look are the live controller's (canary/exposure/stepped-controller.ts): advance,
 * promote at the last step, roll back, abort, or hold until the step's length and looks are spent.
 */
import { z } from 'zod';
import { classifyHealth, measurementSchema, type Measurement } from '../analysis/measurement';
import type { SteppedPolicy } from './stepped-controller';
import { observeCohorts } from './observe';
import type { CohortObservation, StepDecision } from './types';

/** What replay reads of a stepped report.json (canary/report/stepped.ts SteppedReport). */
export const steppedReportSchema = z.object({
  kind: z.literal('stepped'),
  summary: z.object({ deployId: z.string(), outcome: z.string() }),
  dryRun: z.boolean().optional(),
  policy: z.unknown(),
  decision: z.object({ kind: z.string(), trigger: z.string(), reason: z.string(), atSeconds: z.number(), stepIndex: z.number() }).nullable(),
  steps: z.array(
    z.object({
      percent: z.number(),
      startedAtSeconds: z.number().nullable(),
      fromMeasurement: z.number().int().nonnegative().nullable().optional(),
      looks: z.number(),
      lastDecision: z.object({ kind: z.string() }).passthrough().nullable(),
    }),
  ),
  measurements: z.array(measurementSchema),
});
export type SteppedReportForReplay = z.infer<typeof steppedReportSchema>;

export interface SteppedVerdict {
  kind: 'promote' | 'rollback' | 'hold' | 'abort';
  trigger: string;
  stepIndex: number;
  reason: string;
}

export interface SteppedReplayResult {
  /** one line per look, then the verdict */
  lines: string[];
  verdict: SteppedVerdict | null;
  /** why there is no verdict (the replay left the recorded path, or the run ended undecided) */
  noVerdict?: string;
}

type AnalyzeStep = (policy: SteppedPolicy, stepIndex: number, observations: CohortObservation[]) => StepDecision;

/** Decisions that came from the live service, not from measurements: replayed as recorded. */
const LIVE_ONLY_TRIGGERS = new Set(['exposure_ceiling', 'exposure_unset']);

export function replaySteppedReport(report: SteppedReportForReplay, policy: SteppedPolicy, analyzeStep: AnalyzeStep): SteppedReplayResult {
  const steps = policy.exposure.steps;
  const recordedPercents = report.steps.map((s) => s.percent);
  if (recordedPercents.join() !== steps.map((s) => s.percent).join()) {
    throw new RangeError(`the report's steps (${recordedPercents.join(' → ')}) are not the policy's (${steps.map((s) => s.percent).join(' → ')}): replay it with the policy it was run with`);
  }
  const lines: string[] = [];
  const deployId = report.summary.deployId === 'unknown' ? undefined : report.summary.deployId;
  const m = report.measurements;
  const recorded = report.decision;
  if (recorded && LIVE_ONLY_TRIGGERS.has(recorded.trigger)) {
    lines.push(`the run stopped on what the live service answered, not on a measurement: ${recorded.reason}`);
    return { lines, verdict: { kind: recorded.kind as SteppedVerdict['kind'], trigger: recorded.trigger, stepIndex: recorded.stepIndex, reason: recorded.reason } };
  }
  const fromOf = (index: number): number | null => {
    const step = report.steps[index];
    if (!step || step.startedAtSeconds === null) return null;
    if (typeof step.fromMeasurement === 'number') return step.fromMeasurement;
    // Reports written before fromMeasurement was recorded: the step's first measurement is the first at its start.
    const at = m.findIndex((x) => x.atSeconds >= step.startedAtSeconds! - 0.001);
    return at < 0 ? m.length : at;
  };
  const observe = (x: Measurement) => observeCohorts(x, deployId);

  for (let index = 0; index < steps.length; index++) {
    const from = fromOf(index);
    const label = `step ${index + 1} (${steps[index]!.percent}%)`;
    if (from === null) return noVerdict(`the recorded run never reached ${label}: there are no measurements to judge it with`);
    const nextFrom = fromOf(index + 1) ?? m.length;
    const startedAt = report.steps[index]!.startedAtSeconds!;
    let advanced = false;
    for (let k = from; k < nextFrom; k++) {
      const measurement = m[k]!;
      const observed = observe(measurement);
      if (!observed.ok) {
        const window = m.slice(from, k + 1);
        const unreadable = trailing(window, (x) => !observe(x).ok);
        const down = trailing(window, (x) => classifyHealth(x.health).state === 'down');
        lines.push(`${label} at policy minute ${(measurement.atSeconds / 60).toFixed(1)}: unreadable (${observed.detail}); ${unreadable} in a row`);
        if (down >= policy.measurement.serviceDownAfterConsecutive && unreadable >= policy.measurement.serviceDownAfterConsecutive && deployId) {
          return verdict('rollback', 'service_down', index, `the service stopped answering at ${steps[index]!.percent}% exposure (metrics and health failed ${down} times in a row)`);
        }
        if (unreadable >= policy.measurement.maxConsecutiveErrors) {
          return verdict('abort', 'metrics_unreadable', index, `per-cohort metrics unreadable ${unreadable} times in a row (${observed.detail})`);
        }
        continue;
      }
      const observations = m.slice(from, k + 1).flatMap((x) => {
        const o = observe(x);
        return o.ok ? [o.observation] : [];
      });
      const decision = analyzeStep(policy, index, observations);
      lines.push(`${label} look ${decision.look} at policy minute ${(measurement.atSeconds / 60).toFixed(1)}: ${decision.kind.toUpperCase()}: ${decision.reason}`);
      const elapsed = measurement.atSeconds - startedAt;
      if (decision.kind === 'advance') {
        if (index + 1 === steps.length) return verdict('promote', 'steps_passed', index, decision.reason);
        if (k !== nextFrom - 1) {
          return noVerdict(`${label} would advance at look ${decision.look}, earlier than the recorded run did: it has no measurements at step ${index + 2} from here`);
        }
        advanced = true;
        break;
      }
      if (decision.kind === 'promote') return verdict('promote', 'steps_passed', index, decision.reason);
      if (decision.kind === 'rollback') return verdict('rollback', 'step_rollback', index, `at ${steps[index]!.percent}% exposure: ${decision.reason}`);
      if (decision.kind === 'abort') return verdict('abort', 'step_abort', index, `at ${steps[index]!.percent}% exposure: ${decision.reason}`);
      if (elapsed >= steps[index]!.analysisSeconds && decision.look >= policy.exposure.comparison.maxLooksPerStep) {
        return verdict('hold', 'step_inconclusive', index, `${label} still inconclusive after ${decision.look} looks: ${decision.reason}`);
      }
    }
    if (advanced) continue;
    if (nextFrom < m.length || fromOf(index + 1) !== null) {
      return noVerdict(`${label} would still hold where the recorded run advanced: there are no more measurements at ${steps[index]!.percent}%`);
    }
    return noVerdict(`the recorded run ended at ${label} before a decision`);
  }
  return noVerdict('the recorded run ended before a decision');

  function verdict(kind: SteppedVerdict['kind'], trigger: string, stepIndex: number, reason: string): SteppedReplayResult {
    return { lines, verdict: { kind, trigger, stepIndex, reason } };
  }
  function noVerdict(why: string): SteppedReplayResult {
    return { lines, verdict: null, noVerdict: why };
  }
}

function trailing<T>(items: T[], test: (item: T) => boolean): number {
  let n = 0;
  for (let i = items.length - 1; i >= 0 && test(items[i]!); i--) n++;
  return n;
}
