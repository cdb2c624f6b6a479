/**
 * Today's durable rollback, as both canaries run it (canary/controller.ts, canary/exposure/stepped-controller.ts):
 * ENABLE_CONTEXT7_MEMORY off through the Render API, the same commit redeployed, the flag latched off in the stack
 * file, verified the runbook's way, and the code rolled back too when the flag alone does not fix it. Each step is
 * recorded in the state before the next (resumable). Returns the outcome and one line for the operator.
 */
import type { CanaryPolicy } from '../policy';
import type { CanaryOutcome } from '../report-summary';
import type { HttpProbe } from '../sources/http';
import { executeRollbackSteps, readServiceFlag } from './code-rollback';
import type { RenderPort } from './rollback';
import { describeRollbackDuration, rollbackDuration } from './rollback-timing';
import { stackFilePath } from './stack-file';
import type { CanaryState } from './state-file';
import { verifyRollback } from './verify';

export interface DurableRollbackDeps {
  policy: CanaryPolicy;
  stack: 'staging' | 'production';
  baseUrl: string;
  serviceId: string | null;
  stackDir: string;
  render: RenderPort | undefined;
  probe: HttpProbe;
  memoryApiKey?: string;
  state: CanaryState;
  save: () => void;
  record: (action: string, ok: boolean, detail: string) => void;
  onProgress: (message: string) => void;
  /** real milliseconds for a span of policy seconds (the time scale compresses the verification watch) */
  realMs: (policySeconds: number) => number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export async function rollBackDurably(d: DurableRollbackDeps): Promise<{ outcome: CanaryOutcome; summary: string }> {
  const { policy } = d;
  const rollback = await executeRollbackSteps({
    stack: d.stack,
    readFlag: () => readServiceFlag(d.baseUrl, d.probe, policy.measurement.timeoutSeconds * 1000),
    state: d.state,
    save: d.save,
    render: d.render,
    serviceId: d.serviceId,
    stackFile: stackFilePath(d.stackDir, d.stack),
    // Render deploys take real time whatever the time scale: only the analysis is compressed.
    deployTimeoutMs: policy.rollback.deployTimeoutMinutes * 60_000,
    deployPollMs: Math.max(200, Math.min(5000, d.realMs(10))),
    verify: () =>
      verifyRollback({
        baseUrl: d.baseUrl,
        probe: d.probe,
        timeoutMs: policy.measurement.timeoutSeconds * 1000,
        watchMs: d.realMs(policy.rollback.verifyWatchSeconds),
        watchPollMs: Math.max(100, d.realMs(policy.rollback.verifyPollSeconds)),
        sleep: d.sleep,
        now: d.now,
        onProgress: d.onProgress,
        ...(d.memoryApiKey ? { memoryApiKey: d.memoryApiKey } : {}),
      }),
    record: d.record,
    now: () => new Date(d.now()),
  });
  const duration = rollbackDuration(d.state, policy.rollback.maxDurationMinutes);
  return {
    outcome: rollback.verified ? 'rolled_back' : 'rollback_unverified',
    summary: duration ? `${rollback.summary}; ${describeRollbackDuration(duration)}` : rollback.summary,
  };
}
