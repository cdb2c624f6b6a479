/**
 * `canary status`: where a stepped rollout is, from its state file, its operator side file and the live service,
 * while the canary runs or after it ended. It never refuses: whatever cannot be read is said in `problems` and the
 * rest is still shown. The step's judgement is the canary's own: the latest look's decision as analyzeStep
 * returned it, and "if the step ended now" is analyzeStep again, with the step's length cut to the time observed.
 */
import { memoryMetricsSchema, type ExposureState } from '../../service/contracts/http';
import type { CanaryState } from '../actions/state-file';
import { observeCohorts } from '../exposure/observe';
import { ruleOnDecision } from '../exposure/stepped-rules';
import type { AnalyzeStep, SteppedPolicy } from '../exposure/stepped-run';
import type { CohortComparison, CohortObservation, StepDecision } from '../exposure/types';
import type { ExposureRead } from '../sources/exposure-admin';
import type { HttpProbe } from '../sources/http';
import type { OperatorFile } from './requests';

export interface InstanceExposure {
  instanceId: string;
  percent: number;
  version: number;
  /** behind the fleet's latest change (an older version, or another percentage) */
  lagging: boolean;
}

export interface CanaryStatus {
  stack: string | null;
  stateFile: string;
  phase: CanaryState['phase'] | 'not started';
  outcome: string | null;
  decision: CanaryState['decision'] | null;
  deployId: string | null;
  step: {
    number: number;
    of: number;
    percent: number;
    analysisSeconds: number;
    /** policy seconds observed at this step (first look to the latest) */
    observedSeconds: number;
    looks: number;
  } | null;
  exposureReachedPercent: number | null;
  live: {
    source: 'admin' | 'metrics' | 'none';
    percent: number | null;
    ceiling: number | null;
    version: number | null;
    instances: InstanceExposure[];
    lagging: string[];
  };
  latestLook: (Pick<StepDecision, 'kind' | 'look' | 'reason'> & { comparisons: CohortComparison[] }) | null;
  timing: {
    timeScale: number;
    /** policy seconds since the run started */
    policySeconds: number | null;
    nextLookInSeconds: number | null;
    stepEndsInSeconds: number | null;
  };
  ifStepEndedNow: { analysis: StepDecision['kind']; reason: string; canary: string; comparisons: CohortComparison[] } | null;
  operator: {
    paused: OperatorFile['paused'] | null;
    gate: OperatorFile['gate'] | null;
    pending: { command: string; actor: string; reason: string; requestedAt: string }[];
    answered: { command: string; actor: string; reason: string; outcome: string; detail: string; at: string }[];
    canary: (NonNullable<OperatorFile['canary']> & { running: boolean | null }) | null;
  };
  problems: string[];
}

export interface StatusInputs {
  stateFile: string;
  /** the state as loaded, or why it could not be */
  state: { ok: true; state: CanaryState | undefined; problem?: string } | { ok: false; detail: string };
  operator: { ok: true; file: OperatorFile } | { ok: false; detail: string };
  policy: SteppedPolicy;
  analyzeStep: AnalyzeStep;
  /** the live exposure: the admin API's state (every instance), when the admin token is available */
  readExposure?: () => Promise<ExposureRead>;
  /** otherwise the answering instance's summary in GET /api/metrics/memory */
  baseUrl?: string;
  probe: HttpProbe;
  timeoutMs: number;
  /** --time-scale, else the running canary's (in the side file), else 1 */
  timeScale?: number;
  nowMs: number;
  isAlive: (pid: number) => boolean;
}

export async function gatherStatus(input: StatusInputs): Promise<CanaryStatus> {
  const problems: string[] = [];
  const state = input.state.ok ? input.state.state : undefined;
  if (!input.state.ok) problems.push(`state file: ${input.state.detail}`);
  else if (input.state.problem) problems.push(`state file ${input.stateFile} is incomplete (${input.state.problem}): shown as it is`);
  else if (!state) problems.push(`no state file at ${input.stateFile}: the canary has not started (or it is kept elsewhere: --state-file)`);
  else if (!state.stepped) problems.push(`${input.stateFile} is a single-step canary's state: only the phase and the decision apply`);
  const operatorFile = input.operator.ok ? input.operator.file : undefined;
  if (!input.operator.ok) problems.push(`operator requests: ${input.operator.detail}`);
  const timeScale = input.timeScale ?? operatorFile?.canary?.timeScale ?? 1;

  const steps = input.policy.exposure.steps;
  const st = state?.stepped;
  if (st && st.steps.map((s) => s.percent).join() !== steps.map((s) => s.percent).join()) {
    problems.push(`the state's steps (${st.steps.map((s) => s.percent).join(' → ')}) are not this policy's (${steps.map((s) => s.percent).join(' → ')}): pass the canary's --policy`);
  }
  const samePolicy = st && st.steps.map((s) => s.percent).join() === steps.map((s) => s.percent).join();
  const index = st?.stepIndex ?? 0;
  const stepState = st?.steps[index];
  const policyStep = steps[index];
  const observations = state && stepState?.fromMeasurement !== undefined ? observationsFrom(state, stepState.fromMeasurement) : [];
  const latest = stepState?.decisions.at(-1);
  const policySeconds = state ? ((input.nowMs - state.startedAtMs) / 1000) * timeScale : null;

  let nextLookInSeconds: number | null = null;
  let stepEndsInSeconds: number | null = null;
  if (state?.phase === 'analysing' && stepState?.startedAtSeconds !== undefined && policyStep && policySeconds !== null) {
    const taken = state.measurements.length - (stepState.fromMeasurement ?? state.measurements.length);
    nextLookInSeconds = Math.max(0, stepState.startedAtSeconds + taken * input.policy.pollIntervalSeconds - policySeconds);
    stepEndsInSeconds = Math.max(0, stepState.startedAtSeconds + policyStep.analysisSeconds - policySeconds);
  }

  let ifStepEndedNow: CanaryStatus['ifStepEndedNow'] = null;
  if (samePolicy && state?.phase === 'analysing' && observations.length >= 2) {
    const observed = observations.at(-1)!.atSeconds - observations[0]!.atSeconds;
    const endingNow = structuredClone(input.policy);
    endingNow.exposure.steps[index]!.analysisSeconds = Math.min(policyStep!.analysisSeconds, Math.max(observed, Number.EPSILON));
    try {
      const decision = input.analyzeStep(endingNow, index, observations);
      // The loop's rule on that decision, as the canary applies it at the step's end (stepped-rules.ts).
      const ruling = ruleOnDecision(input.policy, decision, policyStep!.analysisSeconds, (p) => `exposure left at ${p}%`);
      const maxLooks = input.policy.exposure.comparison.maxLooksPerStep;
      const canary =
        ruling.kind === 'advance'
          ? `advance to ${steps[index + 1]!.percent}%${input.policy.operator.manualGatesBeforePercent.includes(steps[index + 1]!.percent) ? ` (after the manual gate: an operator must promote)` : ''}`
          : ruling.kind === 'stop'
            ? `${ruling.decision}${ruling.decision === 'rollback' ? ': kill switch, then the durable rollback' : ruling.decision === 'hold' ? `: inconclusive after ${decision.look} looks, exposure left at ${policyStep!.percent}%` : ''}`
            : `keep looking (look ${decision.look}; a step may spend alpha over ${maxLooks} looks), then stop held if still inconclusive`;
      ifStepEndedNow = { analysis: decision.kind, reason: decision.reason, canary, comparisons: decision.comparisons };
    } catch (error) {
      problems.push(`the step's analysis could not run on the recorded observations: ${(error as Error).message}`);
    }
  }

  const live = await readLive(input, problems);
  const canary = operatorFile?.canary ? { ...operatorFile.canary, running: state?.phase === 'done' ? false : safeAlive(input.isAlive, operatorFile.canary.pid) } : null;
  return {
    stack: state?.stack ?? null,
    stateFile: input.stateFile,
    phase: state?.phase ?? 'not started',
    outcome: state?.outcome ?? null,
    decision: state?.decision ?? null,
    deployId: state?.deployId ?? null,
    step:
      st && policyStep
        ? {
            number: index + 1,
            of: st.steps.length,
            percent: st.steps[index]!.percent,
            analysisSeconds: policyStep.analysisSeconds,
            observedSeconds: observations.length >= 1 ? observations.at(-1)!.atSeconds - observations[0]!.atSeconds : 0,
            looks: Math.max(0, observations.length - 1),
          }
        : null,
    exposureReachedPercent: st?.exposureReachedPercent ?? null,
    live,
    latestLook: latest ? { kind: latest.kind, look: latest.look, reason: latest.reason, comparisons: latest.comparisons as CohortComparison[] } : null,
    timing: { timeScale, policySeconds: policySeconds === null ? null : round(policySeconds), nextLookInSeconds: nullableRound(nextLookInSeconds), stepEndsInSeconds: nullableRound(stepEndsInSeconds) },
    ifStepEndedNow,
    operator: {
      paused: operatorFile?.paused ?? null,
      gate: operatorFile?.gate ?? null,
      pending: (operatorFile?.requests ?? []).filter((r) => !r.answer).map(({ command, actor, reason, requestedAt }) => ({ command, actor, reason, requestedAt })),
      answered: (operatorFile?.requests ?? [])
        .filter((r) => r.answer)
        .slice(-5)
        .map((r) => ({ command: r.command, actor: r.actor, reason: r.reason, outcome: r.answer!.outcome, detail: r.answer!.detail, at: r.answer!.at })),
      canary,
    },
    problems,
  };
}

function observationsFrom(state: CanaryState, from: number): CohortObservation[] {
  return state.measurements.slice(from).flatMap((m) => {
    const observed = observeCohorts(m, state.deployId ?? undefined, state.analysedDeploy?.createdAt);
    return observed.ok ? [observed.observation] : [];
  });
}

async function readLive(input: StatusInputs, problems: string[]): Promise<CanaryStatus['live']> {
  const none: CanaryStatus['live'] = { source: 'none', percent: null, ceiling: null, version: null, instances: [], lagging: [] };
  if (input.readExposure) {
    const read = await input.readExposure().catch((error: Error) => ({ ok: false as const, detail: error.message }));
    if (read.ok) return fromAdmin(read.state);
    problems.push(`the service's exposure (GET /api/admin/exposure): ${read.detail}`);
  }
  if (!input.baseUrl) {
    if (!input.readExposure) problems.push('no --base-url and no state: the live exposure was not read');
    return none;
  }
  const answer = await input.probe(`${input.baseUrl.replace(/\/+$/, '')}/api/metrics/memory`, { timeoutMs: input.timeoutMs });
  const parsed = answer.status === 200 ? memoryMetricsSchema.safeParse(answer.body) : undefined;
  if (!parsed?.success || !parsed.data.exposure) {
    problems.push(`the service's exposure (GET /api/metrics/memory): ${answer.error ?? (answer.status === 200 ? 'no exposure in the answer' : `HTTP ${answer.status}`)}`);
    return none;
  }
  if (!input.readExposure) problems.push('without CANARY_ADMIN_TOKEN only the answering instance\'s exposure is shown, not every instance\'s');
  const { percent, ceiling, version } = parsed.data.exposure;
  return { source: 'metrics', percent, ceiling, version, instances: [{ instanceId: parsed.data.instanceId, percent, version, lagging: false }], lagging: [] };
}

function fromAdmin(state: ExposureState): CanaryStatus['live'] {
  const instances = (state.instances ?? []).map((i) => ({
    instanceId: i.instanceId,
    percent: i.percent,
    version: i.version,
    lagging: i.version < state.version || i.percent !== state.percent,
  }));
  return { source: 'admin', percent: state.percent, ceiling: state.ceiling, version: state.version, instances, lagging: instances.filter((i) => i.lagging).map((i) => i.instanceId) };
}

function safeAlive(isAlive: (pid: number) => boolean, pid: number): boolean | null {
  try {
    return isAlive(pid);
  } catch {
    return null;
  }
}

const round = (n: number) => Math.round(n * 10) / 10;
const nullableRound = (n: number | null) => (n === null ? null : round(n));

const seconds = (n: number | null) => (n === null ? 'unknown' : n >= 120 ? `${(n / 60).toFixed(1)} min` : `${n.toFixed(0)} s`);
const pct = (n: number | null) => (n === null ? '?' : `${n}%`);

export function describeComparisonLine(c: CohortComparison): string {
  const value = (v: number) => (Number.isNaN(v) ? 'n/a' : c.figure === 'latency' ? `${v.toFixed(0)} ms` : `${(v * 100).toFixed(2)}%`);
  return `${c.figure.padEnd(16)} treatment ${value(c.treatment.value)} (n ${c.treatment.n})  control ${value(c.control.value)} (n ${c.control.n})  ${c.verdict.replace('_', ' ')}  ${c.test} p=${c.pValue.toPrecision(3)} alpha ${c.alphaThisLook.toPrecision(3)}`;
}

/** The status as a terminal shows it (the same content as --json). */
export function formatStatus(status: CanaryStatus): string {
  const lines: string[] = [];
  lines.push(`stepped canary ${status.stack ?? ''} (${status.stateFile})`.replace('  ', ' '));
  const running = status.operator.canary?.running;
  lines.push(`phase: ${status.phase}${status.outcome ? `, outcome ${status.outcome}` : ''}${running === true ? ' (canary running, pid ' + status.operator.canary!.pid + ')' : running === false && status.phase !== 'done' ? ' (canary NOT running: re-run it to resume)' : ''}`);
  if (status.decision) lines.push(`decision: ${status.decision.kind} (${status.decision.trigger}): ${status.decision.reason}`);
  if (status.step) {
    lines.push(`step ${status.step.number} of ${status.step.of}: ${status.step.percent}%, observed ${seconds(status.step.observedSeconds)} of ${seconds(status.step.analysisSeconds)} (policy time), ${status.step.looks} look(s); exposure reached ${pct(status.exposureReachedPercent)}`);
  }
  const live = status.live;
  if (live.source !== 'none') {
    lines.push(`live exposure: ${pct(live.percent)} (ceiling ${pct(live.ceiling)}, version ${live.version}) from ${live.source === 'admin' ? 'the admin API' : 'GET /api/metrics/memory (one instance)'}`);
    for (const i of live.instances) lines.push(`  ${i.instanceId}: ${i.percent}% version ${i.version}${i.lagging ? '  LAGGING' : ''}`);
    if (live.lagging.length > 0) lines.push(`  lagging: ${live.lagging.join(', ')}`);
  }
  if (status.latestLook) {
    lines.push(`latest look (${status.latestLook.look}): ${status.latestLook.kind.toUpperCase()}: ${status.latestLook.reason}`);
    for (const c of status.latestLook.comparisons) lines.push(`  ${describeComparisonLine(c)}`);
  }
  if (status.phase === 'analysing') lines.push(`next look in ${seconds(status.timing.nextLookInSeconds)}; step ends in ${seconds(status.timing.stepEndsInSeconds)} (policy time, time scale ${status.timing.timeScale})`);
  if (status.ifStepEndedNow) lines.push(`if the step ended now: ${status.ifStepEndedNow.canary} (analysis: ${status.ifStepEndedNow.analysis}: ${status.ifStepEndedNow.reason})`);
  const op = status.operator;
  if (op.paused) lines.push(`PAUSED by ${op.paused.by} since ${op.paused.since}: ${op.paused.reason || 'no reason given'}`);
  if (op.gate) lines.push(`AT A MANUAL GATE before ${op.gate.beforePercent}% since ${op.gate.since}: waiting for \`canary promote\``);
  for (const r of op.pending) lines.push(`pending: ${r.command} by ${r.actor} (${r.reason || 'no reason given'}), requested ${r.requestedAt}`);
  for (const r of op.answered) lines.push(`answered: ${r.command} by ${r.actor}: ${r.outcome}: ${r.detail}`);
  for (const problem of status.problems) lines.push(`note: ${problem}`);
  return lines.join('\n');
}
