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
import { uncountedIfProbeScope } from './metrics';
import { sendErasure } from './erasure';
import type { SnippetCache } from '../cache/cache-port';

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
  /** Dropped again for a scope once Context7 acknowledged its erasure (see domain/erasure.ts). */
  cache?: SnippetCache;
}

export interface DrainResult {
  sent: number;
  failed: number;
  /** Erasures Context7 acknowledged in this pass. */
  erased?: number;
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
    // Deletions first: an erasure must not wait behind a backlog of upserts.
    if (!(await drainErasures(result))) return result;
    while (!stopped) {
      if (deps.context7.circuitState() === 'open') break;
      const entries = await deps.store.claimOutbox(deps.workerId, batchSize, leaseMs, deps.clock());
      if (entries.length === 0) break;
      let failedThisRound = false;
      for (const [scopeId, patterns] of groupByScope(entries.map((entry) => entry.pattern))) {
        const ids = patterns.map((pattern) => pattern.id);
        try {
          // A probe pattern left for the drainer stays out of the judged counters too.
          await uncountedIfProbeScope(scopeId, () => deps.context7.upsertPatterns({ scopeId, patterns: patterns.map(toUpsert) }));
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
    if (result.erased) deps.log.sync.info(`Erasure outbox: Context7 deleted ${result.erased} erasures`, { erased: result.erased });
    return result;
  }

  /** Sends due erasure entries; false when Context7 failed (the rest waits for the next tick). */
  async function drainErasures(result: DrainResult): Promise<boolean> {
    const cache: Pick<SnippetCache, 'invalidateScope' | 'eraseScope'> = deps.cache ?? { invalidateScope: async () => undefined };
    while (!stopped) {
      if (deps.context7.circuitState() === 'open') return false;
      const entries = await deps.store.claimErasures(deps.workerId, batchSize, leaseMs, deps.clock());
      if (entries.length === 0) return true;
      for (const entry of entries) {
        const sent = await sendErasure({ ...deps, context7: deps.context7, cache }, entry);
        if (!sent) {
          // Release the rest of this batch for the next pass instead of holding their leases.
          const rest = entries.slice(entries.indexOf(entry) + 1).map((e) => e.id);
          await deps.store.failErasures(rest, 'deferred after a failed deletion', deps.clock());
          return false;
        }
        result.erased = (result.erased ?? 0) + 1;
      }
    }
    return true;
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
