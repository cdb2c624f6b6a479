/**
 * The stepped canary's "apply operator requests" phase, between decide and act. `ruleWithRequests` is pure: the
 * canary's own ruling at this look, the pending requests (oldest first), the operator's hold and the policy's
 * manual gates give the ruling the loop acts on, and one answer per request. The canary's own rollback or abort at
 * a look always wins over a request at the same look (a request never races it: the answer says "superseded").
 * `answerOperatorRequests` reads and answers the side file under its lock (canary/operator/requests.ts).
 */
import type { CanaryPolicy } from '../policy';
import { updateOperatorFile, type OperatorFile, type OperatorRequest } from '../operator/requests';
import { LOOK_AGAIN, type Ruling } from './stepped-rules';
import type { SteppedRun } from './stepped-run';
import type { StepDecision } from './types';

export interface RequestAnswer {
  request: OperatorRequest;
  outcome: 'applied' | 'refused' | 'superseded';
  detail: string;
}

export interface OperatorView {
  paused: OperatorFile['paused'];
  gate: OperatorFile['gate'];
}

export interface RuledWithRequests extends OperatorView {
  ruling: Ruling;
  answers: RequestAnswer[];
  /** the canary would have passed the step and did not: held by the operator's pause, or stopped at a gate */
  held?: { by: 'pause' | 'gate'; detail: string; newly: boolean };
}

export interface LookContext {
  policy: Pick<CanaryPolicy, 'operator'> & { exposure: { steps: { percent: number }[] } };
  stepIndex: number;
  /** analyzeStep's decision at this look; undefined when the look's measurement was unreadable */
  decision: StepDecision | undefined;
  now: string;
}

const passes = (ruling: Ruling) => ruling.kind === 'advance' || (ruling.kind === 'stop' && ruling.decision === 'promote');
const stopsForGood = (ruling: Ruling) => ruling.kind === 'stop' && (ruling.decision === 'rollback' || ruling.decision === 'abort');

export function ruleWithRequests(own: Ruling, pending: OperatorRequest[], view: OperatorView, look: LookContext): RuledWithRequests {
  const steps = look.policy.exposure.steps;
  const index = look.stepIndex;
  const isLast = index === steps.length - 1;
  const percent = steps[index]!.percent;
  const answers: RequestAnswer[] = [];
  let ruling = own;
  let paused = view.paused;
  const wasPaused = Boolean(view.paused);
  let promoted: OperatorRequest | undefined;
  for (const request of pending) {
    const answer = (outcome: RequestAnswer['outcome'], detail: string) => answers.push({ request, outcome, detail });
    if (stopsForGood(ruling) && ruling.kind === 'stop') {
      answer('superseded', ruling.by ? `an earlier request at this look already aborted the rollout (${ruling.by.actor})` : `the canary decided ${ruling.decision} (${ruling.trigger}) at this look; its decision stands: ${ruling.reason}`);
      continue;
    }
    switch (request.command) {
      case 'abort':
        ruling = {
          kind: 'stop',
          decision: 'rollback',
          trigger: 'operator_abort',
          reason: `aborted by ${request.actor} at ${percent}% exposure: ${request.reason || 'no reason given'}`,
          judged: false,
          by: { actor: request.actor, reason: request.reason },
        };
        answer('applied', 'kill switch (0%), then the durable rollback, as an automatic rollback');
        break;
      case 'pause':
        if (paused) answer('refused', `already paused by ${paused.by} since ${paused.since}`);
        else {
          paused = { by: request.actor, reason: request.reason, since: look.now };
          answer('applied', `held at step ${index + 1} (${percent}%): looks go on, no step advances until \`canary resume\` or \`canary promote\``);
        }
        break;
      case 'resume':
        if (!paused) answer('refused', 'the canary was not paused');
        else {
          answer('applied', `the pause by ${paused.by} is lifted: the canary advances when the step passes`);
          paused = undefined;
        }
        break;
      case 'promote': {
        if (promoted) {
          answer('refused', `an earlier promote at this look (${promoted.actor}) already passes step ${index + 1}`);
          break;
        }
        const refusal = promoteRefusal(ruling, look);
        if (refusal) answer('refused', refusal);
        else promoted = request;
        break;
      }
    }
  }
  if (stopsForGood(ruling)) return { ruling, answers, paused, gate: undefined };

  const nextPercent = steps[index + 1]?.percent;
  const gated = ruling.kind === 'advance' && nextPercent !== undefined && look.policy.operator.manualGatesBeforePercent.includes(nextPercent);
  if (promoted) {
    const by = { actor: promoted.actor, reason: promoted.reason };
    if (passes(ruling) && !wasPaused && !gated) {
      answers.push({ request: promoted, outcome: 'superseded', detail: `the canary passed step ${index + 1} (${percent}%) itself at this look` });
      return { ruling: { ...ruling, by } as Ruling, answers, paused: undefined, gate: undefined };
    }
    const why = `promoted by ${promoted.actor}: ${promoted.reason || 'no reason given'}`;
    const next: Ruling = isLast
      ? { kind: 'stop', decision: 'promote', trigger: 'operator_promote', reason: `last step (${percent}%) ${why}`, judged: true, by }
      : { kind: 'advance', detail: `step ${index + 1} (${percent}%) ${why}`, by };
    answers.push({ request: promoted, outcome: 'applied', detail: isLast ? `the rollout is promoted at ${percent}%` : `next ${nextPercent}%${paused ? '; the pause is lifted' : ''}` });
    return { ruling: next, answers, paused: undefined, gate: undefined };
  }
  if (paused && (passes(ruling) || ruling.kind === 'stop')) {
    const would = ruling.kind === 'advance' ? `advanced to ${nextPercent}%` : ruling.kind === 'stop' ? `stopped: ${ruling.decision} (${ruling.trigger})` : '';
    // Recorded once per pause: the first look it held back; the looks after it say the same.
    const newly = !paused.heldAt;
    return { ruling: LOOK_AGAIN, answers, paused: { ...paused, heldAt: paused.heldAt ?? look.now }, gate: view.gate, held: { by: 'pause', detail: `paused by ${paused.by} (${paused.reason || 'no reason given'}): the canary would have ${would}`, newly } };
  }
  if (gated) {
    const newly = view.gate?.stepIndex !== index + 1;
    const gate = newly ? { stepIndex: index + 1, beforePercent: nextPercent, since: look.now } : view.gate;
    return { ruling: LOOK_AGAIN, answers, paused, gate, held: { by: 'gate', detail: `step ${index + 1} (${percent}%) passed; the policy's manual gate stops before ${nextPercent}% until an operator promotes`, newly } };
  }
  return { ruling, answers, paused, gate: ruling.kind === 'look_again' ? view.gate : undefined };
}

/** Why a promote cannot pass the step at this look, or undefined when it can. */
function promoteRefusal(ruling: Ruling, look: LookContext): string | undefined {
  if (passes(ruling)) return undefined;
  const decision = look.decision;
  if (!decision) return `this look's measurement was unreadable: nothing to promote on (the next readable look can)`;
  if (ruling.kind === 'stop') return undefined;
  if (look.policy.operator.promoteMaySkipComparison) return undefined;
  if (decision.percent < 100 && decision.comparisons.length === 0) {
    return `the policy forbids skipping the comparison (operator.promoteMaySkipComparison: false) and this look compared nothing yet (${decision.reason})`;
  }
  const open = decision.comparisons.filter((c) => c.verdict !== 'not_worse');
  if (open.length === 0) return undefined;
  return `the policy forbids skipping the comparison (operator.promoteMaySkipComparison: false) and at this look ${open.map((c) => `${c.figure} is ${c.verdict.replace('_', ' ')} (p=${c.pValue.toPrecision(2)}, n ${c.treatment.n}/${c.control.n})`).join(', ')}`;
}

/**
 * Reads the pending requests and answers them under the side file's lock, in the same locked update that records
 * the answers: a request is answered at this look or, when it arrives after, at the next. Without a side file
 * (a dry run) the canary's own ruling stands.
 */
export async function answerOperatorRequests(run: SteppedRun, own: Ruling, decision: StepDecision | undefined): Promise<RuledWithRequests> {
  const { o, st } = run;
  const none: RuledWithRequests = { ruling: own, answers: [], paused: undefined, gate: undefined };
  if (!o.operatorFile) return none;
  const path = o.operatorFile;
  let result: RuledWithRequests;
  try {
    result = await updateOperatorFile(path, (file) => {
      file.canary = { pid: process.pid, timeScale: o.timeScale, seenAt: run.iso() };
      const pending = file.requests.filter((request) => !request.answer);
      const ruled = ruleWithRequests(own, pending, { paused: file.paused, gate: file.gate }, { policy: o.policy, stepIndex: st.stepIndex, decision, now: run.iso() });
      for (const { request, outcome, detail } of ruled.answers) request.answer = { at: run.iso(), outcome, detail, stepIndex: st.stepIndex };
      file.paused = ruled.paused;
      file.gate = ruled.gate;
      return ruled;
    });
  } catch (error) {
    o.progress.warn(`operator requests not read at this look (${(error as Error).message}); the canary's own decision stands`);
    return none;
  }
  for (const { request, outcome, detail } of result.answers) {
    run.record(`operator-${request.command}`, outcome !== 'refused', `${outcome}: ${request.command} by ${request.actor} (${request.reason || 'no reason given'}), requested ${request.requestedAt}: ${detail}`);
  }
  if (result.held?.newly) run.record(result.held.by === 'gate' ? 'manual-gate' : 'operator-hold', true, result.held.detail);
  if (result.answers.length > 0 || result.held?.newly) run.save();
  return result;
}
