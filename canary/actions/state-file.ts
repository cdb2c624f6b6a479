/**
 * The canary's durable state: what it measured, what it decided and how far its actions got.
 * Written after every step, so a crashed or re-run canary resumes where it was and never rolls
 * back twice.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { measurementSchema } from '../analysis/measurement';
import { CANARY_OUTCOMES } from '../report-summary';
import { jsonIndentedTo, writeFileAtomic } from './atomic-write';

export const actionRecordSchema = z.object({
  at: z.string(),
  action: z.string(),
  ok: z.boolean(),
  detail: z.string(),
});
export type ActionRecord = z.infer<typeof actionRecordSchema>;

/** One Render deploy the canary asks for, resumable: requested, then its id, then live. */
export const deployStepSchema = z.object({
  /** the service's newest deploy ids just before the request: a rerun adopts a new one instead of asking twice */
  deploysBefore: z.array(z.string()).optional(),
  requestedAt: z.string().optional(),
  deployId: z.string().optional(),
  liveAt: z.string().optional(),
});
export type DeployStep = z.infer<typeof deployStepSchema>;

export const codeRollbackPlanSchema = z.object({
  /** roll_back: the analysed deploy changed the commit; same_commit: a flag-only rollout; unknown: cannot tell */
  kind: z.enum(['roll_back', 'same_commit', 'unknown']),
  detail: z.string(),
  analysedDeployId: z.string().optional(),
  targetDeployId: z.string().optional(),
  targetCommit: z.string().optional(),
});
export type CodeRollbackPlan = z.infer<typeof codeRollbackPlanSchema>;

/** One runtime exposure change the stepped canary made, timed (canary/sources/exposure-admin.ts ExposureChange). */
export const exposureChangeRecordSchema = z.object({
  percent: z.number(),
  requestedAt: z.string(),
  version: z.number().optional(),
  acceptedAt: z.string().optional(),
  appliedAt: z.string().optional(),
  seconds: z.number().optional(),
  confirmedBy: z.enum(['instances', 'consecutive-reads']).optional(),
  instances: z.array(z.string()).optional(),
  failed: z.string().optional(),
});
export type ExposureChangeRecord = z.infer<typeof exposureChangeRecordSchema>;

/** The stepped canary's progress (canary/exposure/stepped-controller.ts); absent for today's single-step canary. */
export const steppedStateSchema = z.object({
  /** the step being analysed (index into policy.exposure.steps) */
  stepIndex: z.number().int().nonnegative(),
  steps: z.array(
    z.object({
      percent: z.number(),
      /** the runtime change that set this step's percentage (absent until requested) */
      change: exposureChangeRecordSchema.optional(),
      /** policy seconds when the step's observation began, and its first measurement (index into measurements) */
      startedAtSeconds: z.number().optional(),
      fromMeasurement: z.number().int().nonnegative().optional(),
      /** every look's decision, as analyzeStep returned it (canary/exposure/types.ts StepDecision) */
      decisions: z.array(
        z.object({
          kind: z.enum(['advance', 'hold', 'rollback', 'promote', 'abort']),
          stepIndex: z.number(),
          percent: z.number(),
          reason: z.string(),
          look: z.number(),
          comparisons: z.array(z.any()),
        }),
      ),
    }),
  ),
  /** the kill switch (percent 0), requested first on a rollback: decision to every instance applied */
  killSwitch: exposureChangeRecordSchema.optional(),
  /** the highest step percentage the canary judged (advanced from, or promoted at): 0 before any */
  exposureReachedPercent: z.number(),
});
export type SteppedState = z.infer<typeof steppedStateSchema>;

export const canaryStateSchema = z.object({
  version: z.literal(1),
  stack: z.enum(['staging', 'production']),
  baseUrl: z.string(),
  serviceId: z.string().nullable(),
  deployId: z.string().nullable(),
  /** wall-clock ms when the analysis started; policy time = (now - startedAtMs) * timeScale */
  startedAtMs: z.number(),
  startedAt: z.string(),
  measurements: z.array(measurementSchema),
  phase: z.enum(['analysing', 'acting', 'done']),
  decision: z
    .object({ kind: z.enum(['rollback', 'promote', 'hold', 'abort']), trigger: z.string(), reason: z.string(), atSeconds: z.number(), stepIndex: z.number() })
    .optional(),
  /** the Render deploy under analysis (from the API at start): its figures only are judged */
  analysedDeploy: z.object({ id: z.string(), createdAt: z.string(), commit: z.string().optional() }).optional(),
  /** wall-clock time of the decision: where the rollback's duration starts */
  decidedAt: z.string().optional(),
  /** when the canary asked the service to start the backfill (--backfill start): asked once, never twice */
  backfillRequestedAt: z.string().optional(),
  rollback: z
    .object({
      envSetAt: z.string().optional(),
      /** the service's newest deploy ids just before the rollback deploy was requested */
      deploysBefore: z.array(z.string()).optional(),
      deployRequestedAt: z.string().optional(),
      renderDeployId: z.string().optional(),
      deployLiveAt: z.string().optional(),
      latchedAt: z.string().optional(),
      verifiedAt: z.string().optional(),
      verificationFailed: z.string().optional(),
    })
    .optional(),
  /** The second step, when the flag rollback was verified and the fault persisted (canary/actions/code-rollback.ts). */
  codeRollback: z
    .object({
      faultPersistedAt: z.string(),
      plan: codeRollbackPlanSchema.optional(),
      rollbackDeploy: deployStepSchema.optional(),
      /** set once the rolled-back deploy's flag was read; flagRedeploy exists when it was on */
      flagCheckedAt: z.string().optional(),
      flagRedeploy: deployStepSchema.optional(),
      pinnedAt: z.string().optional(),
      verifiedAt: z.string().optional(),
      verificationFailed: z.string().optional(),
    })
    .optional(),
  stepped: steppedStateSchema.optional(),
  outcome: z.enum(CANARY_OUTCOMES).optional(),
  finishedAt: z.string().optional(),
  actions: z.array(actionRecordSchema),
});
export type CanaryState = z.infer<typeof canaryStateSchema>;

/** A new run's state, as both canaries start one: nothing measured yet, analysing. */
export function newCanaryState(
  run: { stack: CanaryState['stack']; baseUrl: string; serviceId: string | null; analysedDeploy?: CanaryState['analysedDeploy'] },
  nowMs: number,
): CanaryState {
  return {
    version: 1,
    stack: run.stack,
    baseUrl: run.baseUrl,
    serviceId: run.serviceId,
    deployId: null,
    startedAtMs: nowMs,
    startedAt: new Date(nowMs).toISOString(),
    measurements: [],
    phase: 'analysing',
    actions: [],
    ...(run.analysedDeploy ? { analysedDeploy: run.analysedDeploy } : {}),
  };
}

/** A state file the canary must not act on: the operator has to look at it (exit 64, like a bad argument). */
export class StateFileError extends Error {
  override readonly name = 'StateFileError';
}

export interface StateStore {
  readonly path: string;
  load(): CanaryState | undefined;
  save(state: CanaryState): void;
}

export class StateFile implements StateStore {
  constructor(readonly path: string) {}

  load(): CanaryState | undefined {
    if (!existsSync(this.path)) return undefined;
    const notAState = (why: string | undefined) =>
      new StateFileError(`state file ${this.path} is not a canary state (${why}); move it aside to start over`);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch {
      throw notAState('not valid JSON');
    }
    const parsed = canaryStateSchema.safeParse(json);
    if (!parsed.success) throw notAState(parsed.error.issues[0]?.message);
    return parsed.data;
  }

  save(state: CanaryState): void {
    writeFileAtomic(this.path, jsonIndentedTo(state, 3) + '\n');
  }
}

/** For --dry-run: a rehearsal must never leave a state that would stop the real run from acting. */
export class InMemoryState implements StateStore {
  readonly path = '(in memory: dry run)';
  private state: CanaryState | undefined;

  load(): CanaryState | undefined {
    return this.state && structuredClone(this.state);
  }

  save(state: CanaryState): void {
    this.state = structuredClone(state);
  }
}
