/** The stepped canary's decide phase (canary/exposure/stepped-rules.ts): pure, from a look to what the loop does. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ruleOnDecision, ruleOnUnreadable } from '../../canary/exposure/stepped-rules';
import type { StepDecision } from '../../canary/exposure/types';
import { loadPolicy } from '../../canary/policy';

const policy = loadPolicy(join(__dirname, 'fixtures/stepped-policy.yaml'));
const leftAt = (percent: number) => `exposure left at ${percent}%`;
const decision = (kind: StepDecision['kind'], stepIndex: number, look = 3): StepDecision => ({
  kind,
  stepIndex,
  percent: policy.exposure.steps[stepIndex]!.percent,
  reason: 'why',
  comparisons: [],
  look,
});

describe('stepped canary rules', () => {
  it('advances below the last step and promotes (judged) at it', () => {
    expect(ruleOnDecision(policy, decision('advance', 0), 90, leftAt)).toEqual({ kind: 'advance', detail: 'step 1 (5%) passed: why' });
    expect(ruleOnDecision(policy, decision('advance', 3), 90, leftAt)).toMatchObject({ kind: 'stop', decision: 'promote', trigger: 'steps_passed', judged: true });
    expect(ruleOnDecision(policy, decision('promote', 3), 90, leftAt)).toMatchObject({ kind: 'stop', decision: 'promote', judged: true });
  });

  it('rolls back or aborts at once, never counting the step as reached', () => {
    expect(ruleOnDecision(policy, decision('rollback', 1), 10, leftAt)).toEqual({ kind: 'stop', decision: 'rollback', trigger: 'step_rollback', reason: 'at 25% exposure: why', judged: false });
    expect(ruleOnDecision(policy, decision('abort', 1), 10, leftAt)).toMatchObject({ decision: 'abort', reason: 'at 25% exposure: why; exposure left at 25%', judged: false });
  });

  it('holds by looking again until the step is over its length and out of looks, then stops held', () => {
    const max = policy.exposure.comparison.maxLooksPerStep;
    expect(ruleOnDecision(policy, decision('hold', 0, max), 89, leftAt)).toEqual({ kind: 'look_again' });
    expect(ruleOnDecision(policy, decision('hold', 0, max - 1), 500, leftAt)).toEqual({ kind: 'look_again' });
    expect(ruleOnDecision(policy, decision('hold', 0, max), 90, leftAt)).toMatchObject({ kind: 'stop', decision: 'hold', trigger: 'step_inconclusive' });
  });

  it('unreadable looks: rollback when the service went down after answering, abort after too many, else look again', () => {
    const streak = { percent: 25, detail: 'timeout', unreadable: 1, down: 1, deployKnown: true };
    expect(ruleOnUnreadable(policy, streak, leftAt)).toEqual({ kind: 'look_again' });
    const downAfter = policy.measurement.serviceDownAfterConsecutive;
    expect(ruleOnUnreadable(policy, { ...streak, unreadable: downAfter, down: downAfter }, leftAt)).toMatchObject({ decision: 'rollback', trigger: 'service_down' });
    expect(ruleOnUnreadable(policy, { ...streak, unreadable: downAfter, down: downAfter, deployKnown: false }, leftAt)).toEqual({ kind: 'look_again' });
    expect(ruleOnUnreadable(policy, { ...streak, unreadable: policy.measurement.maxConsecutiveErrors, down: 0 }, leftAt)).toMatchObject({ decision: 'abort', trigger: 'metrics_unreadable' });
  });
});
