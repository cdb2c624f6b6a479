/**
 * The stepped canary's act phase: every change it makes. Setting a step's percentage (and waiting until every
 * instance applied it), moving to the next step or stopping, and acting on the stop's decision: promote, hold,
 * abort, or roll back: the kill switch first (percent 0, timed until every instance applied it), then today's
 * durable rollback (flag off, redeploy, latch, verify). Each change is recorded in the state file before the next.
 */
import { promoteRun, rollBackRun } from '../actions/act';
import { DEFAULT_PRE_EXPOSURE_DAYS, type CanaryPolicy } from '../policy';
import type { CanaryOutcome } from '../report-summary';
import type { ExposureChange } from '../sources/exposure-admin';
import { readPreExposure } from './pre-exposure';
import { notifyStep, operatorCommand, stepFigures } from './stepped-notify';
import type { RuledWithRequests } from './stepped-operator';
import { killSwitchSeconds, type SteppedRun } from './stepped-run';

/** The service refuses a step above the stack's ceiling: find that out before step 1, not after the steps below it. */
export async function checkCeilingBeforeFirstStep(run: SteppedRun): Promise<void> {
  const { o, s, st } = run;
  if (s.phase !== 'analysing' || st.stepIndex !== 0 || st.steps[0]!.fromMeasurement !== undefined || !o.exposure) return;
  const current = await o.exposure.read();
  const highest = Math.max(...o.policy.exposure.steps.map((step) => step.percent));
  if (current.ok && highest > current.state.ceiling) {
    run.stop(
      'abort',
      'exposure_ceiling',
      `the policy's last step is ${highest}% but the service's ceiling (CONTEXT7_EXPOSURE_PERCENT, the stack's memory-rollout:context7ExposurePercent) is ${current.state.ceiling}%: raise the ceiling or end the steps at it; nothing was changed`,
    );
  }
}

/**
 * Sets the current step's percentage once (a resumed run never sets it twice) and starts its observation.
 * False when the change was refused: the run stopped (aborted), exposure where it was.
 */
export async function enterStep(run: SteppedRun): Promise<boolean> {
  const { o, s, st } = run;
  const steps = o.policy.exposure.steps;
  const index = st.stepIndex;
  const step = st.steps[index]!;
  await readCovariate(run);
  if (step.fromMeasurement !== undefined) return true;
  const percent = steps[index]!.percent;
  const by = run.changeBy;
  run.changeBy = undefined;
  const why = `stepped canary: step ${index + 1} of ${steps.length}${by ? ` (promoted by ${by.actor}: ${by.reason || 'no reason given'})` : ''}`;
  const change = await setExposure(run, percent, why, by?.actor);
  step.change = change;
  if (change.version === undefined && !o.dryRun) {
    run.save();
    // A call that timed out may still have been applied: say what the fleet reports now, when it answers.
    const current = o.exposure ? await o.exposure.read() : ({ ok: false, detail: 'no exposure admin access' } as const);
    const previous = index === 0 ? 'the exposure the fleet had before' : `${steps[index - 1]!.percent}% (the previous step)`;
    const holding = current.ok
      ? `${current.state.percent}% (the service reports it now)`
      : `${previous}, unless the unanswered call was applied (the service did not answer: ${current.detail})`;
    run.stop('abort', 'exposure_unset', `could not set exposure to ${percent}%: ${change.failed}; exposure left at ${holding}`);
    return false;
  }
  if (change.failed && !o.dryRun) o.progress.warn(`exposure ${percent}%: ${change.failed}; judging what the instances report`);
  step.startedAtSeconds = run.policySeconds();
  step.fromMeasurement = s.measurements.length;
  run.save();
  return true;
}

/**
 * CUPED's covariate from the metrics history, once per process (a resumed run reads it again), before the step's
 * exposure is set: its one request has the measurement deadline, body included; anything else falls back to the
 * counters since the instances started, and the decisions say so (pre-exposure.ts).
 */
async function readCovariate(run: SteppedRun): Promise<void> {
  const { o } = run;
  const comparison = o.policy.exposure.comparison as Partial<CanaryPolicy['exposure']['comparison']>;
  if (run.preExposure || comparison.method === 'per-request') return;
  run.preExposure = await readPreExposure(o.probe, {
    baseUrl: o.baseUrl,
    days: comparison.preExposureDays ?? DEFAULT_PRE_EXPOSURE_DAYS,
    now: new Date(o.now()),
    deadlineMs: o.policy.measurement.timeoutSeconds * 1000,
  });
  const { source, note } = run.preExposure;
  if (source === 'history') o.progress.info(`CUPED covariate: metrics history, ${note}`);
  else o.progress.warn(`CUPED covariate: ${note}`);
}

/**
 * Carries out the loop's ruling on a look: the next step (set at the next turn), or a recorded stop. A step
 * advanced is announced with its figures; a hold (the operator's pause, a manual gate) is announced once.
 */
export async function applyRuling(run: SteppedRun, ruled: RuledWithRequests): Promise<void> {
  const { st } = run;
  const { ruling, held } = ruled;
  const step = st.steps[st.stepIndex]!;
  if (ruling.kind === 'look_again') {
    if (held?.newly) {
      const next = held.by === 'gate' ? operatorCommand(run, 'promote', `gate before ${ruled.gate?.beforePercent}% approved`) : operatorCommand(run, 'resume', 'hold over');
      await notifyStep(run, st.stepIndex, held.by === 'gate' ? 'gate' : 'hold', `held at ${step.percent}%: ${held.detail}`, next);
    }
    return;
  }
  if (ruling.kind === 'advance' || ruling.judged) st.exposureReachedPercent = Math.max(st.exposureReachedPercent, step.percent);
  if (ruling.kind === 'advance') {
    const passed = st.stepIndex;
    st.stepIndex += 1;
    run.changeBy = ruling.by;
    run.record('advance', true, ruling.detail);
    run.save();
    await notifyStep(run, passed, 'advance', `step ${passed + 1} of ${st.steps.length} (${step.percent}%) passed${ruling.by ? ` on ${ruling.by.actor}'s promote` : ''}; next ${st.steps[st.stepIndex]!.percent}%`, operatorCommand(run, 'status'));
    return;
  }
  run.changeBy = ruling.by;
  run.stop(ruling.decision, ruling.trigger, ruling.reason);
}

/** Acts on the recorded decision, once: the outcome. */
export async function actOnDecision(run: SteppedRun): Promise<CanaryOutcome> {
  const { o, s, st } = run;
  const decision = s.decision!;
  const step = st.steps[decision.stepIndex]!;
  const fields = {
    stack: o.stack,
    deploy: s.deployId ?? 'unknown',
    decision: `${decision.kind} (${decision.trigger}) at ${step.percent}% exposure`,
    reason: decision.reason,
    figures: stepFigures(step.decisions.at(-1)),
    next: operatorCommand(run, 'status'),
  };
  o.progress.info(`DECISION: ${decision.kind} (${decision.trigger}): ${decision.reason}`);
  switch (decision.kind) {
    case 'rollback': {
      if (o.dryRun) {
        run.record('rollback', true, 'dry run: would set exposure to 0% (kill switch), then ENABLE_CONTEXT7_MEMORY=false, redeploy, latch and verify');
        return 'would_roll_back';
      }
      await killSwitch(run, decision.reason);
      const { outcome, summary } = await rollBackRun(run.acting);
      const line = `${killSwitchLine(run)}; ${summary}`;
      o.progress.info(line);
      await o.notifier.notify(outcome === 'rolled_back' ? 'rollback' : 'rollback_unverified', line, fields);
      return outcome;
    }
    case 'promote':
      // The stack file carries the exposure judged, so `pulumi up` never raises it past that (infra/guards.ts).
      return promoteRun(run.acting, s.deployId, fields, st.exposureReachedPercent);
    case 'hold':
      if (!o.dryRun) await o.notifier.notify('hold', decision.reason, fields);
      return 'held';
    case 'abort':
      o.progress.warn(`aborted: ${decision.reason}`);
      if (!o.dryRun) await o.notifier.notify('abort', `aborted: ${decision.reason}`, fields);
      return 'aborted';
  }
}

async function setExposure(run: SteppedRun, percent: number, reason: string, actor?: string): Promise<ExposureChange> {
  const { o } = run;
  if (o.dryRun) {
    run.record('exposure', true, `dry run: would set exposure to ${percent}% (${reason})`);
    return { percent, requestedAt: run.iso(), failed: 'dry run: not set' };
  }
  if (!o.exposure) {
    run.record('exposure', false, `${percent}%: no exposure admin access (CANARY_ADMIN_TOKEN)`);
    return { percent, requestedAt: run.iso(), failed: 'no exposure admin access (CANARY_ADMIN_TOKEN)' };
  }
  const change = await o.exposure.change(percent, reason, o.applyTimeoutMs, actor);
  if (change.failed) run.record('exposure', false, `${percent}%: ${change.failed}`);
  else run.record('exposure', true, `${percent}% applied by every instance (${change.instances?.join(', ') || change.confirmedBy}) in ${change.seconds?.toFixed(2)} s`);
  return change;
}

/** Percent 0 on every instance, timed from the decision; a kill switch that did not land is recorded, and the durable rollback follows either way. */
async function killSwitch(run: SteppedRun, reason: string): Promise<void> {
  const { o, st } = run;
  if (st.killSwitch?.appliedAt) return;
  if (!o.exposure) {
    st.killSwitch = { percent: 0, requestedAt: run.iso(), failed: 'no exposure admin access' };
    run.record('kill-switch', false, 'no exposure admin access: going straight to the durable rollback');
    run.save();
    return;
  }
  st.killSwitch = { percent: 0, requestedAt: run.iso() };
  run.save();
  // An operator's abort: the audit names them; a resumed run (the actor not kept) names the canary.
  const change = await o.exposure.change(0, `stepped canary kill switch: ${reason}`, o.applyTimeoutMs, run.changeBy?.actor);
  st.killSwitch = { ...change };
  run.save();
  run.record('kill-switch', !change.failed, killSwitchLine(run).replace(/^kill switch: /, ''));
}

function killSwitchLine(run: SteppedRun): string {
  const k = run.st.killSwitch;
  if (!k) return 'kill switch not used';
  if (k.failed) return `kill switch NOT confirmed (${k.failed})`;
  const seconds = killSwitchSeconds(run.s);
  return `kill switch: exposure 0% on every instance ${seconds === null ? '' : `${seconds.toFixed(2)} s after the decision`} (${k.seconds?.toFixed(2)} s after the request)`;
}
