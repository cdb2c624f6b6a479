/**
 * The full sync ("backfill"): sends every live local pattern to Context7.
 * State is persisted (keyset cursor, counts, heartbeat), so any instance can report progress, a second
 * start is refused while one runs, and a run interrupted by SIGTERM resumes from its cursor.
 */
import { Context7Error, type Context7Port } from '../context7/port';
import type { JobState, MemoryStore, StoredPattern } from '../data-access/memory-store';
import { describeError, type ServiceLogger } from '../logging';
import { errorTypeOf } from './memory';
import { groupByScope, toUpsert } from './patterns';
import { uncountedIfProbeScope } from './metrics';

export const BACKFILL_JOB_NAME = 'context7-full-sync';

export interface BackfillDeps {
  store: MemoryStore;
  context7: Context7Port;
  log: ServiceLogger;
  owner: string;
  clock: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** Patterns per Context7 upsert call. */
  batchSize?: number;
  /** Upsert calls in flight at once. */
  concurrency?: number;
  /** A running job whose heartbeat is older than this is considered abandoned. */
  staleAfterMs?: number;
  progressLogEveryMs?: number;
  /** Retries of one batch after 429 before it counts as failed. */
  maxRateLimitWaits?: number;
}

export type BackfillTrigger = 'manual' | 'schedule' | 'resume';

export interface BackfillJob {
  /** Starts a run in the background unless one is running (then `started: false` with its state). */
  start(trigger: BackfillTrigger): Promise<{ started: boolean; state: JobState }>;
  status(): Promise<JobState | null>;
  /** The in-process run's completion, for tests and shutdown. */
  current(): Promise<JobState> | null;
  /** Asks a run in progress to stop at the next batch boundary and persist status "interrupted". */
  stop(): Promise<void>;
}

export function createBackfillJob(deps: BackfillDeps): BackfillJob {
  const batchSize = deps.batchSize ?? 100;
  const concurrency = deps.concurrency ?? 4;
  const staleAfterMs = deps.staleAfterMs ?? 60_000;
  const progressEveryMs = deps.progressLogEveryMs ?? 10_000;
  const maxRateLimitWaits = deps.maxRateLimitWaits ?? 5;
  let run: Promise<JobState> | null = null;
  let stopRequested = false;

  async function sendBatch(scopeId: string, patterns: StoredPattern[]): Promise<{ synced: number; errors: number }> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        // Probe patterns are synced like any other, but their calls stay out of the judged counters.
        await uncountedIfProbeScope(scopeId, () => deps.context7.upsertPatterns({ scopeId, patterns: patterns.map(toUpsert) }));
        await deps.store.completeOutbox(patterns.map((pattern) => pattern.id), deps.clock());
        return { synced: patterns.length, errors: 0 };
      } catch (error) {
        const retryAfterMs = error instanceof Context7Error ? error.details.retryAfterMs : undefined;
        if (errorTypeOf(error) === 'rate_limited' && attempt < maxRateLimitWaits && !stopRequested) {
          const waitMs = retryAfterMs ?? 1_000 * 2 ** attempt;
          deps.log.sync.info(`Rate limited by Context7, waiting ${waitMs}ms`, { scopeId, waitMs });
          await deps.sleep(waitMs);
          continue;
        }
        deps.log.memoryError.warn('Full sync batch failed', {
          scopeId,
          patterns: patterns.length,
          ...describeError(error),
          errorType: errorTypeOf(error),
        });
        return { synced: 0, errors: patterns.length };
      }
    }
  }

  /** Runs tasks with at most `limit` in flight. */
  async function bounded<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
    const results: T[] = new Array(tasks.length);
    let next = 0;
    const worker = async () => {
      while (next < tasks.length) {
        const index = next++;
        results[index] = await tasks[index]();
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
    return results;
  }

  async function execute(initial: JobState): Promise<JobState> {
    const state: JobState = { ...initial };
    const startedMs = deps.clock().getTime();
    let lastProgressLog = startedMs;
    const save = async () => {
      state.heartbeatAt = deps.clock().toISOString();
      await deps.store.saveJobState(state);
    };
    try {
      while (!stopRequested) {
        const page = await deps.store.listPatternsPage(state.cursor, batchSize * concurrency, deps.clock());
        if (page.length === 0) break;
        const batches: { scopeId: string; patterns: StoredPattern[] }[] = [];
        for (const [scopeId, patterns] of groupByScope(page)) {
          for (let i = 0; i < patterns.length; i += batchSize) batches.push({ scopeId, patterns: patterns.slice(i, i + batchSize) });
        }
        const outcomes = await bounded(
          batches.map((batch) => () => sendBatch(batch.scopeId, batch.patterns)),
          concurrency,
        );
        for (const outcome of outcomes) {
          state.synced += outcome.synced;
          state.errors += outcome.errors;
        }
        state.cursor = page[page.length - 1].id;
        state.total = Math.max(state.total, state.synced + state.errors);
        await save();
        const nowMs = deps.clock().getTime();
        if (nowMs - lastProgressLog >= progressEveryMs) {
          lastProgressLog = nowMs;
          deps.log.sync.info(`Progress: ${state.synced + state.errors}/${state.total} patterns (${state.synced} synced, ${state.errors} errors)`, {
            synced: state.synced,
            errors: state.errors,
            total: state.total,
          });
        }
      }
      if (stopRequested) {
        state.status = 'interrupted';
        await save();
        deps.log.sync.info(`Interrupted at cursor ${state.cursor ?? '(start)'}: ${state.synced} synced, ${state.errors} errors so far`, {
          cursor: state.cursor,
        });
        return state;
      }
      state.status = 'completed';
      state.finishedAt = deps.clock().toISOString();
      await save();
      const elapsedMs = deps.clock().getTime() - startedMs;
      deps.log.sync.info(`Complete: ${state.synced} synced, ${state.errors} errors in ${elapsedMs}ms`, {
        synced: state.synced,
        errors: state.errors,
        elapsedMs,
      });
      return state;
    } catch (error) {
      state.status = 'failed';
      state.finishedAt = deps.clock().toISOString();
      deps.log.memoryError.error('Full sync failed', describeError(error));
      await save().catch(() => undefined);
      return state;
    }
  }

  return {
    async start(trigger) {
      if (run) {
        const state = await deps.store.loadJobState(BACKFILL_JOB_NAME);
        if (state) return { started: false, state };
      }
      const now = deps.clock();
      const previous = await deps.store.loadJobState(BACKFILL_JOB_NAME);
      // An interrupted run, or one whose owner died (stale heartbeat), continues from its cursor.
      const abandoned = previous?.status === 'running' && now.getTime() - Date.parse(previous.heartbeatAt) > staleAfterMs;
      const resumeFrom = previous?.status === 'interrupted' || abandoned ? previous : null;
      const total = await deps.store.countPatterns(now);
      const initial: JobState = {
        name: BACKFILL_JOB_NAME,
        status: 'running',
        startedAt: resumeFrom ? resumeFrom.startedAt : now.toISOString(),
        finishedAt: null,
        cursor: resumeFrom ? resumeFrom.cursor : null,
        total: resumeFrom ? Math.max(total, resumeFrom.synced + resumeFrom.errors) : total,
        synced: resumeFrom ? resumeFrom.synced : 0,
        errors: resumeFrom ? resumeFrom.errors : 0,
        owner: deps.owner,
        heartbeatAt: now.toISOString(),
      };
      const attempt = await deps.store.tryStartJob(initial, staleAfterMs, now);
      if (!attempt.started) return attempt;
      stopRequested = false;
      deps.log.sync.info(
        resumeFrom
          ? `Full sync resumed (${trigger}) after ${resumeFrom.synced + resumeFrom.errors} patterns`
          : `Full sync started (${trigger}): ${initial.total} patterns`,
        { trigger, total: initial.total, cursor: initial.cursor },
      );
      run = execute(attempt.state).finally(() => {
        run = null;
      });
      return attempt;
    },
    status() {
      return deps.store.loadJobState(BACKFILL_JOB_NAME);
    },
    current() {
      return run;
    },
    async stop() {
      stopRequested = true;
      if (run) await run;
    },
  };
}
