/**
 * The Redis tier behind the in-process LRU, with two or three "instances" (each its own LRU and connections)
 * sharing the real Redis under a random key prefix.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type Redis from 'ioredis';
import type { CachedSnippets } from '../../service/cache/cache-port';
import { createLruSnippetCache } from '../../service/cache/snippet-cache';
import { createRedisTieredSnippetCache, type RedisTieredSnippetCache, type TierEvent } from '../../service/cache/redis-snippet-cache';
import { closeRedis, connectRedis as connectServiceRedis, duplicateForSubscribe } from '../../service/fleet/redis-connection';
import { startStallProxy } from '../support/stall-proxy';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';

const SCOPE = 'scope:loc1:agent-1:0123456789abcdef';
const OTHER = 'scope:loc1:agent-2:0123456789abcdef';
let admin: Redis;
let filePrefix: string;
/** Per test, so one test's entries never answer another's reads. */
let prefix: string;
let testCount = 0;

interface Instance {
  cache: RedisTieredSnippetCache;
  redis: Redis;
  subscriber: Redis;
  subscriberClientId: number;
  events: TierEvent[];
  waitFor(predicate: (event: TierEvent) => boolean): Promise<TierEvent>;
}
const instances: Instance[] = [];

async function startInstance(id: string, via: { url?: string; commandTimeoutMs?: number } = {}): Promise<Instance> {
  const redis = await connectServiceRedis(via.url ?? TEST_REDIS_URL, { name: `test-${id}`, commandTimeoutMs: via.commandTimeoutMs });
  const subscriber = await duplicateForSubscribe(redis, { name: `test-${id}-sub` });
  const subscriberClientId = Number(await subscriber.client('ID'));
  const events: TierEvent[] = [];
  const waiters: { predicate: (e: TierEvent) => boolean; resolve: (e: TierEvent) => void }[] = [];
  const cache = await createRedisTieredSnippetCache({
    createLocal: () => createLruSnippetCache({ ttlMs: 60_000 }),
    redis,
    subscriber,
    keyPrefix: prefix,
    ttlMs: 60_000,
    instanceId: id,
    onEvent: (event) => {
      events.push(event);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(event)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(event);
        }
      }
    },
  });
  const instance: Instance = {
    cache,
    redis,
    subscriber,
    subscriberClientId,
    events,
    waitFor: (predicate) => {
      const seen = events.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ predicate, resolve }));
    },
  };
  instances.push(instance);
  return instance;
}

/** Rejects instead of waiting for ever, so a missing event fails the test with its name. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no ${what} within ${ms}ms`)), ms)),
  ]);
}

function answer(content: string): CachedSnippets {
  return { snippets: [{ id: content, content }], origin: 'context7' };
}

/** A loader that counts its calls. */
function loader(content: string) {
  const calls = { count: 0 };
  const load = async () => {
    calls.count += 1;
    return { value: answer(content), cacheable: true };
  };
  return { load, calls };
}

beforeAll(() => {
  admin = connectRedis();
  filePrefix = randomPrefix('tiercache');
});

beforeEach(() => {
  testCount += 1;
  prefix = `${filePrefix}${testCount}:`;
});

afterEach(async () => {
  for (const instance of instances.splice(0)) {
    await instance.cache.close();
    await closeRedis(instance.subscriber);
    await closeRedis(instance.redis);
  }
});

afterAll(async () => {
  await deleteKeys(admin, filePrefix);
  admin.disconnect();
});

describe('RedisTieredSnippetCache', () => {
  it('serves one instance\'s load to another from the shared tier, as a cache hit', async () => {
    const a = await startInstance('a');
    const b = await startInstance('b');
    const first = loader('v1');
    expect(await a.cache.getOrLoad(SCOPE, 'q=hello', first.load)).toEqual({ value: answer('v1'), fromCache: false });
    const second = loader('never');
    expect(await b.cache.getOrLoad(SCOPE, 'q=hello', second.load)).toEqual({ value: answer('v1'), fromCache: true });
    expect(second.calls.count).toBe(0);
    // Now in B's local tier too: a hit without Redis.
    expect((await b.cache.getOrLoad(SCOPE, 'q=hello', second.load)).fromCache).toBe(true);
    expect(b.cache.stats()).toMatchObject({ hits: 2, misses: 0, size: 1, ttlMs: 60_000 });
    expect(a.cache.stats()).toMatchObject({ hits: 0, misses: 1 });
    // Another variant of the scope is another entry.
    expect((await b.cache.getOrLoad(SCOPE, 'q=other', loader('v1-other').load)).fromCache).toBe(false);
  });

  it('a write on A invalidates B: B\'s next read loads fresh data, other scopes keep their entries', async () => {
    const a = await startInstance('a');
    const b = await startInstance('b');
    await b.cache.getOrLoad(SCOPE, 'q', loader('old').load);
    await b.cache.getOrLoad(OTHER, 'q', loader('other').load);
    expect((await b.cache.getOrLoad(SCOPE, 'q', loader('x').load)).fromCache).toBe(true);

    await a.cache.invalidateScope(SCOPE);
    await b.waitFor((e) => e.type === 'invalidation-received' && e.scopeId === SCOPE);

    const fresh = loader('new');
    expect(await b.cache.getOrLoad(SCOPE, 'q', fresh.load)).toEqual({ value: answer('new'), fromCache: false });
    expect(fresh.calls.count).toBe(1);
    const other = loader('x');
    expect((await b.cache.getOrLoad(OTHER, 'q', other.load)).fromCache).toBe(true);
    // A sees the fresh value B stored under the new generation.
    expect(await a.cache.getOrLoad(SCOPE, 'q', loader('x').load)).toEqual({ value: answer('new'), fromCache: true });
  });

  it('a load that raced a write never publishes its stale answer to the shared tier', async () => {
    const a = await startInstance('a');
    const b = await startInstance('b');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = b.cache.getOrLoad(SCOPE, 'q', async () => {
      await gate;
      return { value: answer('stale'), cacheable: true };
    });
    // Wait until B has read the shared tier (the generation it will write under), then write on A.
    await b.waitFor((e) => e.type === 'remote-miss');
    await a.cache.invalidateScope(SCOPE);
    release();
    expect((await slow).value).toEqual(answer('stale')); // the caller that asked before the write gets its answer
    const c = await startInstance('c');
    const fresh = loader('fresh');
    expect(await c.cache.getOrLoad(SCOPE, 'q', fresh.load)).toEqual({ value: answer('fresh'), fromCache: false });
  });

  it('does not cache answers marked not cacheable (fallbacks)', async () => {
    const a = await startInstance('a');
    const b = await startInstance('b');
    await a.cache.getOrLoad(SCOPE, 'q', async () => ({ value: { snippets: [], origin: 'database' }, cacheable: false }));
    const next = loader('ctx7');
    expect((await b.cache.getOrLoad(SCOPE, 'q', next.load)).fromCache).toBe(false);
    expect(next.calls.count).toBe(1);
  });

  it('peek answers from the local tier while subscribed, counted as a hit; without the subscription it never answers', async () => {
    const a = await startInstance('a');
    expect(a.cache.peek(SCOPE, 'q')).toBeUndefined();
    await a.cache.getOrLoad(SCOPE, 'q', loader('v1').load);
    expect(a.cache.peek(SCOPE, 'q')).toEqual(answer('v1'));
    expect(a.cache.stats()).toMatchObject({ hits: 1, misses: 1 });
    await admin.client('KILL', 'ID', String(a.subscriberClientId));
    await a.waitFor((e) => e.type === 'subscription-lost');
    expect(a.cache.peek(SCOPE, 'q')).toBeUndefined();
    expect(a.cache.stats()).toMatchObject({ hits: 1, misses: 1 });
  });

  it('after losing its subscription, an instance drops what it cached, so a missed invalidation cannot leave it stale', async () => {
    const a = await startInstance('a');
    const b = await startInstance('b');
    await b.cache.getOrLoad(SCOPE, 'q', loader('old').load);
    await admin.client('KILL', 'ID', String(b.subscriberClientId));
    await b.waitFor((e) => e.type === 'subscription-lost');
    // The invalidation is published while B is not listening.
    await a.cache.invalidateScope(SCOPE);
    const duringGap = loader('new');
    const read = await b.cache.getOrLoad(SCOPE, 'q', duringGap.load);
    expect(read.value).toEqual(answer('new'));
    await b.waitFor((e) => e.type === 'subscription-restored');
    expect(b.cache.stats().size).toBe(0);
    expect((await b.cache.getOrLoad(SCOPE, 'q', loader('unused').load)).value).toEqual(answer('new'));
  });

  it('when Redis hangs, stops trusting its local tier as for a lost subscription, and answers within one command timeout', async () => {
    const proxy = await startStallProxy({ host: new URL(TEST_REDIS_URL).hostname, port: Number(new URL(TEST_REDIS_URL).port || 6379) });
    try {
      const a = await startInstance('a');
      const b = await startInstance('b', { url: proxy.url(TEST_REDIS_URL), commandTimeoutMs: 200 });
      await b.cache.getOrLoad(SCOPE, 'q', loader('old').load);
      expect((await b.cache.getOrLoad(SCOPE, 'q', loader('x').load)).fromCache).toBe(true);
      proxy.pause();
      // B's connections stay open and silent: only its heartbeat can tell (once a second, plus half the timeout).
      await within(5_000, 'subscription-lost', b.waitFor((e) => e.type === 'subscription-lost'));
      await a.cache.invalidateScope(SCOPE); // B cannot hear it
      const times: number[] = [];
      for (let i = 0; i < 5; i += 1) {
        const started = performance.now();
        const read = await b.cache.getOrLoad(SCOPE, 'q', loader('new').load);
        await b.cache.invalidateScope(OTHER);
        times.push(Math.round(performance.now() - started));
        expect(read).toEqual({ value: answer('new'), fromCache: false });
      }
      // One 200 ms command timeout at most per read + write, not one per command or growing.
      expect(Math.max(...times), `read+write times ${times.join(', ')} ms`).toBeLessThan(1_000);
      proxy.resume();
      await within(10_000, 'subscription-restored', b.waitFor((e) => e.type === 'subscription-restored'));
      // Listening again: A's next write reaches B.
      const later = 'scope:loc1:agent-3:0123456789abcdef';
      await a.cache.invalidateScope(later);
      await within(5_000, 'invalidation after the hang', b.waitFor((e) => e.type === 'invalidation-received' && e.scopeId === later));
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });

  it('eraseScope deletes the scope\'s stored values from Redis (not only their generation); a hung Redis costs one command timeout', async () => {
    const a = await startInstance('a');
    await a.cache.getOrLoad(SCOPE, 'q1', loader('erased one').load);
    await a.cache.getOrLoad(SCOPE, 'q2', loader('erased two').load);
    await a.cache.getOrLoad(OTHER, 'q', loader('kept').load);
    const stored = async (scopeId: string) => (await admin.keys(`${prefix}snip:v:${scopeId}:*`)).length;
    expect(await stored(SCOPE)).toBe(2);
    await a.cache.invalidateScope(SCOPE);
    expect(await stored(SCOPE), 'invalidation alone leaves the values until their TTL').toBe(2);
    await a.cache.eraseScope(SCOPE);
    expect(await stored(SCOPE)).toBe(0);
    expect(await stored(OTHER)).toBe(1);

    const proxy = await startStallProxy({ host: new URL(TEST_REDIS_URL).hostname, port: Number(new URL(TEST_REDIS_URL).port || 6379) });
    try {
      const b = await startInstance('b', { url: proxy.url(TEST_REDIS_URL), commandTimeoutMs: 200 });
      proxy.pause();
      const started = performance.now();
      await expect(b.cache.eraseScope(OTHER)).resolves.toBeUndefined();
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(b.events.some((e) => e.type === 'remote-error' && (e.operation === 'invalidate' || e.operation === 'erase'))).toBe(true);
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });

  it('keeps answering from the source when Redis commands fail', async () => {
    const a = await startInstance('a');
    a.redis.disconnect(); // commands now fail at once (no offline queue)
    const first = loader('v');
    expect(await a.cache.getOrLoad(SCOPE, 'q', first.load)).toEqual({ value: answer('v'), fromCache: false });
    await expect(a.cache.invalidateScope(SCOPE)).resolves.toBeUndefined();
    expect(a.events.some((e) => e.type === 'remote-error' && e.operation === 'get')).toBe(true);
    expect(a.events.some((e) => e.type === 'remote-error' && e.operation === 'invalidate')).toBe(true);
  });
});
