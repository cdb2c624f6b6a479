/**
 * A start against a store that does not answer: keep trying to reach and migrate it, say what we wait for at a
 * steady pace, and give up with a clear message after a bounded time (the process then exits non-zero and the
 * platform restarts or alerts). A start never sits silently in "starting".
 */
import type { TagLogger } from '../logging';
import type { MemoryStore } from './memory-store';
import { StoreUnavailableError, withDeadline } from './store-errors';

export class StoreStartError extends Error {
  override readonly name = 'StoreStartError';
}

export interface StoreStartOptions {
  store: Pick<MemoryStore, 'kind' | 'migrate'>;
  /** Total time to reach and migrate the store. */
  timeoutMs: number;
  log: TagLogger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** "Still waiting" lines: every 5 s, or more often for a short start budget, so at least a few are written. */
export function startWaitLogIntervalMs(timeoutMs: number): number {
  return Math.min(5_000, Math.max(100, Math.floor(timeoutMs / 4)));
}

/** Pause between attempts after a refusal or a timeout. */
export function startRetryDelayMs(timeoutMs: number): number {
  return Math.min(1_000, Math.max(50, Math.floor(timeoutMs / 10)));
}

const STORE_NAMES = { postgres: 'PostgreSQL', sqlite: 'SQLite' } as const;

export async function migrateWhenReachable(options: StoreStartOptions): Promise<void> {
  const { store, timeoutMs, log } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const name = STORE_NAMES[store.kind];
  const startedAt = now();
  let attempt = 0;
  let lastProblem = 'no answer yet';
  const heartbeat = setInterval(() => {
    log.warn(`Waiting for ${name} at start: connecting and applying migrations (${lastProblem})`, {
      dependency: store.kind,
      attempt,
      waitedMs: now() - startedAt,
      giveUpAfterMs: timeoutMs,
    });
  }, startWaitLogIntervalMs(timeoutMs));
  heartbeat.unref();
  try {
    for (;;) {
      attempt += 1;
      const remainingMs = timeoutMs - (now() - startedAt);
      try {
        // The attempt itself is bounded by the store's own deadlines; this caps the whole start.
        await withDeadline(store.migrate(), Math.max(1, remainingMs), () => new StoreUnavailableError(store.kind, 'timeout', 'start', timeoutMs, undefined));
        return;
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        lastProblem = `attempt ${attempt}: ${error.message}`;
        const retryDelayMs = startRetryDelayMs(timeoutMs);
        if (now() - startedAt + retryDelayMs >= timeoutMs) {
          throw new StoreStartError(
            `${name} did not answer within ${timeoutMs} ms at start (${lastProblem}); check that the database is up and reachable at its URL`,
          );
        }
        log.warn(`${name} not reachable at start, retrying: ${error.message}`, { ...error.describe(), attempt });
        await sleep(retryDelayMs);
      }
    }
  } finally {
    clearInterval(heartbeat);
  }
}
