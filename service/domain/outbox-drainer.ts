/**
 * Sends outbox entries (patterns Context7 has not acknowledged) in the background.
 * Entries are leased, so two workers (or two instances) never send one entry at the same time; a
 * failure releases the lease with exponential backoff (or Context7's Retry-After). Re-sends are
 * harmless: Context7 upserts by the pattern's stable id.
 */
import { Context7Error, type Context7Port } from '../context7/port';
import type { MemoryStore } from '../data-access/memory-store';
import { describeError, type ServiceLogger } from '../logging';
import { errorTypeOf } from './memory';
import { groupByScope, outboxRetryDelayMs, toUpsert } from './patterns';

export interface OutboxDrainerDeps {
  store: MemoryStore;
  context7: Context7Port;
  log: ServiceLogger;
  workerId: string;
  intervalMs: number;
  clock: () => Date;
  batchSize?: number;
  leaseMs?: number;
  /** Fleet leadership: a pass runs only while this resolves true, so one instance drains at a time. */
  gate?: () => Promise<boolean>;
}

export interface DrainResult {
  sent: number;
  failed: number;
}

export interface OutboxDrainer {
  /** One pass: claims due entries until none are left or Context7 fails. */
  drainOnce(): Promise<DrainResult>;
  start(): void;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

export function createOutboxDrainer(deps: OutboxDrainerDeps): OutboxDrainer {
  const batchSize = deps.batchSize ?? 100;
  const leaseMs = deps.leaseMs ?? 30_000;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<DrainResult> | null = null;
  let stopped = false;

  async function pass(): Promise<DrainResult> {
    const result: DrainResult = { sent: 0, failed: 0 };
    if (deps.gate && !(await deps.gate())) return result;
    while (!stopped) {
      if (deps.context7.circuitState() === 'open') break;
      const entries = await deps.store.claimOutbox(deps.workerId, batchSize, leaseMs, deps.clock());
      if (entries.length === 0) break;
      let failedThisRound = false;
      for (const [scopeId, patterns] of groupByScope(entries.map((entry) => entry.pattern))) {
        const ids = patterns.map((pattern) => pattern.id);
        try {
          await deps.context7.upsertPatterns({ scopeId, patterns: patterns.map(toUpsert) });
          await deps.store.completeOutbox(ids, deps.clock());
          result.sent += ids.length;
        } catch (error) {
          failedThisRound = true;
          result.failed += ids.length;
          const attempts = Math.max(...entries.filter((entry) => ids.includes(entry.pattern.id)).map((entry) => entry.attempts));
          const retryAfterMs = error instanceof Context7Error ? error.details.retryAfterMs : undefined;
          const retryAt = new Date(deps.clock().getTime() + outboxRetryDelayMs(attempts + 1, retryAfterMs));
          await deps.store.failOutbox(ids, errorTypeOf(error), retryAt);
          deps.log.memoryError.warn('Outbox send to Context7 failed, will retry', {
            scopeId,
            patterns: ids.length,
            retryAt: retryAt.toISOString(),
            ...describeError(error),
            errorType: errorTypeOf(error),
          });
        }
      }
      // After a failure, leave the rest for the next tick instead of hammering a struggling Context7.
      if (failedThisRound) break;
    }
    if (result.sent > 0) deps.log.sync.info(`Outbox: sent ${result.sent} patterns to Context7`, { ...result });
    return result;
  }

  function drainOnce(): Promise<DrainResult> {
    if (running) return running;
    running = pass().finally(() => {
      running = null;
    });
    return running;
  }

  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      drainOnce()
        .catch((error) => deps.log.memoryError.error('Outbox drain pass failed', describeError(error)))
        .finally(schedule);
    }, deps.intervalMs);
    timer.unref();
  }

  return {
    drainOnce,
    start() {
      stopped = false;
      if (!timer) schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (running) await running.catch(() => undefined);
    },
  };
}
