/**
 * Acting on a decision, as both canaries do it (canary/controller.ts, canary/exposure/stepped-controller.ts): the
 * durable rollback with the run's own edges, and a promotion recorded and announced. One place, so the two
 * canaries cannot act differently on the same kind of decision.
 */
import type { CanaryOutcome } from '../report-summary';
import type { Progress } from '../progress';
import { rollBackDurably, type DurableRollbackDeps } from './durable-rollback';
import { promote } from './promote';
import { stackFilePath } from './stack-file';
import type { Notifier } from './webhook';

/** A running canary's options and recording edges, as its actions need them. */
export interface ActingRun extends Omit<DurableRollbackDeps, 'onProgress'> {
  dryRun: boolean;
  notifier: Notifier;
  progress: Progress;
}

export function rollBackRun(run: ActingRun): Promise<{ outcome: CanaryOutcome; summary: string }> {
  return rollBackDurably({
    policy: run.policy,
    stack: run.stack,
    baseUrl: run.baseUrl,
    serviceId: run.serviceId,
    stackDir: run.stackDir,
    render: run.render,
    probe: run.probe,
    ...(run.memoryApiKey ? { memoryApiKey: run.memoryApiKey } : {}),
    state: run.state,
    save: run.save,
    record: run.record,
    onProgress: (message) => run.progress.info(message),
    realMs: run.realMs,
    now: run.now,
    sleep: run.sleep,
  });
}

/**
 * Pins the deploy's commit for production (staging) or signs it off (production), recorded and announced. With
 * `exposureReachedPercent` (a stepped canary) the stack file also carries the exposure the canary judged.
 */
export async function promoteRun(
  run: ActingRun,
  deployId: string | null | undefined,
  fields: Record<string, string>,
  exposureReachedPercent?: number,
): Promise<CanaryOutcome> {
  if (!deployId) {
    run.record('promote', false, 'no deploy id was ever measured: nothing to pin');
    return 'held';
  }
  try {
    const promotion = promote(run.stack, deployId, stackFilePath(run.stackDir, 'production'), run.dryRun, exposureReachedPercent);
    const detail = exposureReachedPercent === undefined ? promotion.detail : `${promotion.detail}; exposure reached ${exposureReachedPercent}%`;
    run.record(promotion.outcome === 'promoted' ? 'promote' : 'sign-off', true, detail);
    if (promotion.nextCommand) run.progress.info(`next: ${promotion.nextCommand}`);
    if (!run.dryRun) await run.notifier.notify(promotion.outcome === 'promoted' ? 'promote' : 'signed_off', detail, fields);
    return promotion.outcome;
  } catch (error) {
    run.record('promote', false, (error as Error).message);
    return 'held';
  }
}
