/**
 * Memory reads and post-call learning, independent of HTTP.
 * Reads: cache -> Context7 (+ local unsynced patterns merged: "hybrid") -> local store on any failure.
 * Writes: durable in the store (with outbox entries) before anything else, then the scope's cache is
 * invalidated, then Context7 gets them; a failure there leaves them in the outbox for the drainer.
 *
 * When the local store fails (StoreUnavailableError: it timed out, refused, or is busy) that is counted as a
 * store error, never as a Context7 error or a fallback:
 * - a learning write cannot be acknowledged without the store (durability first): it fails, and the HTTP layer
 *   answers 503 + Retry-After;
 * - a read with Context7 on and healthy gives the local read its own deadline (`hybridStoreReadTimeoutMs`). If the
 *   store fails or misses it, the read answers from Context7 alone (source "context7", not cached, since it lacks
 *   the scope's unsynced local patterns); the request then takes no longer than Context7 itself or that deadline;
 * - a read with no Context7 answer (off, no key, or Context7 failing too) has nothing to answer from: 503;
 * - Context7's copy is served alone only for a scope this instance confirmed, within ERASURES_CLEAR_TTL_MS, has
 *   no erasure awaiting deletion in Context7 (otherwise 503): erasure outranks availability.
 *
 * Progressive exposure (domain/exposure.ts) gates reads only. With the flag on, a scope outside the percentage in
 * force (the control cohort) reads from the local store alone: source "database", counted as a read, never as a
 * fallback, and neither Context7 nor the cache is asked. Writes are not gated: while the flag is on every scope's
 * learning writes (and so the outbox and the backfill) reach Context7, so a scope exposed later finds its memory
 * there, and lowering the percentage (the kill switch included) never strands a pattern in the local store only.
 */
import type { PatternsResponse, Snippet, SnippetsResponse } from '../contracts/http';
import type { CachedSnippets, SnippetCache } from '../cache/cache-port';
import { Context7Error, type Context7Port } from '../context7/port';
import type { MemoryStore, StoredPattern } from '../data-access/memory-store';
import { StoreUnavailableError, withDeadline } from '../data-access/store-errors';
import { LRUCache } from 'lru-cache';
import { isDeepStrictEqual } from 'node:util';
import { describeError, type ServiceLogger } from '../logging';
import { countedApartAsProbe, type MetricsRecorder } from './metrics';
import { isExposed } from './exposure';
import { currentCohort } from './cohort-metrics';
import { keepSerializedJson } from './serialized-json';
import { isProbeScopeId, parseScopeId } from './scope-id';
import { outboxRetryDelayMs, scopeKeyOf, toNewPattern, toSnippet, toUpsert, type PatternInput } from './patterns';

export const DEFAULT_SNIPPET_LIMIT = 10;
/** While the breaker is open, fallback warnings are logged at most this often (each line carries a count). */
export const CIRCUIT_OPEN_LOG_INTERVAL_MS = 10_000;
/** How long "no erasure of this scope awaits Context7" is trusted while the store cannot be asked again. */
export const ERASURES_CLEAR_TTL_MS = 60_000;
/**
 * A scope's `[CACHE] hit` lines: at most one per this interval, each counting the hits since the line before
 * (`similarHitsSinceLastLine`), as the breaker-open fallback lines do. A line per hit was the largest single cost of
 * a cache hit (issue 29's profile); the exact counts are in the metrics (`cache.hits`), and misses still log each.
 */
export const CACHE_HIT_LOG_INTERVAL_MS = 1_000;

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
  /**
   * With Context7 answering, how long a read waits for the local store's unsynced patterns before it answers from
   * Context7 alone. Unset: no deadline of its own (the store's deadlines still apply; SQLite never blocks).
   */
  hybridStoreReadTimeoutMs?: number;
  /**
   * The exposure percentage in force (fleet/exposure-control.ts), read on every read without I/O. Unset: every
   * scope is exposed, as before progressive exposure.
   */
  exposure?: { percent(): number };
}

/** How long a learning write holds its own outbox entries; a drainer takes them over if the writer dies. */
export const WRITE_PATH_LEASE_MS = 30_000;

export interface MemoryDomain {
  readSnippets(request: { scopeId: string; query?: string; limit?: number }): Promise<SnippetsResponse>;
  /**
   * readSnippets' answer when it needs no wait (a cache hit, or the flag off), with the same log line and counters,
   * given synchronously; undefined (nothing done) when it does, and then readSnippets answers. Issue 29: a cache hit
   * went through five promises and their microtask hops for a synchronous lookup.
   */
  readSnippetsNow?(request: { scopeId: string; query?: string; limit?: number }): SnippetsResponse | undefined;
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

  /** Counts a request's use of the store, and a store failure as a store error (not a Context7 one). */
  async function counted<T>(work: Promise<T>): Promise<T> {
    try {
      const result = await work;
      metrics.recordStoreCall({ ok: true });
      return result;
    } catch (error) {
      metrics.recordStoreCall({ ok: !(error instanceof StoreUnavailableError) });
      throw error;
    }
  }

  async function fromDatabase(scopeId: string, query: string | undefined, limit: number): Promise<Snippet[]> {
    return (await counted(store.searchPatterns(scopeId, query, limit, clock()))).map(toSnippet);
  }

  /** A store read for a hybrid answer: bounded by its own deadline when one is set; never rejects. */
  function bounded<T>(read: Promise<T>, what: string, count: boolean): Promise<{ value: T } | { storeError: unknown }> {
    const timeoutMs = deps.hybridStoreReadTimeoutMs;
    const limited =
      timeoutMs === undefined ? read : withDeadline(read, timeoutMs, () => new StoreUnavailableError(store.kind, 'timeout', what, timeoutMs, undefined));
    // The abandoned read still settles (within the store's own deadlines): its rejection must not go unhandled.
    read.catch(() => undefined);
    // Counted as it was answered here: a read cut by this deadline is a store error now, not when it settles.
    return (count ? counted(limited) : limited).then(
      (value) => ({ value }),
      (storeError: unknown) => ({ storeError }),
    );
  }

  /** The local half of a hybrid read (counted once as a store request). */
  function localForMerge(scopeId: string, query: string | undefined, limit: number) {
    return bounded(store.searchPatterns(scopeId, query, limit, clock()), 'hybrid read', true);
  }

  /**
   * Scopes this instance recently saw with no erasure awaiting deletion in Context7. While the store does not
   * answer, only their reads may be served from Context7 alone (anything else could serve erased content).
   */
  // ttlResolution 0: the clock read per lookup, no timer per idle millisecond (as the snippet cache).
  const erasuresClear = new LRUCache<string, true>({ max: 10_000, ttl: ERASURES_CLEAR_TTL_MS, ttlResolution: 0 });
  function noteErasures(scopeId: string, pending: { wholeScope: boolean; patternIds: string[] }): void {
    if (pending.wholeScope || pending.patternIds.length > 0) erasuresClear.delete(scopeId);
    else erasuresClear.set(scopeId, true);
  }
  function erasuresRecentlyClear(scopeId: string): boolean {
    return erasuresClear.get(scopeId) === true;
  }

  /**
   * `[CACHE]` lines are written after the answer has gone: serializing one (pino, key redaction, the secret scrub)
   * sat in front of every miss's response (issue 29's miss timing). One queue, flushed by one setImmediate, which
   * runs after the current turn's microtasks, so after the route's `res.json` has written the answer; the lines
   * keep their order, and a hit line never comes before the miss line of the load that filled the cache.
   */
  const cacheLines: { msg: string; fields: Record<string, unknown> }[] = [];
  function flushCacheLines(): void {
    for (const { msg, fields } of cacheLines.splice(0)) log.cache.info(msg, fields);
  }
  function cacheLineAfterAnswer(msg: string, fields: Record<string, unknown>): void {
    if (cacheLines.push({ msg, fields }) === 1) setImmediate(flushCacheLines);
  }

  /** Per scope: when its last `[CACHE] hit` line was written, and the hits since that were not. Bounded like erasuresClear. */
  const hitLines = new LRUCache<string, { loggedAtMs: number; unlogged: number }>({ max: 10_000 });
  function logCacheHit(scopeId: string, origin: string): void {
    if (!log.isLevelEnabled('info')) return;
    const nowMs = clock().getTime();
    const last = hitLines.get(scopeId);
    if (last && nowMs - last.loggedAtMs < CACHE_HIT_LOG_INTERVAL_MS && nowMs >= last.loggedAtMs) {
      last.unlogged += 1;
      return;
    }
    cacheLineAfterAnswer('hit', { scopeId, origin, ...(last ? { similarHitsSinceLastLine: last.unlogged } : {}) });
    hitLines.set(scopeId, { loggedAtMs: nowMs, unlogged: 0 });
  }

  /**
   * The cohort the HTTP edge counted this request in, when it did: gated and measured alike even while the
   * percentage changes mid-request.
   */
  function cohortOf(scopeId: string): 'treatment' | 'control' {
    return currentCohort() ?? (deps.exposure && !isExposed(scopeId, deps.exposure.percent()) ? 'control' : 'treatment');
  }

  function variantOf(query: string | undefined, limit: number): string {
    return JSON.stringify([query ?? '', limit]);
  }

  /**
   * A hit's answer depends only on its cache entry (the entry's snippets and origin) and its scope id, which the
   * entry's key holds: it is made once per entry, frozen, with its JSON (serialized-json.ts), and every later hit of
   * the entry returns it as it is, skipping two objects and JSON.stringify (issue 29's eighth round). Weakly held:
   * it goes with the entry. The scope id is checked anyway, so an entry's value served for another scope (no cache
   * does that) would get an answer of its own.
   */
  const hitAnswers = new WeakMap<CachedSnippets, SnippetsResponse & { source: 'cache' }>();
  function hitAnswer(scopeId: string, value: CachedSnippets): SnippetsResponse {
    const known = hitAnswers.get(value);
    if (known !== undefined && known.attestation.scopeId === scopeId) return known;
    const attestation = { backend: value.origin, scopeId, snippetsApplied: value.snippets.length };
    const made = keepSerializedJson({ snippets: value.snippets, source: 'cache' as const, attestation }, [attestation]);
    hitAnswers.set(value, made);
    return made;
  }

  /** A read answered through the cache (a hit, or the load a miss ran): its `[CACHE]` line, its counters, the body. */
  function answer(scopeId: string, value: CachedSnippets, fromCache: boolean): SnippetsResponse {
    if (fromCache) logCacheHit(scopeId, value.origin);
    else if (log.isLevelEnabled('info')) cacheLineAfterAnswer('miss', { scopeId, origin: value.origin });

    const source = fromCache ? 'cache' : value.origin;
    metrics.recordRead({
      source,
      fallback: !fromCache && value.origin === 'database',
      cache: fromCache ? 'hit' : 'miss',
    });
    if (fromCache) return hitAnswer(scopeId, value);
    return {
      snippets: value.snippets,
      source,
      attestation: { backend: value.origin, scopeId, snippetsApplied: value.snippets.length },
    };
  }

  async function loadFromContext7(
    context7: Context7Port,
    scopeId: string,
    query: string | undefined,
    limit: number,
  ): Promise<{ value: CachedSnippets; cacheable: boolean }> {
    // Context7, the local half of the hybrid merge and the scope's pending erasures, side by side. Context7's request
    // goes out first and the local reads run while it travels: SQLite answers synchronously, so reading it first put
    // its time in front of every miss (issue 29's profile). One macrotask lets the request reach its socket.
    const remoteCall = context7.searchSnippets({ scopeId, query, limit });
    remoteCall.catch(() => undefined); // awaited below; a rejection meanwhile is not unhandled
    await new Promise<void>((resolve) => setImmediate(resolve));
    const localRead = localForMerge(scopeId, query, limit);
    const erasingRead = bounded(store.pendingErasures(scopeId), 'pending erasures', false);
    try {
      const remote = await remoteCall;
      const [local, erasing] = await Promise.all([localRead, erasingRead]);
      for (const answer of [local, erasing]) {
        if ('storeError' in answer && !(answer.storeError instanceof StoreUnavailableError)) throw new LocalStoreError(answer.storeError);
      }
      // Context7's copy may be served only when no erasure of the scope awaits deletion there. Without the store
      // that is known only if this instance confirmed it recently: otherwise 503. Erasure outranks availability.
      let pending = { wholeScope: false, patternIds: [] as string[] };
      if ('storeError' in erasing) {
        if (!erasuresRecentlyClear(scopeId)) throw new LocalStoreError(erasing.storeError);
      } else {
        pending = erasing.value;
        noteErasures(scopeId, pending);
      }
      // Erased here, not yet deleted in Context7: never served, and the answer is not cached meanwhile.
      const erased = new Set(pending.patternIds);
      const visible = pending.wholeScope ? [] : remote.filter((snippet) => !erased.has(snippet.id));
      const awaitingDeletion = pending.wholeScope || pending.patternIds.length > 0;
      if ('storeError' in local) {
        log.memoryError.warn('Local store did not answer: read answered from Context7 alone (unsynced local patterns left out)', {
          scopeId,
          ...(local.storeError as StoreUnavailableError).describe(),
        });
        return { value: { snippets: visible.slice(0, limit), origin: 'context7' }, cacheable: false };
      }
      const { snippets, merged } = mergeUnsynced(visible, local.value, limit);
      return { value: { snippets, origin: merged > 0 ? 'hybrid' : 'context7' }, cacheable: !awaitingDeletion && !('storeError' in erasing) };
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
      // Fallback answers are not cached: the next read tries Context7 again. The fallback is the local read that
      // already ran alongside; if the store failed too, no source can answer and the store error goes up (503).
      const local = await localRead;
      if ('storeError' in local) throw local.storeError;
      return { value: { snippets: local.value.map(toSnippet), origin: 'database' }, cacheable: false };
    }
  }

  /**
   * Outbox bookkeeping after the patterns are durably saved: if the store fails now, the write is still
   * acknowledged. The entries stay leased to this writer until the lease expires, then a drainer (re)sends them.
   */
  async function afterDurableSave(work: Promise<void>): Promise<void> {
    try {
      await work;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      log.memoryError.error('Patterns are saved but their outbox entries could not be updated: a drainer sends them after the lease', {
        ...error.describe(),
        leaseMs: WRITE_PATH_LEASE_MS,
      });
    }
  }

  /** A probe-scope request is counted once, as probeRequests, and nothing it does reaches the other counters. */
  function apartIfProbe<T>(scopeId: string, work: () => Promise<T>): Promise<T> {
    if (!isProbeScopeId(scopeId)) return work();
    metrics.recordProbeRequest();
    return countedApartAsProbe(work);
  }

  const domain: MemoryDomain = {
    readSnippetsNow({ scopeId: rawScopeId, query, limit = DEFAULT_SNIPPET_LIMIT }) {
      // scopeKeyOf(rawScopeId).scopeId, without splitting the id into its parts (a match array and an object per hit).
      const scopeId = parseScopeId(rawScopeId);
      if (!deps.enabled) return { snippets: [], source: 'disabled' };
      if (!cache.peek || !deps.context7 || cohortOf(scopeId) === 'control') return undefined;
      const value = cache.peek(scopeId, variantOf(query, limit));
      return value === undefined ? undefined : answer(scopeId, value, true);
    },

    async readSnippets({ scopeId: rawScopeId, query, limit = DEFAULT_SNIPPET_LIMIT }) {
      const { scopeId } = scopeKeyOf(rawScopeId);
      if (!deps.enabled) return { snippets: [], source: 'disabled' };

      const cohort = cohortOf(scopeId);
      if (cohort === 'control') {
        // The control cohort: the local store by design, so a read like any other, not a fallback.
        const snippets = await fromDatabase(scopeId, query, limit);
        metrics.recordRead({ source: 'database', fallback: false, cache: 'bypass' });
        return { snippets, source: 'database', attestation: { backend: 'database', scopeId, snippetsApplied: snippets.length } };
      }

      const context7 = deps.context7;
      if (!context7) {
        const snippets = await fromDatabase(scopeId, query, limit);
        metrics.recordRead({ source: 'database', fallback: true, cache: 'bypass' });
        log.memory.debug('Read answered from the database (no Context7 API key)', { scopeId, snippets: snippets.length });
        return { snippets, source: 'database', attestation: { backend: 'database', scopeId, snippetsApplied: snippets.length } };
      }

      const { value, fromCache } = await cache.getOrLoad(scopeId, variantOf(query, limit), () =>
        loadFromContext7(context7, scopeId, query, limit),
      );
      return answer(scopeId, value, fromCache);
    },

    async learnPatterns({ scopeId: rawScopeId, patterns }) {
      const scope = scopeKeyOf(rawScopeId);
      const sendsNow = deps.enabled && deps.context7 !== null;
      const requested = patterns.map((input) => toNewPattern(scope.scopeId, input));
      const { saved, insertedIds } = await counted(
        store.savePatterns(
          scope,
          requested,
          clock(),
          sendsNow ? { leaseTo: { workerId: deps.workerId ?? 'learning-write', leaseMs: WRITE_PATH_LEASE_MS } } : undefined,
        ),
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
        const ids = toSend.map((pattern) => pattern.id);
        try {
          await context7.upsertPatterns({ scopeId: scope.scopeId, patterns: toSend.map(toUpsert) });
        } catch (error) {
          sendFailed = true;
          const retryAfterMs = error instanceof Context7Error ? error.details.retryAfterMs : undefined;
          await afterDurableSave(store.failOutbox(ids, errorTypeOf(error), new Date(clock().getTime() + outboxRetryDelayMs(0, retryAfterMs))));
          log.memoryError.warn('Context7 upsert failed, patterns wait in the outbox', {
            scopeId: scope.scopeId,
            patterns: toSend.length,
            ...describeError(error),
            errorType: errorTypeOf(error),
          });
        }
        if (!sendFailed) await afterDurableSave(store.completeOutbox(ids, clock()));
      }
      const sentToContext7 = context7 !== null && saved.length > 0 && !sendFailed && !leftInOutbox;
      const destinations: PatternsResponse['destinations'] = sentToContext7 ? ['database', 'context7'] : ['database'];
      log.memory.info(`💾 Saved ${saved.length} patterns to memory (${destinations.join(', ')})`, {
        scopeId: scope.scopeId,
        saved: saved.length,
        inserted: insertedIds.length,
      });
      // A re-posted pattern keeps what it was stored with: said, never silently (contracts/http.ts metadataKept).
      const metadataKept = saved.flatMap((pattern, index) => {
        const asked = requested[index];
        if (!asked || leased.has(pattern.id) || insertedIds.includes(pattern.id)) return [];
        const sameMetadata = isDeepStrictEqual(pattern.metadata ?? null, asked.metadata ?? null);
        const sameExpiry = (pattern.expiresAt === null ? null : Date.parse(pattern.expiresAt)) === (asked.expiresAt === null ? null : Date.parse(asked.expiresAt));
        return sameMetadata && sameExpiry ? [] : [pattern.id];
      });
      return { saved: saved.length, inserted: insertedIds.length, patternIds, destinations, ...(metadataKept.length ? { metadataKept: [...new Set(metadataKept)] } : {}) };
    },
  };
  return {
    readSnippets: (request) => apartIfProbe(request.scopeId, () => domain.readSnippets(request)),
    // A probe scope's read is counted once, by readSnippets: it never answers at once (probes are rare).
    readSnippetsNow: (request) => (isProbeScopeId(request.scopeId) ? undefined : domain.readSnippetsNow!(request)),
    learnPatterns: (request) => apartIfProbe(request.scopeId, () => domain.learnPatterns(request)),
  };
}
