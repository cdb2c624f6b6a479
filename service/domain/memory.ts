/**
 * Memory reads and post-call learning, independent of HTTP.
 * Reads: cache -> Context7 (+ local unsynced patterns merged: "hybrid") -> local store on any failure.
 * Writes: durable in the store (with outbox entries) before anything else, then the scope's cache is
 * invalidated, then Context7 gets them; a failure there leaves them in the outbox for the drainer.
 */
import type { PatternsResponse, Snippet, SnippetsResponse } from '../contracts/http';
import type { CachedSnippets, SnippetCache } from '../cache/cache-port';
import { Context7Error, type Context7Port } from '../context7/port';
import type { MemoryStore, StoredPattern } from '../data-access/memory-store';
import { describeError, type ServiceLogger } from '../logging';
import type { MetricsRecorder } from './metrics';
import { outboxRetryDelayMs, scopeKeyOf, toNewPattern, toSnippet, toUpsert, type PatternInput } from './patterns';

export const DEFAULT_SNIPPET_LIMIT = 10;
/** While the breaker is open, fallback warnings are logged at most this often (each line carries a count). */
export const CIRCUIT_OPEN_LOG_INTERVAL_MS = 10_000;

export interface MemoryDomainDeps {
  enabled: boolean;
  /** null when the flag is off or no API key is configured (fallback mode). */
  context7: Context7Port | null;
  store: MemoryStore;
  cache: SnippetCache;
  metrics: MetricsRecorder;
  log: ServiceLogger;
  clock: () => Date;
  /** Lease owner of the outbox entries a learning write sends itself, so no drainer sends them at once too. */
  workerId?: string;
}

/** How long a learning write holds its own outbox entries; a drainer takes them over if the writer dies. */
export const WRITE_PATH_LEASE_MS = 30_000;

export interface MemoryDomain {
  readSnippets(request: { scopeId: string; query?: string; limit?: number }): Promise<SnippetsResponse>;
  learnPatterns(request: { scopeId: string; patterns: PatternInput[] }): Promise<PatternsResponse>;
}

/** Marks a local store failure inside the Context7 read path, so it is not mistaken for a Context7 failure. */
class LocalStoreError extends Error {
  constructor(override readonly cause: unknown) {
    super('local store read failed');
  }
}

export function errorTypeOf(error: unknown): string {
  return error instanceof Context7Error ? error.type : 'api_error';
}

function mergeUnsynced(remote: Snippet[], local: StoredPattern[], limit: number): { snippets: Snippet[]; merged: number } {
  const seen = new Set(remote.map((snippet) => snippet.id));
  const extra = local.filter((pattern) => pattern.syncedAt === null && !seen.has(pattern.id)).map(toSnippet);
  // Unsynced local patterns are the newest learning: they go first, then Context7's ranking.
  const snippets = [...extra, ...remote].slice(0, limit);
  return { snippets, merged: extra.length };
}

export function createMemoryDomain(deps: MemoryDomainDeps): MemoryDomain {
  const { store, cache, metrics, log, clock } = deps;
  let lastCircuitOpenLogMs = Number.NEGATIVE_INFINITY;
  let suppressedCircuitOpenLogs = 0;

  async function fromDatabase(scopeId: string, query: string | undefined, limit: number): Promise<Snippet[]> {
    return (await store.searchPatterns(scopeId, query, limit, clock())).map(toSnippet);
  }

  async function loadFromContext7(
    context7: Context7Port,
    scopeId: string,
    query: string | undefined,
    limit: number,
  ): Promise<{ value: CachedSnippets; cacheable: boolean }> {
    try {
      // The local read for the hybrid merge runs alongside the Context7 call; only Context7 failures fall back.
      const [unfiltered, local, erasing] = await Promise.all([
        context7.searchSnippets({ scopeId, query, limit }),
        store.searchPatterns(scopeId, query, limit, clock()).then(
          (patterns) => ({ patterns }),
          (storeError: unknown) => ({ storeError }),
        ),
        store.pendingErasures(scopeId).then(
          (pending) => ({ pending }),
          (storeError: unknown) => ({ storeError }),
        ),
      ]);
      if ('storeError' in local) throw new LocalStoreError(local.storeError);
      if ('storeError' in erasing) throw new LocalStoreError(erasing.storeError);
      // Erased here, not yet deleted in Context7: never served, and the answer is not cached meanwhile.
      const { pending } = erasing;
      const erased = new Set(pending.patternIds);
      const remote = pending.wholeScope ? [] : unfiltered.filter((snippet) => !erased.has(snippet.id));
      const { snippets, merged } = mergeUnsynced(remote, local.patterns, limit);
      const awaitingDeletion = pending.wholeScope || pending.patternIds.length > 0;
      return { value: { snippets, origin: merged > 0 ? 'hybrid' : 'context7' }, cacheable: !awaitingDeletion };
    } catch (error) {
      // A failing local store is a server fault, not a Context7 fallback.
      if (error instanceof LocalStoreError) throw error.cause;
      const circuitOpen = error instanceof Context7Error && Boolean(error.details.circuitOpen);
      // Breaker-open refusals cost no network call and repeat on every read: one line per interval, with a count.
      const nowMs = clock().getTime();
      if (!circuitOpen || nowMs - lastCircuitOpenLogMs >= CIRCUIT_OPEN_LOG_INTERVAL_MS) {
        log.memoryError.warn('Context7 search failed, answering from the database', {
          scopeId,
          ...describeError(error),
          errorType: errorTypeOf(error),
          circuitOpen,
          ...(circuitOpen ? { similarFallbacksSinceLastLine: suppressedCircuitOpenLogs } : {}),
        });
        if (circuitOpen) {
          lastCircuitOpenLogMs = nowMs;
          suppressedCircuitOpenLogs = 0;
        }
      } else {
        suppressedCircuitOpenLogs += 1;
      }
      // Fallback answers are not cached: the next read tries Context7 again.
      return { value: { snippets: await fromDatabase(scopeId, query, limit), origin: 'database' }, cacheable: false };
    }
  }

  return {
    async readSnippets({ scopeId: rawScopeId, query, limit = DEFAULT_SNIPPET_LIMIT }) {
      const { scopeId } = scopeKeyOf(rawScopeId);
      if (!deps.enabled) return { snippets: [], source: 'disabled' };

      const context7 = deps.context7;
      if (!context7) {
        const snippets = await fromDatabase(scopeId, query, limit);
        metrics.recordRead({ source: 'database', fallback: true, cache: 'bypass' });
        log.memory.debug('Read answered from the database (no Context7 API key)', { scopeId, snippets: snippets.length });
        return { snippets, source: 'database', attestation: { backend: 'database', scopeId, snippetsApplied: snippets.length } };
      }

      const variant = JSON.stringify([query ?? '', limit]);
      const { value, fromCache } = await cache.getOrLoad(scopeId, variant, () =>
        loadFromContext7(context7, scopeId, query, limit),
      );
      if (fromCache) log.cache.info('hit', { scopeId, origin: value.origin });
      else log.cache.info('miss', { scopeId, origin: value.origin });

      const source = fromCache ? 'cache' : value.origin;
      metrics.recordRead({
        source,
        fallback: !fromCache && value.origin === 'database',
        cache: fromCache ? 'hit' : 'miss',
      });
      return {
        snippets: value.snippets,
        source,
        attestation: { backend: value.origin, scopeId, snippetsApplied: value.snippets.length },
      };
    },

    async learnPatterns({ scopeId: rawScopeId, patterns }) {
      const scope = scopeKeyOf(rawScopeId);
      const sendsNow = deps.enabled && deps.context7 !== null;
      const { saved, insertedIds } = await store.savePatterns(
        scope,
        patterns.map((input) => toNewPattern(scope.scopeId, input)),
        clock(),
        sendsNow ? { leaseTo: { workerId: deps.workerId ?? 'learning-write', leaseMs: WRITE_PATH_LEASE_MS } } : undefined,
      );
      await cache.invalidateScope(scope.scopeId);

      // This write sends only what it inserted (its leased outbox entries). A re-posted pattern still waiting in
      // the outbox is the drainer's to send, so no pattern is ever sent by both at once.
      const leased = new Set(insertedIds);
      const toSend = saved.filter((pattern) => pattern.syncedAt === null && leased.has(pattern.id));
      const leftInOutbox = saved.some((pattern) => pattern.syncedAt === null && !leased.has(pattern.id));
      const patternIds = saved.map((pattern) => pattern.id);
      const context7 = deps.enabled ? deps.context7 : null;
      let sendFailed = false;
      if (context7 && toSend.length > 0) {
        try {
          await context7.upsertPatterns({ scopeId: scope.scopeId, patterns: toSend.map(toUpsert) });
          await store.completeOutbox(toSend.map((pattern) => pattern.id), clock());
        } catch (error) {
          sendFailed = true;
          const retryAfterMs = error instanceof Context7Error ? error.details.retryAfterMs : undefined;
          await store.failOutbox(
            toSend.map((pattern) => pattern.id),
            errorTypeOf(error),
            new Date(clock().getTime() + outboxRetryDelayMs(0, retryAfterMs)),
          );
          log.memoryError.warn('Context7 upsert failed, patterns wait in the outbox', {
            scopeId: scope.scopeId,
            patterns: toSend.length,
            ...describeError(error),
            errorType: errorTypeOf(error),
          });
        }
      }
      const sentToContext7 = context7 !== null && saved.length > 0 && !sendFailed && !leftInOutbox;
      const destinations: PatternsResponse['destinations'] = sentToContext7 ? ['database', 'context7'] : ['database'];
      log.memory.info(`💾 Saved ${saved.length} patterns to memory (${destinations.join(', ')})`, {
        scopeId: scope.scopeId,
        saved: saved.length,
        inserted: insertedIds.length,
      });
      return { saved: saved.length, inserted: insertedIds.length, patternIds, destinations };
    },
  };
}
