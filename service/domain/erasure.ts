/**
 * Erasure of one pattern or one whole scope, for data-protection requests (export + erasure cover them).
 * Order: the store first (content, pending upserts and history events go in one transaction, a tombstone stays,
 * and the Context7 deletion is enqueued), then the cache on every instance, then Context7. If Context7 is down,
 * the deletion waits in the erasure outbox and the drainer sends it once Context7 is back.
 */
import type { SnippetCache } from '../cache/cache-port';
import { Context7Error, type Context7Port } from '../context7/port';
import type { ErasureEntry, MemoryStore } from '../data-access/memory-store';
import { describeError, type ServiceLogger } from '../logging';
import { errorTypeOf } from './memory';
import { outboxRetryDelayMs, scopeKeyOf } from './patterns';

/** How long an erasure request holds its own Context7 deletion before a drainer may take it over. */
export const ERASURE_LEASE_MS = 30_000;

export interface ErasureResult {
  erasureId: string;
  scopeId: string;
  patternId: string | null;
  /** Patterns removed from the store. */
  erased: number;
  /** 'deleted': Context7 acknowledged; 'queued': the erasure outbox will send it (Context7 down, off, or busy). */
  context7: 'deleted' | 'queued';
}

export interface ErasureDeps {
  store: MemoryStore;
  cache: SnippetCache;
  /** null when Context7 is off or has no key: the deletion stays queued for when it is on. */
  context7: Context7Port | null;
  log: ServiceLogger;
  clock: () => Date;
  workerId: string;
}

/** The Context7 call of an erasure entry: the listed pattern, or the whole scope. */
export function deletionRequest(entry: Pick<ErasureEntry, 'scopeId' | 'patternId'>): { scopeId: string; patternIds?: string[] } {
  return entry.patternId === null ? { scopeId: entry.scopeId } : { scopeId: entry.scopeId, patternIds: [entry.patternId] };
}

/** The cache's part of an erasure: the scope's values deleted where a cache stores them, else invalidated. */
function dropErasedScope(cache: Pick<SnippetCache, 'invalidateScope' | 'eraseScope'>, scopeId: string): Promise<void> {
  return cache.eraseScope ? cache.eraseScope(scopeId) : cache.invalidateScope(scopeId);
}

/**
 * Sends one erasure entry to Context7 and records the outcome. After an acknowledged deletion the scope's cache is
 * dropped again: a read that ran between the store erasure and the deletion may have cached Context7's copy.
 */
export async function sendErasure(
  deps: Omit<ErasureDeps, 'workerId' | 'cache'> & { context7: Context7Port; cache: Pick<SnippetCache, 'invalidateScope' | 'eraseScope'> },
  entry: ErasureEntry,
): Promise<boolean> {
  try {
    await deps.context7.deletePatterns(deletionRequest(entry));
    await deps.store.completeErasures([entry.id], deps.clock());
    await dropErasedScope(deps.cache, entry.scopeId);
    return true;
  } catch (error) {
    const retryAfterMs = error instanceof Context7Error ? error.details.retryAfterMs : undefined;
    const retryAt = new Date(deps.clock().getTime() + outboxRetryDelayMs(entry.attempts, retryAfterMs));
    await deps.store.failErasures([entry.id], errorTypeOf(error), retryAt);
    deps.log.memoryError.warn('Context7 deletion failed, the erasure waits in the erasure outbox', {
      erasureId: entry.id,
      scopeId: entry.scopeId,
      retryAt: retryAt.toISOString(),
      ...describeError(error),
      errorType: errorTypeOf(error),
    });
    return false;
  }
}

export async function eraseMemory(
  deps: ErasureDeps,
  request: { scopeId: string; patternId: string | null; requestedBy: string },
): Promise<ErasureResult> {
  const scope = scopeKeyOf(request.scopeId);
  const context7 = deps.context7;
  const receipt = await deps.store.erase(
    scope,
    request.patternId,
    request.requestedBy,
    deps.clock(),
    context7 ? { leaseTo: { workerId: deps.workerId, leaseMs: ERASURE_LEASE_MS } } : undefined,
  );
  await dropErasedScope(deps.cache, scope.scopeId);
  const deleted = context7 !== null && receipt.leased && (await sendErasure({ ...deps, context7 }, receipt.erasure));
  // Ids and counts only: what was erased must not reappear in the logs.
  deps.log.memory.info(`🗑️ Erased ${receipt.erasedPatternIds.length} patterns (${request.patternId ? 'one pattern' : 'whole scope'})`, {
    erasureId: receipt.erasure.id,
    scopeId: scope.scopeId,
    requestedBy: request.requestedBy,
    context7: deleted ? 'deleted' : 'queued',
  });
  return {
    erasureId: receipt.erasure.id,
    scopeId: scope.scopeId,
    patternId: request.patternId,
    erased: receipt.erasedPatternIds.length,
    context7: deleted ? 'deleted' : 'queued',
  };
}
