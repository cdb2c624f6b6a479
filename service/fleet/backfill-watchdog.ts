/**
 * Resumes a full sync that no instance is running any more: one interrupted by a deploy's SIGTERM, or one whose
 * owner died without a word (its heartbeat went stale). Every instance runs the watchdog; the store's atomic
 * tryStartJob lets exactly one of them take the job over, from its persisted cursor.
 */
import type { BackfillJob } from '../domain/backfill';
import { describeError, type ServiceLogger } from '../logging';

export type WatchdogOutcome = 'no-job' | 'running-here' | 'healthy' | 'finished' | 'resumed' | 'taken-by-another';

export interface BackfillWatchdogOptions {
  backfill: BackfillJob;
  intervalMs: number;
  /** Must match the job's own staleness rule (BackfillDeps.staleAfterMs, 60 s by default). */
  staleAfterMs: number;
  clock: () => Date;
  log: ServiceLogger;
}

export interface BackfillWatchdog {
  checkOnce(): Promise<WatchdogOutcome>;
  start(): void;
  stop(): Promise<void>;
}

export function createBackfillWatchdog(options: BackfillWatchdogOptions): BackfillWatchdog {
  let timer: NodeJS.Timeout | null = null;
  let checking: Promise<WatchdogOutcome> | null = null;
  let stopped = true;

  async function check(): Promise<WatchdogOutcome> {
    if (options.backfill.current()) return 'running-here';
    const state = await options.backfill.status();
    if (!state) return 'no-job';
    if (state.status === 'completed' || state.status === 'failed') return 'finished';
    const silentMs = options.clock().getTime() - Date.parse(state.heartbeatAt);
    if (state.status === 'running' && silentMs <= options.staleAfterMs) return 'healthy';
    const { started, state: now } = await options.backfill.start('resume');
    if (started) {
      options.log.sync.info(
        `Resuming full sync left ${state.status === 'interrupted' ? 'interrupted' : 'abandoned'} by ${state.owner}`,
        { previousOwner: state.owner, cursor: state.cursor, synced: state.synced },
      );
      return 'resumed';
    }
    return now.owner === state.owner && now.status === state.status ? 'healthy' : 'taken-by-another';
  }

  function checkOnce(): Promise<WatchdogOutcome> {
    checking ??= check().finally(() => {
      checking = null;
    });
    return checking;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      checkOnce()
        .catch((error) => options.log.memoryError.warn('Full sync watchdog check failed', describeError(error)))
        .finally(schedule);
    }, options.intervalMs);
    timer.unref();
  }

  return {
    checkOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await checking?.catch(() => undefined);
    },
  };
}
