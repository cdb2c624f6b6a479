/**
 * The in-process snippet cache: LRU with TTL (lru-cache 11), single-flight loads, and scope-wide
 * invalidation that also fences loads already in flight, so a learning write is never hidden by a
 * search that started before it.
 */
import { LRUCache } from 'lru-cache';
import type { CachedSnippets, CacheStats, SnippetCache } from './cache-port';

export const DEFAULT_CACHE_TTL_MS = 300_000;
export const DEFAULT_CACHE_MAX_ENTRIES = 10_000;

export type SnippetCacheEvent =
  | { type: 'hit'; scopeId: string; variantKey: string }
  /** `coalesced`: this caller joined a load another caller had already started */
  | { type: 'miss'; scopeId: string; variantKey: string; coalesced: boolean }
  /** `dropped`: cached entries removed; `fencedLoads`: in-flight loads that may no longer write */
  | { type: 'invalidate'; scopeId: string; dropped: number; fencedLoads: number };

export interface LruSnippetCacheOptions {
  ttlMs?: number;
  maxEntries?: number;
  onEvent?: (event: SnippetCacheEvent) => void;
  /** Clock for TTL checks (tests); production uses performance.now(). */
  clock?: { now(): number };
}

export interface LruSnippetCache extends SnippetCache {
  /** Sizes of the bookkeeping maps, so tests and debugging can see nothing leaks. */
  indexSizes(): { scopesIndexed: number; scopesLoading: number; loadsInFlight: number };
}

interface InFlight {
  promise: Promise<{ value: CachedSnippets; cacheable: boolean }>;
  scopeId: string;
}

/** A scope's loads in progress (fenced ones included) and the generation they are measured against. */
interface ScopeLoads {
  generation: number;
  outstanding: number;
}

export function createLruSnippetCache(options: LruSnippetCacheOptions = {}): LruSnippetCache {
  const ttlMs = options.ttlMs ?? DEFAULT_CACHE_TTL_MS;
  const maxEntries = options.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES;
  if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new Error('MEMORY_CACHE_TTL_MS must be a positive integer (ms)');
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new Error('cache maxEntries must be a positive integer');
  const onEvent = options.onEvent;

  /** scopeId -> cache keys of its variants, so invalidation does not scan the whole cache */
  const keysByScope = new Map<string, Set<string>>();
  /**
   * Per-scope generation, bumped by every invalidation. A load remembers the generation it started
   * under and may only store its result if it is unchanged. The record lives exactly as long as the
   * scope has loads outstanding, so memory stays bounded and no load can see a reset counter.
   */
  const loadsByScope = new Map<string, ScopeLoads>();
  const inFlight = new Map<string, InFlight>();
  let hits = 0;
  let misses = 0;

  const lru = new LRUCache<string, CachedSnippets>({
    max: maxEntries,
    ttl: ttlMs,
    // The clock read on every lookup (ttlResolution 0), not cached per ms: the cached time is reset by a timer, and
    // that timer was created anew by a lookup after every idle millisecond (issue 29's fifth round: 0.75 timers per
    // sequential hit). A read of performance.now() costs less, and expiry is exact.
    ...(options.clock ? { perf: options.clock } : {}),
    ttlResolution: 0,
    // Evicted, expired or deleted entries leave the scope index; an overwrite ('set') keeps its key.
    dispose: (_value, key, reason) => {
      if (reason !== 'set') unindex(key);
    },
  });

  function keyOf(scopeId: string, variantKey: string): string {
    // NUL cannot occur in a valid scope id, so no two (scope, variant) pairs share a key.
    return `${scopeId}\u0000${variantKey}`;
  }

  function unindex(key: string): void {
    const scopeId = key.slice(0, key.indexOf('\u0000'));
    const keys = keysByScope.get(scopeId);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) keysByScope.delete(scopeId);
  }

  function store(scopeId: string, variantKey: string, value: CachedSnippets): void {
    const key = keyOf(scopeId, variantKey);
    lru.set(key, value);
    let keys = keysByScope.get(scopeId);
    if (!keys) {
      keys = new Set();
      keysByScope.set(scopeId, keys);
    }
    keys.add(key);
  }

  function emit(event: SnippetCacheEvent): void {
    try {
      onEvent?.(event);
    } catch {
      // Logging or metrics failures must not fail a read.
    }
  }

  async function runLoad(
    scopeId: string,
    variantKey: string,
    key: string,
    load: () => Promise<{ value: CachedSnippets; cacheable: boolean }>,
  ): Promise<{ value: CachedSnippets; fromCache: boolean }> {
    let loads = loadsByScope.get(scopeId);
    if (!loads) {
      loads = { generation: 0, outstanding: 0 };
      loadsByScope.set(scopeId, loads);
    }
    loads.outstanding += 1;
    const startedAt = loads.generation;
    const flight: InFlight = { scopeId, promise: Promise.resolve().then(load) };
    inFlight.set(key, flight);
    try {
      const result = await flight.promise;
      // An invalidation since the start means the result may predate a learning write: serve, don't store.
      if (result.cacheable && loads.generation === startedAt) store(scopeId, variantKey, result.value);
      return { value: result.value, fromCache: false };
    } finally {
      if (inFlight.get(key) === flight) inFlight.delete(key);
      loads.outstanding -= 1;
      if (loads.outstanding === 0) loadsByScope.delete(scopeId);
    }
  }

  /** A cached value, counted and reported as a hit; undefined (nothing counted) when there is none. */
  function hit(scopeId: string, variantKey: string, key: string): CachedSnippets | undefined {
    const cached = lru.get(key);
    if (cached === undefined) return undefined;
    hits += 1;
    emit({ type: 'hit', scopeId, variantKey });
    return cached;
  }

  return {
    peek(scopeId, variantKey) {
      return hit(scopeId, variantKey, keyOf(scopeId, variantKey));
    },

    async getOrLoad(scopeId, variantKey, load) {
      const key = keyOf(scopeId, variantKey);
      const cached = hit(scopeId, variantKey, key);
      if (cached !== undefined) return { value: cached, fromCache: true };
      misses += 1;
      const running = inFlight.get(key);
      if (running) {
        emit({ type: 'miss', scopeId, variantKey, coalesced: true });
        return { value: (await running.promise).value, fromCache: false };
      }
      emit({ type: 'miss', scopeId, variantKey, coalesced: false });
      return runLoad(scopeId, variantKey, key, load);
    },

    async invalidateScope(scopeId) {
      const loads = loadsByScope.get(scopeId);
      if (loads) loads.generation += 1;
      let fencedLoads = 0;
      // Callers arriving after the write must start a fresh load, not join one that began before it.
      for (const [key, flight] of inFlight) {
        if (flight.scopeId === scopeId) {
          inFlight.delete(key);
          fencedLoads += 1;
        }
      }
      const keys = [...(keysByScope.get(scopeId) ?? [])];
      for (const key of keys) lru.delete(key);
      keysByScope.delete(scopeId);
      emit({ type: 'invalidate', scopeId, dropped: keys.length, fencedLoads });
    },

    stats(): CacheStats {
      lru.purgeStale();
      return { hits, misses, size: lru.size, ttlMs };
    },

    indexSizes() {
      return { scopesIndexed: keysByScope.size, scopesLoading: loadsByScope.size, loadsInFlight: inFlight.size };
    },

    async close() {
      inFlight.clear();
      lru.clear();
      keysByScope.clear();
    },
  };
}
