/**
 * The stepped canary's decide phase, pure: from one look's outcome (analyzeStep's decision, or an unreadable
 * measurement) to what the loop does next: look again, advance to the next step, or stop with a decision.
 */
import type { SteppedPolicy, StopKind } from './stepped-run';
import type { StepDecision } from './types';

/** An operator whose request made the ruling (canary/operator/): named in the records and the exposure audit. */
export interface RequestedBy {
  actor: string;
  reason: string;
}

export type Ruling =
  | { kind: 'look_again' }
  | { kind: 'advance'; detail: string; by?: RequestedBy }
  /** `judged`: the step passed, so the exposure reached counts it */
  | { kind: 'stop'; decision: StopKind; trigger: string; reason: string; judged: boolean; by?: RequestedBy };

export const LOOK_AGAIN: Ruling = { kind: 'look_again' };

/** `leftAt` says what a stop leaves exposure at (a dry run changes nothing). */
export function ruleOnDecision(
  policy: SteppedPolicy,
  decision: StepDecision,
  elapsedSeconds: number,
  leftAt: (percent: number) => string,
  /** a dry run judges the split the fleet applies now (canary/exposure/dry-run.ts): the records say so */
  dryRun?: { appliedNow: number },
): Ruling {
  const steps = policy.exposure.steps;
  const index = decision.stepIndex;
  const percent = decision.percent;
  switch (decision.kind) {
    case 'advance':
      if (index + 1 < steps.length) {
        const passed = dryRun ? `dry run (judged at the ${dryRun.appliedNow}% exposed now): step ${index + 1} (${percent}%) would pass` : `step ${index + 1} (${percent}%) passed`;
        return { kind: 'advance', detail: `${passed}: ${decision.reason}` };
      }
      return { kind: 'stop', decision: 'promote', trigger: 'steps_passed', reason: decision.reason, judged: true };
    case 'promote':
      return { kind: 'stop', decision: 'promote', trigger: 'steps_passed', reason: decision.reason, judged: true };
    case 'rollback':
      return { kind: 'stop', decision: 'rollback', trigger: 'step_rollback', reason: `at ${percent}% exposure: ${decision.reason}`, judged: false };
    case 'abort':
      return { kind: 'stop', decision: 'abort', trigger: 'step_abort', reason: `at ${percent}% exposure: ${decision.reason}; ${leftAt(percent)}`, judged: false };
    case 'hold': {
      // A hold the analysis calls final (sample-ratio mismatch, no traffic, too little data after its one
      // extension) ends the step; so does a per-request step held past its length with no alpha left to spend.
      if (decision.final) {
        return { kind: 'stop', decision: 'hold', trigger: 'step_inconclusive', reason: `step ${index + 1} (${percent}%): ${decision.reason}; ${leftAt(percent)}`, judged: false };
      }
      const length = decision.plan ? (decision.plan.extendedTo ?? decision.plan.lengthSeconds) : steps[index]!.analysisSeconds;
      if (elapsedSeconds >= length && decision.look >= policy.exposure.comparison.maxLooksPerStep) {
        return {
          kind: 'stop',
          decision: 'hold',
          trigger: 'step_inconclusive',
          reason: `step ${index + 1} (${percent}%) still inconclusive after ${decision.look} looks: ${decision.reason}; ${leftAt(percent)}`,
          judged: false,
        };
      }
      return LOOK_AGAIN;
    }
  }
}

export interface UnreadableStreak {
  percent: number;
  detail: string;
  /** trailing measurements of the step whose cohorts could not be read */
  unreadable: number;
  /** trailing measurements of the step whose health probe said down */
  down: number;
  /** a deploy was measured before: the service answered once, so "down" means it stopped answering */
  deployKnown: boolean;
}

export function ruleOnUnreadable(policy: SteppedPolicy, streak: UnreadableStreak, leftAt: (percent: number) => string): Ruling {
  const { percent, unreadable, down } = streak;
  const downAfter = policy.measurement.serviceDownAfterConsecutive;
  if (down >= downAfter && unreadable >= downAfter && streak.deployKnown) {
    return { kind: 'stop', decision: 'rollback', trigger: 'service_down', reason: `the service stopped answering at ${percent}% exposure (metrics and health failed ${down} times in a row)`, judged: false };
  }
  if (unreadable >= policy.measurement.maxConsecutiveErrors) {
    return { kind: 'stop', decision: 'abort', trigger: 'metrics_unreadable', reason: `per-cohort metrics unreadable ${unreadable} times in a row (${streak.detail}); ${leftAt(percent)}`, judged: false };
  }
  return LOOK_AGAIN;
}
