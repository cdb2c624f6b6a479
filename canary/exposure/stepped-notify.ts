/**
 * The stepped canary's per-step messages (issue 28): one when a step advances, one when it is held (the
 * operator's pause, a manual gate, or inconclusive) and one when it rolls back, each with the step's figures and
 * the next command to run. Only names, figures and commands: never a token, a key or the webhook's URL.
 */
import { formatP } from '../report/stepped';
import type { SteppedRun } from './stepped-run';
import type { CohortComparison, StepDecision } from './types';

/** The exact command an operator runs next, against this run's state file. */
export function operatorCommand(run: SteppedRun, command: 'status' | 'pause' | 'resume' | 'promote' | 'abort', reason?: string): string {
  const quoted = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
  return `npm run canary -- ${command} --stack ${run.o.stack} --state-file ${quoted(run.o.stateFile.path)}${reason === undefined ? '' : ` --reason ${quoted(reason)}`}`;
}

export function describeComparison(c: CohortComparison): string {
  const value = (v: number) => (c.figure === 'latency' ? `${v.toFixed(0)} ms` : `${(v * 100).toFixed(2)}%`);
  return `${c.figure}: treatment ${value(c.treatment.value)} (n ${c.treatment.n}) vs control ${value(c.control.value)} (n ${c.control.n}), ${c.verdict.replace('_', ' ')}, p=${formatP(c.pValue)} at alpha ${formatP(c.alphaThisLook)}`;
}

/** The step's latest look, for a message: its figures side by side. */
export function stepFigures(decision: StepDecision | undefined): string {
  if (!decision) return 'no readable look at this step';
  const comparisons = decision.comparisons.map(describeComparison);
  return comparisons.length > 0 ? `look ${decision.look}: ${comparisons.join('; ')}` : `look ${decision.look}: no comparison (${decision.percent === 100 ? 'no control at 100%' : 'none yet'})`;
}

/** A message about step `stepIndex` (the one passed or held), with its latest look's figures. */
export async function notifyStep(run: SteppedRun, stepIndex: number, event: 'advance' | 'gate' | 'hold', text: string, next: string): Promise<void> {
  const { o, s, st } = run;
  if (o.dryRun) return;
  const step = st.steps[stepIndex]!;
  await o.notifier.notify(event, text, {
    stack: o.stack,
    deploy: s.deployId ?? 'unknown',
    step: `${stepIndex + 1} of ${st.steps.length} (${step.percent}%)`,
    figures: stepFigures(step.decisions.at(-1)),
    next,
  });
}
