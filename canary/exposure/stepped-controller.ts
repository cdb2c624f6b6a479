/**
 * The stepped canary's live loop (progressive exposure): set a step's percentage at runtime and wait until every
 * instance applied it, measure on the policy's schedule, judge each look with the pure analyzeStep, then advance,
 * hold, promote at the last step, or roll back: the kill switch first (percent 0, timed until every instance
 * applied it), then today's durable rollback (flag off, redeploy, latch, verify). Everything is recorded in the
 * state file before the next action, so a crashed run resumes and never repeats an action; reports are
 * rewritten after every look.
 *
 * Each turn of the loop goes through the same phases, each in its own module:
 *   observe (stepped-observe.ts) -> decide (analyzeStep, then stepped-rules.ts) -> apply operator requests
 *   (stepped-operator.ts, canary/operator/) -> act (stepped-act.ts) -> report.
 */
import { classifyHealth } from '../analysis/measurement';
import { rollbackDuration } from '../actions/rollback-timing';
import { OUTCOME_EXIT_CODES } from '../format';
import type { CanaryOutcome } from '../report-summary';
import { buildSteppedReport, formatP, writeSteppedReports } from '../report/stepped';
import { runFacts } from '../report/report';
import { actOnDecision, applyRuling, checkCeilingBeforeFirstStep, enterStep } from './stepped-act';
import { judgedAsExposedNow, nothingToJudge } from './dry-run';
import { observationsOf, observeOf, takeLook, type Look } from './stepped-observe';
import { answerOperatorRequests } from './stepped-operator';
import { withPreExposure } from './pre-exposure';
import { ruleOnDecision, ruleOnUnreadable, type Ruling } from './stepped-rules';
import { killSwitchSeconds, openSteppedRun, type SteppedRun, type SteppedRunOptions, type SteppedRunResult } from './stepped-run';
import type { StepDecision } from './types';

export { killSwitchSeconds } from './stepped-run';
export type { AnalyzeStep, SteppedPolicy, SteppedPolicySection, SteppedRunOptions, SteppedRunResult } from './stepped-run';

export async function runSteppedCanary(o: SteppedRunOptions): Promise<SteppedRunResult> {
  const run = await openSteppedRun(o);
  const { s, st } = run;
  await checkCeilingBeforeFirstStep(run);

  while (s.phase === 'analysing') {
    if (!(await enterStep(run))) break;
    const look = await takeLook(run);
    const { ruling, decision } = decide(run, look);
    const ruled = await answerOperatorRequests(run, ruling, decision);
    await applyRuling(run, ruled);
    writeInterimReport(run);
  }

  if (s.phase === 'acting') {
    s.outcome = await actOnDecision(run);
    s.phase = 'done';
    s.finishedAt = run.iso();
    run.save();
  }
  const outcome = s.outcome ?? 'held';
  const reportPaths = writeSteppedReports(o.reportDir, buildSteppedReport(reportInput(run, outcome, s.finishedAt ?? run.iso())));
  o.progress.info(`outcome: ${outcome}; exposure reached ${st.exposureReachedPercent}%; reports in ${o.reportDir}`);
  return { outcome, exitCode: OUTCOME_EXIT_CODES[outcome], state: s, reportPaths };
}

/** The decide phase: the step's observations so far judged by analyzeStep (recorded), then what to do about it. */
function decide(run: SteppedRun, look: Look): { ruling: Ruling; decision?: StepDecision } {
  const { o, s, st } = run;
  const index = st.stepIndex;
  const step = st.steps[index]!;
  if (!look.readable) {
    run.save();
    const ofStep = s.measurements.slice(step.fromMeasurement);
    const unreadable = trailing(ofStep, (m) => !observeOf(run, m).ok);
    const down = trailing(ofStep, (m) => classifyHealth(m.health).state === 'down');
    o.progress.warn(`step ${index + 1} (${step.percent}%): unreadable measurement (${look.detail}); ${unreadable} in a row`);
    return { ruling: ruleOnUnreadable(o.policy, { percent: step.percent, detail: look.detail, unreadable, down, deployKnown: Boolean(s.deployId) }, run.leftAt) };
  }
  s.deployId ??= look.observation.deployId;
  // A dry run sets no exposure: it judges the split the fleet applies now with this step's rules (dry-run.ts).
  const appliedNow = look.observation.exposure.percent;
  const nothing = o.dryRun ? nothingToJudge(appliedNow, step.percent) : null;
  if (nothing) return { ruling: { kind: 'stop', decision: 'hold', trigger: 'dry_run_nothing_to_judge', reason: nothing, judged: false } };
  const decision = o.analyzeStep(o.dryRun ? judgedAsExposedNow(o.policy, index, appliedNow) : o.policy, index, withPreExposure(observationsOf(run, step.fromMeasurement!), run.preExposure));
  step.decisions.push(decision);
  run.save();
  o.progress.info(`${o.dryRun ? `dry run, judging the cohorts as they are (${appliedNow}% exposed now; the step is ${step.percent}%): would ` : ''}${describeLook(decision, o.policy.exposure.steps.length)}`);
  const dryRun = o.dryRun ? { appliedNow } : undefined;
  return { ruling: ruleOnDecision(o.policy, decision, run.policySeconds() - step.startedAtSeconds!, run.leftAt, dryRun), decision };
}

function reportInput(run: SteppedRun, outcome: CanaryOutcome, finishedAt: string) {
  const { o, s } = run;
  return {
    ...runFacts(o, s, outcome, finishedAt),
    state: s,
    observationsOf: (from: number) => withPreExposure(observationsOf(run, from), run.preExposure),
    rollbackDuration: rollbackDuration(s, o.policy.rollback.maxDurationMinutes),
    killSwitchSeconds: killSwitchSeconds(s),
  };
}

function writeInterimReport(run: SteppedRun): void {
  try {
    writeSteppedReports(run.o.reportDir, buildSteppedReport(reportInput(run, 'held', run.iso())));
  } catch (error) {
    run.o.progress.warn(`could not write the interim report: ${(error as Error).message}`);
  }
}

function trailing<T>(items: T[], failing: (item: T) => boolean): number {
  let count = 0;
  for (let i = items.length - 1; i >= 0 && failing(items[i]!); i--) count++;
  return count;
}

export function describeLook(decision: StepDecision, stepCount: number): string {
  const comparisons = decision.comparisons
    .map((c) => `${c.figure} ${c.verdict} (${c.test}, p=${formatP(c.pValue)}, alpha ${formatP(c.alphaThisLook)})`)
    .join('; ');
  return `step ${decision.stepIndex + 1}/${stepCount} (${decision.percent}%) look ${decision.look}: ${decision.kind.toUpperCase()}: ${decision.reason}${comparisons ? ` | ${comparisons}` : ''}`;
}
