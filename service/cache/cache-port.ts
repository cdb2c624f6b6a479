/**
 * The snippet cache seen by the memory domain. The in-process LRU implements it; the data-plane issue
 * adds a Redis tier behind the LRU with cross-instance invalidation, behind the same interface.
 */
import type { Snippet } from '../contracts/http';

export interface CachedSnippets {
  snippets: Snippet[];
  /** Where the cached answer originally came from. */
  origin: 'context7' | 'hybrid' | 'database';
}

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
  ttlMs: number;
}

export interface SnippetCache {
  /**
   * Returns the cached value (a hit) or runs `load` once for all concurrent callers of the same key (a miss).
   * `fromCache` tells which happened to this caller. A value with `cacheable: false` is returned but not stored.
   */
  getOrLoad(
    scopeId: string,
    variantKey: string,
    load: () => Promise<{ value: CachedSnippets; cacheable: boolean }>,
  ): Promise<{ value: CachedSnippets; fromCache: boolean }>;
  /**
   * A hit answered at once: the value getOrLoad would return as a hit right now, counted and reported as that hit;
   * undefined (nothing counted) when getOrLoad would have to wait or load. Lets a cache hit skip the promises of
   * getOrLoad (issue 29); a cache that cannot tell synchronously leaves it out.
   */
  peek?(scopeId: string, variantKey: string): CachedSnippets | undefined;
  /** Drops every entry of the scope (after a learning write), on this instance and, where shared, on all. */
  invalidateScope(scopeId: string): Promise<void>;
  /**
   * Erasure: invalidates the scope like invalidateScope, and also deletes every value of the scope a shared tier
   * still stores (invalidation only makes them unreachable until their TTL). Without it, invalidateScope is used.
   */
  eraseScope?(scopeId: string): Promise<void>;
  stats(): CacheStats;
  close(): Promise<void>;
}
