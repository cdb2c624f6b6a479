/**
 * "Once for the fleet, not once per instance": every instance runs the same timers, and these gates make
 * exactly one of them act.
 * - Scheduled jobs (the Monday 02:05 sync): each instance's cron fires; the first to claim the run slot
 *   (job name + scheduled minute) in the shared database runs it, the others skip. A slot is claimed for
 *   ever, so an instance whose clock or timer lags cannot run it again afterwards.
 * - Continuous work (the outbox drainer): a renewable, expiring lease; only the holder works, and if it dies
 *   another instance takes over once the lease expires.
 */
import type { FleetCoordination } from '../data-access/postgres-store';

export type RunSlotClaimer = Pick<FleetCoordination, 'claimRunSlot'>;
export type LeaseCoordinator = Pick<FleetCoordination, 'tryAcquireLease' | 'releaseLease'>;

/** For a single instance (the embedded SQLite default): every slot is this process's, once. */
export function createLocalCoordination(): RunSlotClaimer & LeaseCoordinator {
  const slots = new Set<string>();
  return {
    async claimRunSlot(jobName, slot) {
      const key = `${jobName}\n${slot}`;
      if (slots.has(key)) return false;
      slots.add(key);
      return true;
    },
    async tryAcquireLease() {
      return true;
    },
    async releaseLease() {},
  };
}

/** The scheduled minute a cron firing belongs to, identical on every instance that fires for it. */
export function runSlotOf(scheduledAt: Date): string {
  const minute = new Date(scheduledAt.getTime());
  minute.setUTCSeconds(0, 0);
  return minute.toISOString();
}

export interface SingleFireOptions {
  claimer: RunSlotClaimer;
  jobName: string;
  owner: string;
  clock: () => Date;
}

/**
 * Wraps a scheduled job so that, per scheduled minute, only the instance that claims the slot runs it.
 * Resolves to whether this instance ran it.
 */
export function singleFire(options: SingleFireOptions, run: () => Promise<unknown>): (scheduledAt?: Date) => Promise<boolean> {
  return async (scheduledAt) => {
    const now = options.clock();
    const claimed = await options.claimer.claimRunSlot(options.jobName, runSlotOf(scheduledAt ?? now), options.owner, now);
    if (claimed) await run();
    return claimed;
  };
}

export interface LeaderGateOptions {
  coordinator: LeaseCoordinator;
  name: string;
  owner: string;
  /** Longer than the gap between two `tryLead` calls, or leadership flaps. */
  ttlMs: number;
  clock: () => Date;
}

export interface LeaderGate {
  /** Takes or renews the lease; true when this instance may work now. */
  tryLead(): Promise<boolean>;
  /** Hands the lease back (at shutdown) so another instance need not wait for it to expire. */
  release(): Promise<void>;
}

export function createLeaderGate(options: LeaderGateOptions): LeaderGate {
  return {
    tryLead: () => options.coordinator.tryAcquireLease(options.name, options.owner, options.ttlMs, options.clock()),
    release: () => options.coordinator.releaseLease(options.name, options.owner),
  };
}
