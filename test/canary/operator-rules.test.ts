/**
 * The stepped canary's "apply operator requests" phase (canary/exposure/stepped-operator.ts ruleWithRequests):
 * pure, from the canary's own ruling at a look and the pending requests to the ruling acted on and one answer each.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OperatorRequest } from '../../canary/operator/requests';
import { ruleWithRequests, type LookContext } from '../../canary/exposure/stepped-operator';
import type { Ruling } from '../../canary/exposure/stepped-rules';
import type { CohortComparison, StepDecision } from '../../canary/exposure/types';
import { loadPolicy } from '../../canary/policy';

const base = loadPolicy(join(__dirname, 'fixtures/stepped-policy.yaml'));
const NOW = '2026-12-07T01:00:00.000Z';
const request = (command: OperatorRequest['command'], actor = 'alice'): OperatorRequest => ({ id: `${command}-${actor}`, command, actor, reason: `${command} please`, requestedAt: NOW });
const comparison = (verdict: CohortComparison['verdict']): CohortComparison => ({
  figure: 'serverErrorRate',
  test: 'two-proportion',
  treatment: { value: 0.01, n: 100 },
  control: { value: 0.01, n: 900 },
  pValue: 0.5,
  alphaThisLook: 0.01,
  verdict,
  reason: 'r',
});
const decision = (kind: StepDecision['kind'], verdicts: CohortComparison['verdict'][], stepIndex = 0): StepDecision => ({ kind, stepIndex, percent: base.exposure.steps[stepIndex]!.percent, reason: 'analysis says so', comparisons: verdicts.map(comparison), look: 2 });
const look = (over: Partial<LookContext> = {}, policy = base): LookContext => ({ policy, stepIndex: 0, decision: decision('hold', ['inconclusive']), now: NOW, ...over });
const ADVANCE: Ruling = { kind: 'advance', detail: 'step 1 (5%) passed' };
const ROLLBACK: Ruling = { kind: 'stop', decision: 'rollback', trigger: 'step_rollback', reason: 'at 5%: worse', judged: false };
const AGAIN: Ruling = { kind: 'look_again' };
const none = { paused: undefined, gate: undefined };

describe('operator requests at a look', () => {
  it("the canary's own rollback supersedes every request at the same look, a promote included", () => {
    const out = ruleWithRequests(ROLLBACK, [request('promote'), request('pause'), request('abort')], none, look({ decision: decision('rollback', ['worse']) }));
    expect(out.ruling).toBe(ROLLBACK);
    expect(out.answers.map((a) => a.outcome)).toEqual(['superseded', 'superseded', 'superseded']);
    expect(out.answers[0]!.detail).toContain('the canary decided rollback (step_rollback) at this look');
  });

  it('abort is the automatic rollback, named for the operator; later requests at that look are superseded', () => {
    const out = ruleWithRequests(AGAIN, [request('abort', 'bob'), request('promote')], none, look());
    expect(out.ruling).toMatchObject({ kind: 'stop', decision: 'rollback', trigger: 'operator_abort', by: { actor: 'bob', reason: 'abort please' } });
    expect(out.answers.map((a) => [a.request.command, a.outcome])).toEqual([['abort', 'applied'], ['promote', 'superseded']]);
  });

  it('pause holds the canary\'s own advance (recorded once), resume lifts it', () => {
    const paused = ruleWithRequests(ADVANCE, [request('pause')], none, look({ decision: decision('advance', ['not_worse']) }));
    expect(paused.ruling).toEqual(AGAIN);
    expect(paused.held).toMatchObject({ by: 'pause', newly: true });
    expect(paused.held!.detail).toContain('the canary would have advanced to 25%');
    const again = ruleWithRequests(ADVANCE, [], { paused: paused.paused, gate: undefined }, look());
    expect(again).toMatchObject({ ruling: AGAIN, held: { newly: false } });
    const resumed = ruleWithRequests(ADVANCE, [request('resume')], { paused: again.paused, gate: undefined }, look());
    expect(resumed.ruling).toBe(ADVANCE);
    expect(resumed.paused).toBeUndefined();
    expect(ruleWithRequests(AGAIN, [request('resume')], none, look()).answers[0]).toMatchObject({ outcome: 'refused', detail: 'the canary was not paused' });
  });

  it('promote is refused while the comparison is open, unless the policy lets it skip the comparison', () => {
    const refused = ruleWithRequests(AGAIN, [request('promote')], none, look());
    expect(refused.ruling).toEqual(AGAIN);
    expect(refused.answers[0]).toMatchObject({ outcome: 'refused' });
    expect(refused.answers[0]!.detail).toMatch(/forbids skipping the comparison .* serverErrorRate is inconclusive \(p=0.50, n 100\/900\)/);
    const nothingYet = ruleWithRequests(AGAIN, [request('promote')], none, look({ decision: decision('hold', []) }));
    expect(nothingYet.answers[0]!.detail).toContain('compared nothing yet');
    const concluded = ruleWithRequests(AGAIN, [request('promote')], none, look({ decision: decision('hold', ['not_worse']) }));
    expect(concluded.ruling).toMatchObject({ kind: 'advance', by: { actor: 'alice' } });
    const lenient = structuredClone(base);
    lenient.operator.promoteMaySkipComparison = true;
    expect(ruleWithRequests(AGAIN, [request('promote')], none, look({}, lenient)).ruling).toMatchObject({ kind: 'advance' });
    expect(ruleWithRequests(AGAIN, [request('promote')], none, look({ decision: undefined }, lenient)).answers[0]!.detail).toContain('unreadable');
  });

  it('a promote at the same look as the canary\'s own advance is superseded by it; at the last step it promotes the rollout', () => {
    const own = ruleWithRequests(ADVANCE, [request('promote')], none, look({ decision: decision('advance', ['not_worse']) }));
    expect(own.answers[0]).toMatchObject({ outcome: 'superseded', detail: 'the canary passed step 1 (5%) itself at this look' });
    const last = ruleWithRequests(AGAIN, [request('promote')], none, look({ stepIndex: 3, decision: decision('hold', [], 3) }));
    expect(last.ruling).toMatchObject({ kind: 'stop', decision: 'promote', trigger: 'operator_promote', judged: true });
  });

  it('a manual gate stops the advance into its step until a promote, which passes it', () => {
    const gated = structuredClone(base);
    gated.operator.manualGatesBeforePercent = [50];
    const at = look({ stepIndex: 1, decision: decision('advance', ['not_worse'], 1) }, gated);
    const stopped = ruleWithRequests({ kind: 'advance', detail: 'step 2 (25%) passed' }, [], none, at);
    expect(stopped).toMatchObject({ ruling: AGAIN, gate: { stepIndex: 2, beforePercent: 50, since: NOW }, held: { by: 'gate', newly: true } });
    const still = ruleWithRequests({ kind: 'advance', detail: 'x' }, [], { paused: undefined, gate: stopped.gate }, at);
    expect(still.held).toMatchObject({ newly: false });
    const passed = ruleWithRequests({ kind: 'advance', detail: 'x' }, [request('promote', 'carol')], { paused: undefined, gate: stopped.gate }, at);
    expect(passed).toMatchObject({ ruling: { kind: 'advance', by: { actor: 'carol' } }, gate: undefined });
    expect(passed.answers[0]).toMatchObject({ outcome: 'applied', detail: 'next 50%' });
  });
});
