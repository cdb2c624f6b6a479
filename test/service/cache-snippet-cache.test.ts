/**
 * The LRU snippet cache: hits and misses, single-flight, TTL on an injected clock, LRU bound,
 * scope-wide invalidation, and the generation fence against loads that straddle an invalidation.
 */
import { createHook } from 'node:async_hooks';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CachedSnippets } from '../../service/cache/cache-port';
import { createLruSnippetCache, type SnippetCacheEvent } from '../../service/cache/snippet-cache';

const SCOPE_A = 'scope:loc-1:agent-1:aaaaaaaaaaaaaaaa';
const SCOPE_B = 'scope:loc-1:agent-2:bbbbbbbbbbbbbbbb';

function snippets(label: string): CachedSnippets {
  return { snippets: [{ id: label, content: `content ${label}` }], origin: 'context7' };
}

/** A load the test resolves by hand, counting how often it was started. */
function deferredLoad() {
  let calls = 0;
  const resolvers: Array<(value: { value: CachedSnippets; cacheable: boolean }) => void> = [];
  const rejecters: Array<(error: Error) => void> = [];
  const load = () => {
    calls += 1;
    return new Promise<{ value: CachedSnippets; cacheable: boolean }>((resolve, reject) => {
      resolvers.push(resolve);
      rejecters.push(reject);
    });
  };
  return {
    load,
    calls: () => calls,
    resolve: (index: number, value: CachedSnippets, cacheable = true) => resolvers[index]!({ value, cacheable }),
    reject: (index: number, error: Error) => rejecters[index]!(error),
  };
}

const immediate = (value: CachedSnippets, cacheable = true) => async () => ({ value, cacheable });

/** Lets pending promise callbacks run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('hits and misses', () => {
  it('misses once, then hits, with events and stats to match', async () => {
    const events: SnippetCacheEvent[] = [];
    const cache = createLruSnippetCache({ ttlMs: 60_000, onEvent: (e) => events.push(e) });
    const first = await cache.getOrLoad(SCOPE_A, 'q=hello|limit=5', immediate(snippets('one')));
    const second = await cache.getOrLoad(SCOPE_A, 'q=hello|limit=5', immediate(snippets('two')));
    expect(first).toEqual({ value: snippets('one'), fromCache: false });
    expect(second).toEqual({ value: snippets('one'), fromCache: true });
    expect(cache.stats()).toEqual({ hits: 1, misses: 1, size: 1, ttlMs: 60_000 });
    expect(events.map((e) => e.type)).toEqual(['miss', 'hit']);
    expect(events[0]).toMatchObject({ scopeId: SCOPE_A, variantKey: 'q=hello|limit=5', coalesced: false });
  });

  it('peek answers a hit at once, counted and reported as getOrLoad counts one; a miss it leaves alone', async () => {
    const events: SnippetCacheEvent[] = [];
    const cache = createLruSnippetCache({ ttlMs: 60_000, onEvent: (e) => events.push(e) });
    expect(cache.peek!(SCOPE_A, 'q')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 0 });
    expect(events).toEqual([]);
    await cache.getOrLoad(SCOPE_A, 'q', immediate(snippets('one')));
    expect(cache.peek!(SCOPE_A, 'q')).toEqual(snippets('one'));
    expect(cache.peek!(SCOPE_B, 'q')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1 });
    expect(events.map((e) => e.type)).toEqual(['miss', 'hit']);
    expect(events[1]).toEqual({ type: 'hit', scopeId: SCOPE_A, variantKey: 'q' });
    await cache.invalidateScope(SCOPE_A);
    expect(cache.peek!(SCOPE_A, 'q')).toBeUndefined();
  });

  it('keeps variants and scopes apart', async () => {
    const cache = createLruSnippetCache();
    await cache.getOrLoad(SCOPE_A, 'v1', immediate(snippets('a1')));
    await cache.getOrLoad(SCOPE_A, 'v2', immediate(snippets('a2')));
    await cache.getOrLoad(SCOPE_B, 'v1', immediate(snippets('b1')));
    expect((await cache.getOrLoad(SCOPE_A, 'v2', immediate(snippets('x')))).value).toEqual(snippets('a2'));
    expect((await cache.getOrLoad(SCOPE_B, 'v1', immediate(snippets('x')))).value).toEqual(snippets('b1'));
  });

  it('does not store values marked not cacheable (e.g. a fallback answer)', async () => {
    const cache = createLruSnippetCache();
    await cache.getOrLoad(SCOPE_A, 'v', immediate({ ...snippets('fallback'), origin: 'database' }, false));
    const next = await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('fresh')));
    expect(next).toEqual({ value: snippets('fresh'), fromCache: false });
  });

  it('a failing load reaches every waiter and caches nothing', async () => {
    const cache = createLruSnippetCache();
    const load = deferredLoad();
    const waiters = [cache.getOrLoad(SCOPE_A, 'v', load.load), cache.getOrLoad(SCOPE_A, 'v', load.load)];
    await flush();
    load.reject(0, new Error('context7 down'));
    for (const waiter of waiters) await expect(waiter).rejects.toThrow('context7 down');
    expect(load.calls()).toBe(1);
    expect(cache.stats().size).toBe(0);
    expect(cache.indexSizes()).toEqual({ scopesIndexed: 0, scopesLoading: 0, loadsInFlight: 0 });
  });

  it('a throwing onEvent hook does not fail reads', async () => {
    const cache = createLruSnippetCache({
      onEvent: () => {
        throw new Error('logger broke');
      },
    });
    await expect(cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('ok')))).resolves.toMatchObject({ fromCache: false });
    await expect(cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('ok')))).resolves.toMatchObject({ fromCache: true });
  });
});

describe('single-flight', () => {
  it('concurrent misses for one key share one load', async () => {
    const events: SnippetCacheEvent[] = [];
    const cache = createLruSnippetCache({ onEvent: (e) => events.push(e) });
    const load = deferredLoad();
    const callers = Array.from({ length: 25 }, () => cache.getOrLoad(SCOPE_A, 'v', load.load));
    await flush();
    expect(load.calls()).toBe(1);
    load.resolve(0, snippets('shared'));
    const results = await Promise.all(callers);
    for (const result of results) expect(result).toEqual({ value: snippets('shared'), fromCache: false });
    expect(events.filter((e) => e.type === 'miss' && e.coalesced)).toHaveLength(24);
    expect(cache.stats()).toMatchObject({ misses: 25, hits: 0, size: 1 });
    expect(await cache.getOrLoad(SCOPE_A, 'v', load.load)).toEqual({ value: snippets('shared'), fromCache: true });
    expect(load.calls()).toBe(1);
  });

  it('different keys load independently', async () => {
    const cache = createLruSnippetCache();
    const load = deferredLoad();
    const a = cache.getOrLoad(SCOPE_A, 'v', load.load);
    const b = cache.getOrLoad(SCOPE_B, 'v', load.load);
    await flush();
    expect(load.calls()).toBe(2);
    load.resolve(0, snippets('a'));
    load.resolve(1, snippets('b'));
    expect((await a).value).toEqual(snippets('a'));
    expect((await b).value).toEqual(snippets('b'));
  });
});

describe('TTL (injected clock)', () => {
  it('serves until the TTL passes, then loads again', async () => {
    let now = 1_000_000;
    const cache = createLruSnippetCache({ ttlMs: 300_000, clock: { now: () => now } });
    await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('old')));
    now += 299_999;
    expect(await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('new')))).toEqual({ value: snippets('old'), fromCache: true });
    now += 2;
    expect(await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('new')))).toEqual({ value: snippets('new'), fromCache: false });
  });

  it('expired entries leave size and the scope index', async () => {
    let now = 50_000; // lru-cache treats a start time of 0 as "no TTL", so the fake clock starts later
    const cache = createLruSnippetCache({ ttlMs: 1_000, clock: { now: () => now } });
    await cache.getOrLoad(SCOPE_A, 'v1', immediate(snippets('1')));
    await cache.getOrLoad(SCOPE_B, 'v1', immediate(snippets('2')));
    expect(cache.stats().size).toBe(2);
    now += 1_001;
    expect(cache.stats().size).toBe(0);
    expect(cache.indexSizes().scopesIndexed).toBe(0);
  });

  it('a lookup on the real clock creates no timer (lru-cache caches the time per ms with one otherwise)', async () => {
    const cache = createLruSnippetCache();
    await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('cached')));
    // Past lru-cache's default 1 ms resolution, so a cached time would have been dropped and a new timer made.
    await new Promise((resolve) => setTimeout(resolve, 5));
    let timers = 0;
    const hook = createHook({ init: (_id, type) => void (type === 'Timeout' && (timers += 1)) }).enable();
    try {
      expect(cache.peek!(SCOPE_A, 'v')).toEqual(snippets('cached'));
      expect(cache.peek!(SCOPE_B, 'v')).toBeUndefined();
    } finally {
      hook.disable();
    }
    expect(timers).toBe(0);
  });

  it('defaults to the runbook’s 5 minutes', () => {
    expect(createLruSnippetCache().stats().ttlMs).toBe(300_000);
  });

  it('rejects nonsensical settings', () => {
    expect(() => createLruSnippetCache({ ttlMs: 0 })).toThrow(/MEMORY_CACHE_TTL_MS/);
    expect(() => createLruSnippetCache({ maxEntries: 0 })).toThrow(/maxEntries/);
  });
});

describe('LRU bound', () => {
  it('evicts the least recently used entry and unindexes it', async () => {
    const cache = createLruSnippetCache({ maxEntries: 2 });
    await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('a')));
    await cache.getOrLoad(SCOPE_B, 'v', immediate(snippets('b')));
    await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('unused'))); // touch A
    await cache.getOrLoad(SCOPE_B, 'w', immediate(snippets('b2'))); // evicts B/v
    expect(cache.stats().size).toBe(2);
    expect((await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('x')))).fromCache).toBe(true);
    expect((await cache.getOrLoad(SCOPE_B, 'v', immediate(snippets('b-again')))).fromCache).toBe(false);
  });
});

describe('invalidation', () => {
  it('drops every variant of the scope and nothing else', async () => {
    const events: SnippetCacheEvent[] = [];
    const cache = createLruSnippetCache({ onEvent: (e) => events.push(e) });
    for (const variant of ['v1', 'v2', 'v3']) await cache.getOrLoad(SCOPE_A, variant, immediate(snippets(variant)));
    await cache.getOrLoad(SCOPE_B, 'v1', immediate(snippets('b')));
    await cache.invalidateScope(SCOPE_A);
    expect(events.at(-1)).toEqual({ type: 'invalidate', scopeId: SCOPE_A, dropped: 3, fencedLoads: 0 });
    expect(cache.stats().size).toBe(1);
    for (const variant of ['v1', 'v2', 'v3']) {
      expect((await cache.getOrLoad(SCOPE_A, variant, immediate(snippets('reloaded')))).fromCache).toBe(false);
    }
    expect((await cache.getOrLoad(SCOPE_B, 'v1', immediate(snippets('x')))).fromCache).toBe(true);
  });

  it('a scope that is a prefix of another is invalidated alone', async () => {
    const cache = createLruSnippetCache();
    const longer = `${SCOPE_A}x`;
    await cache.getOrLoad(SCOPE_A, 'v', immediate(snippets('short')));
    await cache.getOrLoad(longer, 'v', immediate(snippets('long')));
    await cache.invalidateScope(SCOPE_A);
    expect((await cache.getOrLoad(longer, 'v', immediate(snippets('x')))).fromCache).toBe(true);
  });

  it('a load that started before an invalidation cannot store its stale result', async () => {
    const cache = createLruSnippetCache();
    const load = deferredLoad();
    const before = cache.getOrLoad(SCOPE_A, 'v', load.load);
    await flush();
    await cache.invalidateScope(SCOPE_A); // a learning write lands while the search is in flight

    // A reader arriving after the write starts its own load instead of joining the stale one.
    const after = cache.getOrLoad(SCOPE_A, 'v', load.load);
    await flush();
    expect(load.calls()).toBe(2);

    load.resolve(0, snippets('stale')); // the pre-write search finishes last... or first: either way it must not be stored
    expect((await before).value).toEqual(snippets('stale'));
    expect(cache.stats().size).toBe(0);

    load.resolve(1, snippets('fresh'));
    expect((await after).value).toEqual(snippets('fresh'));
    expect(await cache.getOrLoad(SCOPE_A, 'v', load.load)).toEqual({ value: snippets('fresh'), fromCache: true });
    expect(cache.indexSizes()).toEqual({ scopesIndexed: 1, scopesLoading: 0, loadsInFlight: 0 });
  });

  it('the fence holds across repeated invalidations and when the stale load finishes after the fresh one', async () => {
    const cache = createLruSnippetCache();
    const load = deferredLoad();
    const first = cache.getOrLoad(SCOPE_A, 'v', load.load);
    await flush();
    await cache.invalidateScope(SCOPE_A);
    await cache.invalidateScope(SCOPE_A);
    const second = cache.getOrLoad(SCOPE_A, 'v', load.load);
    await flush();
    load.resolve(1, snippets('fresh'));
    await second;
    load.resolve(0, snippets('stale'));
    await first;
    expect((await cache.getOrLoad(SCOPE_A, 'v', load.load)).value).toEqual(snippets('fresh'));
  });

  it('invalidating another scope does not fence this one', async () => {
    const cache = createLruSnippetCache();
    const load = deferredLoad();
    const pending = cache.getOrLoad(SCOPE_A, 'v', load.load);
    await flush();
    await cache.invalidateScope(SCOPE_B);
    load.resolve(0, snippets('kept'));
    await pending;
    expect((await cache.getOrLoad(SCOPE_A, 'v', load.load)).fromCache).toBe(true);
  });

  it('bookkeeping returns to empty: no per-scope state outlives its entries and loads', async () => {
    const cache = createLruSnippetCache({ maxEntries: 5 });
    for (let n = 0; n < 50; n++) {
      const scope = `scope:loc-1:agent-${n}:cccccccccccccccc`;
      await cache.getOrLoad(scope, 'v', immediate(snippets(String(n))));
      if (n % 2 === 0) await cache.invalidateScope(scope);
    }
    const sizes = cache.indexSizes();
    expect(sizes.scopesLoading).toBe(0);
    expect(sizes.loadsInFlight).toBe(0);
    expect(sizes.scopesIndexed).toBe(cache.stats().size);
    await cache.close();
    expect(cache.indexSizes()).toEqual({ scopesIndexed: 0, scopesLoading: 0, loadsInFlight: 0 });
  });
});

describe('invalidation fence (property-based)', () => {
  it('whatever the interleaving, a cached value never comes from a load that started before the scope’s last invalidation', async () => {
    const scopes = [SCOPE_A, SCOPE_B];
    const variants = ['v1', 'v2'];
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('read' as const), scope: fc.nat(1), variant: fc.nat(1), cacheable: fc.boolean() }),
      fc.record({ kind: fc.constant('finish' as const), pick: fc.nat(), fail: fc.boolean() }),
      fc.record({ kind: fc.constant('invalidate' as const), scope: fc.nat(1) }),
    );

    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 40 }), async (operations) => {
        const cache = createLruSnippetCache();
        const epochs = new Map<string, number>(scopes.map((s) => [s, 0]));
        /** label -> how the load that produced it started */
        const origins = new Map<string, { scope: string; epoch: number; cacheable: boolean }>();
        const pending: Array<{ settle: (fail: boolean) => void }> = [];
        const readers: Array<Promise<unknown>> = [];
        let labels = 0;

        for (const op of operations) {
          if (op.kind === 'read') {
            const scope = scopes[op.scope]!;
            readers.push(
              cache
                .getOrLoad(scope, variants[op.variant]!, () => {
                  const label = `load-${labels++}`;
                  origins.set(label, { scope, epoch: epochs.get(scope)!, cacheable: op.cacheable });
                  return new Promise((resolve, reject) => {
                    pending.push({
                      settle: (fail) => (fail ? reject(new Error('load failed')) : resolve({ value: snippets(label), cacheable: op.cacheable })),
                    });
                  });
                })
                .catch(() => undefined),
            );
          } else if (op.kind === 'finish' && pending.length > 0) {
            pending.splice(op.pick % pending.length, 1)[0]!.settle(op.fail);
          } else if (op.kind === 'invalidate') {
            const scope = scopes[op.scope]!;
            epochs.set(scope, epochs.get(scope)! + 1);
            await cache.invalidateScope(scope);
          }
          await flush();
        }
        for (const load of pending.splice(0)) load.settle(false);
        await Promise.all(readers);

        for (const scope of scopes) {
          for (const variant of variants) {
            const peek = await cache.getOrLoad(scope, variant, immediate(snippets('peek'), false));
            if (!peek.fromCache) continue;
            const origin = origins.get(peek.value.snippets[0]!.id)!;
            expect(origin.scope).toBe(scope);
            expect(origin.cacheable).toBe(true);
            expect(origin.epoch).toBe(epochs.get(scope));
          }
        }
        expect(cache.indexSizes().loadsInFlight).toBe(0);
        expect(cache.indexSizes().scopesLoading).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
