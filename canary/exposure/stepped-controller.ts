/**
 * The stepped canary's live loop (progressive exposure): set a step's percentage at runtime and wait until every
 * instance applied it, measure on the policy's schedule, judge each look with the pure analyzeStep, then advance,
 * hold, promote at the last step, or roll back: the kill switch first (percent 0, timed until every instance
 * applied it), then today's durable rollback (flag off, redeploy, latch, verify). Everything is recorded in the
 * state file before the next action, so a crashed run resumes and never repeats an action; reports are
 * rewritten after every look.
 */
import { classifyHealth } from '../analysis/measurement';
import { promoteRun, rollBackRun, type ActingRun } from '../actions/act';
import { rollbackDuration } from '../actions/rollback-timing';
import { newCanaryState, type CanaryState, type SteppedState } from '../actions/state-file';
import { openBoundState } from '../actions/state-binding';
import type { CanaryRunOptions, CanaryRunResult } from '../controller';
import { OUTCOME_EXIT_CODES } from '../format';
import type { CanaryPolicy } from '../policy';
import type { CanaryOutcome } from '../report-summary';
import type { ExposureChange, ExposurePort } from '../sources/exposure-admin';
import { buildSteppedReport, formatP, writeSteppedReports } from '../report/stepped';
import { runFacts } from '../report/report';
import { judgedAsExposedNow, nothingToJudge } from './dry-run';
import { observeCohorts } from './observe';
import type { CohortObservation, StepDecision } from './types';

/** What the stepped canary reads of the policy's exposure section (canary/policy.ts). */
export interface SteppedPolicySection {
  steps: { percent: number; analysisSeconds: number; minimumSamplesPerCohort: number }[];
  comparison: { maxLooksPerStep: number };
}
export type SteppedPolicy = CanaryPolicy & { exposure: SteppedPolicySection };

export type AnalyzeStep = (policy: SteppedPolicy, stepIndex: number, observations: CohortObservation[]) => StepDecision;

export interface SteppedRunOptions extends Omit<CanaryRunOptions, 'policy' | 'backfill'> {
  policy: SteppedPolicy;
  /** the service's exposure admin API; undefined only for a dry run (which changes nothing) */
  exposure: ExposurePort | undefined;
  analyzeStep: AnalyzeStep;
  /** real milliseconds a change (and the kill switch) may take to reach every instance before it is reported late */
  applyTimeoutMs: number;
}

/** As a whole-flag run's result, without its analysis: the stepped canary's is in the state, step by step. */
export type SteppedRunResult = Omit<CanaryRunResult, 'result'>;


export async function runSteppedCanary(o: SteppedRunOptions): Promise<SteppedRunResult> {
  const { policy, progress } = o;
  const steps = policy.exposure.steps;
  const iso = () => new Date(o.now()).toISOString();
  let loaded = await openBoundState(o, 'stepped', steps.map((step) => step.percent));
  if (!loaded) {
    loaded = {
      ...newCanaryState(o, o.now()),
      stepped: { stepIndex: 0, steps: steps.map((st) => ({ percent: st.percent, decisions: [] })), exposureReachedPercent: 0 },
    };
    o.stateFile.save(loaded);
  } else if (loaded.phase === 'done') {
    progress.info(`state file ${o.stateFile.path} says this rollout already finished (${loaded.outcome}); not acting again. Move it aside to canary a new deploy.`);
  } else {
    progress.info(`resuming from ${o.stateFile.path}: step ${loaded.stepped!.stepIndex + 1} of ${steps.length}, phase ${loaded.phase}`);
  }
  const s = loaded;
  const st = s.stepped as SteppedState;
  const save = () => o.stateFile.save(s);
  const record = (action: string, ok: boolean, detail: string) => {
    s.actions.push({ at: iso(), action, ok, detail });
    (ok ? progress.info : progress.warn)(`${action}: ${detail}`);
  };
  const policySeconds = () => ((o.now() - s.startedAtMs) / 1000) * o.timeScale;
  const realMs = (policySecondsSpan: number) => (policySecondsSpan / o.timeScale) * 1000;
  const acting: ActingRun = { ...o, state: s, save, record, realMs };
  const decide = (kind: 'rollback' | 'promote' | 'hold' | 'abort', trigger: string, reason: string) => {
    s.decision = { kind, trigger, reason, atSeconds: Math.round(policySeconds() * 1000) / 1000, stepIndex: st.stepIndex };
    s.decidedAt ??= iso();
    s.phase = 'acting';
    save();
  };

  // The service refuses a step above the stack's ceiling: find that out before step 1, not after the steps below it.
  if (s.phase === 'analysing' && st.stepIndex === 0 && st.steps[0]!.fromMeasurement === undefined && o.exposure) {
    const current = await o.exposure.read();
    const highest = Math.max(...steps.map((step) => step.percent));
    if (current.ok && highest > current.state.ceiling) {
      decide(
        'abort',
        'exposure_ceiling',
        `the policy's last step is ${highest}% but the service's ceiling (CONTEXT7_EXPOSURE_PERCENT, the stack's memory-rollout:context7ExposurePercent) is ${current.state.ceiling}%: raise the ceiling or end the steps at it; nothing was changed`,
      );
    }
  }

  // What a stop leaves exposure at: a dry run changes nothing.
  const leftAt = (percent: number) => (o.dryRun ? `exposure unchanged (a dry run; it would be ${percent}%)` : `exposure left at ${percent}%`);

  while (s.phase === 'analysing') {
    const index = st.stepIndex;
    const step = st.steps[index]!;
    const policyStep = steps[index]!;
    if (step.fromMeasurement === undefined) {
      const change = await setExposure(policyStep.percent, `stepped canary: step ${index + 1} of ${steps.length}`);
      step.change = change;
      if (change.version === undefined && !o.dryRun) {
        save();
        // A call that timed out may still have been applied: say what the fleet reports now, when it answers.
        const current = o.exposure ? await o.exposure.read() : ({ ok: false, detail: 'no exposure admin access' } as const);
        const previous = index === 0 ? 'the exposure the fleet had before' : `${steps[index - 1]!.percent}% (the previous step)`;
        const holding = current.ok
          ? `${current.state.percent}% (the service reports it now)`
          : `${previous}, unless the unanswered call was applied (the service did not answer: ${current.detail})`;
        decide('abort', 'exposure_unset', `could not set exposure to ${policyStep.percent}%: ${change.failed}; exposure left at ${holding}`);
        break;
      }
      if (change.failed && !o.dryRun) progress.warn(`exposure ${policyStep.percent}%: ${change.failed}; judging what the instances report`);
      step.startedAtSeconds = policySeconds();
      step.fromMeasurement = s.measurements.length;
      save();
    }
    // Look k of the step is due k poll intervals after it began (the first, the baseline, right away).
    const stepMeasurements = s.measurements.slice(step.fromMeasurement);
    await waitUntil(step.startedAtSeconds! + stepMeasurements.length * policy.pollIntervalSeconds, index);
    const measurement = await o.source.measure(Math.round(policySeconds() * 1000) / 1000);
    s.measurements.push(measurement);
    const observed = observeCohorts(measurement, s.deployId ?? undefined, s.analysedDeploy?.createdAt);
    if (!observed.ok) {
      save();
      const unreadable = trailing(s.measurements.slice(step.fromMeasurement), (m) => !observeCohorts(m, s.deployId ?? undefined, s.analysedDeploy?.createdAt).ok);
      const down = trailing(s.measurements.slice(step.fromMeasurement), (m) => classifyHealth(m.health).state === 'down');
      progress.warn(`step ${index + 1} (${step.percent}%): unreadable measurement (${observed.detail}); ${unreadable} in a row`);
      if (down >= policy.measurement.serviceDownAfterConsecutive && unreadable >= policy.measurement.serviceDownAfterConsecutive && s.deployId) {
        decide('rollback', 'service_down', `the service stopped answering at ${step.percent}% exposure (metrics and health failed ${down} times in a row)`);
      } else if (unreadable >= policy.measurement.maxConsecutiveErrors) {
        decide('abort', 'metrics_unreadable', `per-cohort metrics unreadable ${unreadable} times in a row (${observed.detail}); ${leftAt(step.percent)}`);
      }
      writeInterimReport();
      continue;
    }
    s.deployId ??= observed.observation.deployId;
    const observations = observationsOf(step.fromMeasurement!);
    // A dry run sets no exposure: it judges the split the fleet applies now with this step's rules (dry-run.ts).
    const appliedNow = observed.observation.exposure.percent;
    if (o.dryRun && nothingToJudge(appliedNow, step.percent)) {
      decide('hold', 'dry_run_nothing_to_judge', nothingToJudge(appliedNow, step.percent)!);
      break;
    }
    const decision = o.analyzeStep(o.dryRun ? judgedAsExposedNow(policy, index, appliedNow) : policy, index, observations);
    step.decisions.push(decision);
    save();
    progress.info(`${o.dryRun ? `dry run, judging the cohorts as they are (${appliedNow}% exposed now; the step is ${step.percent}%): would ` : ''}${describeLook(decision, steps.length)}`);
    const elapsed = policySeconds() - step.startedAtSeconds!;
    switch (decision.kind) {
      case 'advance':
        st.exposureReachedPercent = Math.max(st.exposureReachedPercent, step.percent);
        if (index + 1 < steps.length) {
          st.stepIndex = index + 1;
          record('advance', true, `${o.dryRun ? `dry run (judged at the ${appliedNow}% exposed now): step ${index + 1} (${step.percent}%) would pass` : `step ${index + 1} (${step.percent}%) passed`}: ${decision.reason}`);
          save();
        } else decide('promote', 'steps_passed', decision.reason);
        break;
      case 'promote':
        st.exposureReachedPercent = Math.max(st.exposureReachedPercent, step.percent);
        decide('promote', 'steps_passed', decision.reason);
        break;
      case 'rollback':
        decide('rollback', 'step_rollback', `at ${step.percent}% exposure: ${decision.reason}`);
        break;
      case 'abort':
        decide('abort', 'step_abort', `at ${step.percent}% exposure: ${decision.reason}; ${leftAt(step.percent)}`);
        break;
      case 'hold':
        // A hold the analysis calls final (sample-ratio mismatch, no traffic, too little data after its one
        // extension) ends the step; so does a per-request step held past its length with no alpha left to spend.
        if (decision.final) {
          decide('hold', 'step_inconclusive', `step ${index + 1} (${step.percent}%): ${decision.reason}; ${leftAt(step.percent)}`);
        } else if (elapsed >= (decision.plan ? (decision.plan.extendedTo ?? decision.plan.lengthSeconds) : policyStep.analysisSeconds) && decision.look >= policy.exposure.comparison.maxLooksPerStep) {
          decide('hold', 'step_inconclusive', `step ${index + 1} (${step.percent}%) still inconclusive after ${decision.look} looks: ${decision.reason}; ${leftAt(step.percent)}`);
        }
        break;
    }
    writeInterimReport();
  }

  if (s.phase === 'acting') {
    s.outcome = await act();
    s.phase = 'done';
    s.finishedAt = iso();
    save();
  }
  const outcome = s.outcome ?? 'held';
  const reportPaths = writeSteppedReports(o.reportDir, buildSteppedReport(reportInput(outcome, s.finishedAt ?? iso())));
  progress.info(`outcome: ${outcome}; exposure reached ${st.exposureReachedPercent}%; reports in ${o.reportDir}`);
  return { outcome, exitCode: OUTCOME_EXIT_CODES[outcome], state: s, reportPaths };

  function observationsOf(from: number): CohortObservation[] {
    return s.measurements.slice(from).flatMap((m) => {
      const observed = observeCohorts(m, s.deployId ?? undefined, s.analysedDeploy?.createdAt);
      return observed.ok ? [observed.observation] : [];
    });
  }

  async function setExposure(percent: number, reason: string): Promise<ExposureChange> {
    if (o.dryRun) {
      record('exposure', true, `dry run: would set exposure to ${percent}% (${reason})`);
      return { percent, requestedAt: iso(), failed: 'dry run: not set' };
    }
    if (!o.exposure) {
      record('exposure', false, `${percent}%: no exposure admin access (CANARY_ADMIN_TOKEN)`);
      return { percent, requestedAt: iso(), failed: 'no exposure admin access (CANARY_ADMIN_TOKEN)' };
    }
    const change = await o.exposure.change(percent, reason, o.applyTimeoutMs);
    if (change.failed) record('exposure', false, `${percent}%: ${change.failed}`);
    else record('exposure', true, `${percent}% applied by every instance (${change.instances?.join(', ') || change.confirmedBy}) in ${change.seconds?.toFixed(2)} s`);
    return change;
  }

  async function waitUntil(dueAtPolicySeconds: number, index: number): Promise<void> {
    for (;;) {
      const now = policySeconds();
      const remaining = dueAtPolicySeconds - now;
      if (remaining <= 0) return;
      const step = st.steps[index]!;
      progress.countdown({
        policySeconds: now,
        nextPollInSeconds: remaining,
        nextCheckpoint: `step ${index + 1} (${step.percent}%) length`,
        checkpointInSeconds: step.startedAtSeconds! + steps[index]!.analysisSeconds - now,
      });
      await o.sleep(Math.min(realMs(remaining), 1000));
    }
  }

  async function act(): Promise<CanaryOutcome> {
    const decision = s.decision!;
    const step = st.steps[decision.stepIndex]!;
    const fields = { stack: o.stack, deploy: s.deployId ?? 'unknown', decision: `${decision.kind} (${decision.trigger}) at ${step.percent}% exposure`, reason: decision.reason };
    progress.info(`DECISION: ${decision.kind} (${decision.trigger}): ${decision.reason}`);
    switch (decision.kind) {
      case 'rollback': {
        if (o.dryRun) {
          record('rollback', true, 'dry run: would set exposure to 0% (kill switch), then ENABLE_CONTEXT7_MEMORY=false, redeploy, latch and verify');
          return 'would_roll_back';
        }
        await killSwitch(decision.reason);
        const { outcome, summary } = await rollBackRun(acting);
        const line = `${killSwitchLine()}; ${summary}`;
        progress.info(line);
        await o.notifier.notify(outcome === 'rolled_back' ? 'rollback' : 'rollback_unverified', line, fields);
        return outcome;
      }
      case 'promote':
        // The stack file carries the exposure judged, so `pulumi up` never raises it past that (infra/guards.ts).
        return promoteRun(acting, s.deployId, fields, st.exposureReachedPercent);
      case 'hold':
        if (!o.dryRun) await o.notifier.notify('hold', decision.reason, fields);
        return 'held';
      case 'abort':
        progress.warn(`aborted: ${decision.reason}`);
        if (!o.dryRun) await o.notifier.notify('abort', `aborted: ${decision.reason}`, fields);
        return 'aborted';
    }
  }

  /** Percent 0 on every instance, timed from the decision; a kill switch that did not land is recorded, and the durable rollback follows either way. */
  async function killSwitch(reason: string): Promise<void> {
    if (st.killSwitch?.appliedAt) return;
    if (!o.exposure) {
      st.killSwitch = { percent: 0, requestedAt: iso(), failed: 'no exposure admin access' };
      record('kill-switch', false, 'no exposure admin access: going straight to the durable rollback');
      save();
      return;
    }
    st.killSwitch = { percent: 0, requestedAt: iso() };
    save();
    const change = await o.exposure.change(0, `stepped canary kill switch: ${reason}`, o.applyTimeoutMs);
    st.killSwitch = { ...change };
    save();
    record('kill-switch', !change.failed, killSwitchLine().replace(/^kill switch: /, ''));
  }

  function killSwitchLine(): string {
    const k = st.killSwitch;
    if (!k) return 'kill switch not used';
    if (k.failed) return `kill switch NOT confirmed (${k.failed})`;
    const seconds = killSwitchSeconds(s);
    return `kill switch: exposure 0% on every instance ${seconds === null ? '' : `${seconds.toFixed(2)} s after the decision`} (${k.seconds?.toFixed(2)} s after the request)`;
  }

  function reportInput(outcome: CanaryOutcome, finishedAt: string) {
    return {
      ...runFacts(o, s, outcome, finishedAt),
      state: s,
      observationsOf,
      rollbackDuration: rollbackDuration(s, policy.rollback.maxDurationMinutes),
      killSwitchSeconds: killSwitchSeconds(s),
    };
  }

  function writeInterimReport(): void {
    try {
      writeSteppedReports(o.reportDir, buildSteppedReport(reportInput('held', iso())));
    } catch (error) {
      progress.warn(`could not write the interim report: ${(error as Error).message}`);
    }
  }
}

/** Decision (wall clock) to every instance applying 0%: null without a confirmed kill switch. */
export function killSwitchSeconds(state: Pick<CanaryState, 'decidedAt' | 'stepped'>): number | null {
  const applied = state.stepped?.killSwitch?.appliedAt;
  if (!applied || !state.decidedAt) return null;
  return Math.max(0, (Date.parse(applied) - Date.parse(state.decidedAt)) / 1000);
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
