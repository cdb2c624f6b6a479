/**
 * The weekly full sync: Monday 02:05 in SYNC_SCHEDULE_TZ (UTC by default), as the runbook's
 * "check logs Monday 2:05am" expects.
 */
import { Cron } from 'croner';

export const WEEKLY_SYNC_CRON = '5 2 * * 1';

export interface SyncSchedule {
  nextRun(): Date | null;
  stop(): void;
}

export function scheduleWeeklySync(timezone: string, trigger: () => Promise<void>): SyncSchedule {
  const job = new Cron(WEEKLY_SYNC_CRON, { timezone, protect: true, unref: true, catch: true }, async () => {
    await trigger();
  });
  return {
    nextRun: () => job.nextRun(),
    stop: () => job.stop(),
  };
}
