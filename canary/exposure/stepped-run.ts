/**
 * One stepped canary run's context: its options, its durable state and the small edges every phase of the loop
 * shares (the clocks, saving, recording an action, stopping with a decision). Built once by openSteppedRun, which
 * opens the state file through its binding (canary/actions/state-binding.ts) or starts a new run.
 */
import { type ActingRun } from '../actions/act';
import { newCanaryState, type CanaryState, type SteppedState } from '../actions/state-file';
import { openBoundState } from '../actions/state-binding';
import type { CanaryRunOptions, CanaryRunResult } from '../controller';
import type { CanaryPolicy } from '../policy';
import type { ExposurePort } from '../sources/exposure-admin';
import type { RequestedBy } from './stepped-rules';
import type { CohortObservation, PreExposure, StepDecision } from './types';

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
  /** the operator request side file (canary/operator/requests.ts); undefined: no operator requests (a dry run) */
  operatorFile?: string | undefined;
}

/** As a whole-flag run's result, without its analysis: the stepped canary's is in the state, step by step. */
export type SteppedRunResult = Omit<CanaryRunResult, 'result'>;

export type StopKind = NonNullable<CanaryState['decision']>['kind'];

export interface SteppedRun {
  readonly o: SteppedRunOptions;
  readonly s: CanaryState;
  readonly st: SteppedState;
  /** the edges the durable rollback and the promotion act through (canary/actions/act.ts) */
  readonly acting: ActingRun;
  iso(): string;
  save(): void;
  record(action: string, ok: boolean, detail: string): void;
  /** seconds since the run started, in policy time */
  policySeconds(): number;
  realMs(policySecondsSpan: number): number;
  /** the loop ends with this decision: recorded before any action, so a crashed run acts on it when resumed */
  stop(kind: StopKind, trigger: string, reason: string): void;
  /** what a stop leaves exposure at: a dry run changes nothing */
  leftAt(percent: number): string;
  /** the operator whose request makes the next exposure change (the audit names them); in memory only */
  changeBy: RequestedBy | undefined;
  /** CUPED's covariate, read once before the first step this process enters (pre-exposure.ts); in memory only */
  preExposure: PreExposure | undefined;
}

export async function openSteppedRun(o: SteppedRunOptions): Promise<SteppedRun> {
  const steps = o.policy.exposure.steps;
  const s = await loadOrStart(o);
  const st = s.stepped as SteppedState;
  const iso = () => new Date(o.now()).toISOString();
  const save = () => o.stateFile.save(s);
  const record = (action: string, ok: boolean, detail: string) => {
    s.actions.push({ at: iso(), action, ok, detail });
    (ok ? o.progress.info : o.progress.warn)(`${action}: ${detail}`);
  };
  const policySeconds = () => ((o.now() - s.startedAtMs) / 1000) * o.timeScale;
  const realMs = (policySecondsSpan: number) => (policySecondsSpan / o.timeScale) * 1000;
  return {
    o,
    s,
    st,
    acting: { ...o, state: s, save, record, realMs },
    iso,
    save,
    record,
    policySeconds,
    realMs,
    stop(kind, trigger, reason) {
      s.decision = { kind, trigger, reason, atSeconds: Math.round(policySeconds() * 1000) / 1000, stepIndex: st.stepIndex };
      s.decidedAt ??= iso();
      s.phase = 'acting';
      save();
    },
    changeBy: undefined,
    preExposure: undefined,
    leftAt: (percent) => (o.dryRun ? `exposure unchanged (a dry run; it would be ${percent}%)` : `exposure left at ${percent}%`),
  };

  /** The state file as its binding allows (canary/actions/state-binding.ts), or a new run's state. */
  async function loadOrStart(o: SteppedRunOptions): Promise<CanaryState> {
    const loaded = await openBoundState(o, 'stepped', steps.map((step) => step.percent));
    if (!loaded) {
      const started: CanaryState = {
        ...newCanaryState(o, o.now()),
        stepped: { stepIndex: 0, steps: steps.map((step) => ({ percent: step.percent, decisions: [] })), exposureReachedPercent: 0 },
      };
      o.stateFile.save(started);
      return started;
    }
    if (loaded.phase === 'done') {
      o.progress.info(`state file ${o.stateFile.path} says this rollout already finished (${loaded.outcome}); not acting again. Move it aside to canary a new deploy.`);
    } else {
      o.progress.info(`resuming from ${o.stateFile.path}: step ${loaded.stepped!.stepIndex + 1} of ${steps.length}, phase ${loaded.phase}`);
    }
    return loaded;
  }
}

/** Decision (wall clock) to every instance applying 0%: null without a confirmed kill switch. */
export function killSwitchSeconds(state: Pick<CanaryState, 'decidedAt' | 'stepped'>): number | null {
  const applied = state.stepped?.killSwitch?.appliedAt;
  if (!applied || !state.decidedAt) return null;
  return Math.max(0, (Date.parse(applied) - Date.parse(state.decidedAt)) / 1000);
}
