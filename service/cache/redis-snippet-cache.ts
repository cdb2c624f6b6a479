/**
 * The shared cache tier for N instances: the in-process LRU in front, Redis (Render Key Value) behind it.
 *
 * Consistency after a learning write, across instances:
 * - each scope has a generation counter in Redis; values are stored under the generation they were loaded in,
 *   and a load only writes back if the generation is unchanged (one Lua script), so a load that raced a write
 *   cannot publish its stale answer;
 * - invalidateScope drops the local entries, bumps the generation and publishes the scope on a channel; every
 *   instance drops its local entries on receipt;
 * - while the subscription is down (Redis unreachable, reconnecting) invalidations could be missed, so the local
 *   tier is bypassed, and replaced by an empty one once the subscription is back.
 * Redis errors never fail a read: they count as a miss of the shared tier and the value is loaded from the source.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import { withinBudget } from '../fleet/redis-connection';
import type { CachedSnippets, CacheStats, SnippetCache } from './cache-port';

/** UNSUBSCRIBE at close is a courtesy (the owner closes the connection next): never wait long for it. */
const UNSUBSCRIBE_BUDGET_MS = 1_000;

export type TierEvent =
  | { type: 'remote-hit' | 'remote-miss'; scopeId: string }
  | { type: 'remote-error'; operation: 'get' | 'set' | 'invalidate' | 'erase'; message: string }
  | { type: 'invalidation-received'; scopeId: string; origin: string }
  | { type: 'subscription-lost' }
  | { type: 'subscription-restored'; droppedEntries: number };

export interface RedisTieredCacheOptions {
  /** Builds the in-process tier (the LRU); called again to start afresh after a gap in the subscription. */
  createLocal: () => SnippetCache;
  /** Command connection (see service/fleet/redis-connection.ts). */
  redis: Redis;
  /** A separate connection, used only to subscribe. */
  subscriber: Redis;
  keyPrefix: string;
  ttlMs: number;
  instanceId: string;
  onEvent?: (event: TierEvent) => void;
}

interface InvalidationMessage {
  scopeId: string;
  origin: string;
}

const GET_SCRIPT = `
local gen = redis.call('GET', KEYS[1]) or '0'
local value = redis.call('GET', ARGV[1] .. gen .. ':' .. ARGV[2])
if not value then return {gen} end
return {gen, value}`;

const SET_IF_GENERATION_SCRIPT = `
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return 0 end
redis.call('SET', ARGV[2] .. gen .. ':' .. ARGV[3], ARGV[4], 'PX', ARGV[5])
return 1`;

const INVALIDATE_SCRIPT = `
local gen = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return gen`;

type TieredRedis = Redis & {
  snippetTierGet(genKey: string, valuePrefix: string, variant: string): Promise<[string, string?]>;
  snippetTierSet(genKey: string, gen: string, valuePrefix: string, variant: string, value: string, ttlMs: number): Promise<number>;
  snippetTierInvalidate(genKey: string, genTtlMs: number, channel: string, message: string): Promise<number>;
};

function variantDigest(variantKey: string): string {
  return createHash('sha256').update(variantKey).digest('hex').slice(0, 32);
}

export class RedisTieredSnippetCache implements SnippetCache {
  private readonly redis: TieredRedis;
  private readonly channel: string;
  /** Values that came from Redis rather than from `load`: a hit for every caller that shares them. */
  private readonly fromSharedTier = new WeakSet<CachedSnippets>();
  private local: SnippetCache;
  private subscribed = false;
  private hits = 0;
  private misses = 0;
  private closed = false;

  private readonly subscription: Promise<void>;

  /**
   * Usable at once: until the subscription is confirmed the local tier is bypassed (see `ready()`), so
   * construction never waits on Redis and a Redis outage at start does not stop the service.
   */
  constructor(private readonly options: RedisTieredCacheOptions) {
    this.redis = options.redis as TieredRedis;
    this.local = options.createLocal();
    this.channel = `${options.keyPrefix}snip:invalidate`;
    if (typeof this.redis.snippetTierGet !== 'function') {
      this.redis.defineCommand('snippetTierGet', { numberOfKeys: 1, lua: GET_SCRIPT });
      this.redis.defineCommand('snippetTierSet', { numberOfKeys: 1, lua: SET_IF_GENERATION_SCRIPT });
      this.redis.defineCommand('snippetTierInvalidate', { numberOfKeys: 1, lua: INVALIDATE_SCRIPT });
    }
    this.subscription = this.subscribe();
    this.subscription.catch(() => undefined); // retried on the subscriber's next "ready"
  }

  /** Resolves once invalidations from other instances are being received (the local tier is in use). */
  ready(): Promise<void> {
    return this.subscription;
  }

  private async subscribe(): Promise<void> {
    const { subscriber } = this.options;
    subscriber.on('message', (channel: string, raw: string) => {
      if (channel === this.channel) void this.onInvalidation(raw);
    });
    subscriber.on('close', () => {
      if (!this.subscribed) return;
      this.subscribed = false;
      this.options.onEvent?.({ type: 'subscription-lost' });
    });
    // ioredis re-subscribes on reconnect and then emits "ready".
    subscriber.on('ready', () => {
      if (this.subscribed || this.closed) return;
      void this.restoreAfterGap();
    });
    await subscriber.subscribe(this.channel);
    if (!this.closed) this.subscribed = true;
  }

  private async restoreAfterGap(): Promise<void> {
    // "ready" fires before ioredis re-subscribes: subscribe first, so nothing published from here on is missed.
    try {
      await this.options.subscriber.subscribe(this.channel);
    } catch {
      return; // the next "ready" tries again
    }
    // Anything cached before the gap may have missed an invalidation: start from an empty local tier.
    const stale = this.local;
    const droppedEntries = stale.stats().size;
    this.local = this.options.createLocal();
    await stale.close().catch(() => undefined);
    this.subscribed = true;
    this.options.onEvent?.({ type: 'subscription-restored', droppedEntries });
  }

  private async onInvalidation(raw: string): Promise<void> {
    let message: InvalidationMessage;
    try {
      message = JSON.parse(raw) as InvalidationMessage;
    } catch {
      return;
    }
    if (typeof message.scopeId !== 'string' || typeof message.origin !== 'string') return;
    // Our own writes already dropped the local entries before publishing.
    if (message.origin !== this.options.instanceId) {
      await this.local.invalidateScope(message.scopeId);
    }
    this.options.onEvent?.({ type: 'invalidation-received', scopeId: message.scopeId, origin: message.origin });
  }

  private genKey(scopeId: string): string {
    return `${this.options.keyPrefix}snip:gen:${scopeId}`;
  }

  private valuePrefix(scopeId: string): string {
    return `${this.options.keyPrefix}snip:v:${scopeId}:`;
  }

  /** The shared tier's value and the generation it was read at; null when Redis could not answer. */
  private async remoteGet(scopeId: string, variant: string): Promise<{ gen: string; value: CachedSnippets | null } | null> {
    try {
      const [gen, raw] = await this.redis.snippetTierGet(this.genKey(scopeId), this.valuePrefix(scopeId), variant);
      return { gen, value: raw === undefined ? null : (JSON.parse(raw) as CachedSnippets) };
    } catch (error) {
      this.options.onEvent?.({ type: 'remote-error', operation: 'get', message: (error as Error).message });
      return null;
    }
  }

  private async remoteSet(scopeId: string, variant: string, gen: string, value: CachedSnippets): Promise<void> {
    try {
      await this.redis.snippetTierSet(
        this.genKey(scopeId),
        gen,
        this.valuePrefix(scopeId),
        variant,
        JSON.stringify(value),
        this.options.ttlMs,
      );
    } catch (error) {
      this.options.onEvent?.({ type: 'remote-error', operation: 'set', message: (error as Error).message });
    }
  }

  /** Shared tier, then `load`; writes the loaded value back under the generation it was read at. */
  private async loadThroughSharedTier(
    scopeId: string,
    variantKey: string,
    load: () => Promise<{ value: CachedSnippets; cacheable: boolean }>,
  ): Promise<{ value: CachedSnippets; cacheable: boolean }> {
    const variant = variantDigest(variantKey);
    const remote = await this.remoteGet(scopeId, variant);
    if (remote?.value) {
      this.fromSharedTier.add(remote.value);
      this.options.onEvent?.({ type: 'remote-hit', scopeId });
      return { value: remote.value, cacheable: true };
    }
    this.options.onEvent?.({ type: 'remote-miss', scopeId });
    const loaded = await load();
    if (loaded.cacheable && remote) await this.remoteSet(scopeId, variant, remote.gen, loaded.value);
    return loaded;
  }

  async getOrLoad(
    scopeId: string,
    variantKey: string,
    load: () => Promise<{ value: CachedSnippets; cacheable: boolean }>,
  ): Promise<{ value: CachedSnippets; fromCache: boolean }> {
    let result: { value: CachedSnippets; fromCache: boolean };
    if (this.subscribed) {
      result = await this.local.getOrLoad(scopeId, variantKey, () => this.loadThroughSharedTier(scopeId, variantKey, load));
      result = { value: result.value, fromCache: result.fromCache || this.fromSharedTier.has(result.value) };
    } else {
      // Invalidations may be missed right now: the local tier could go stale, so only the shared tier serves.
      const loaded = await this.loadThroughSharedTier(scopeId, variantKey, load);
      result = { value: loaded.value, fromCache: this.fromSharedTier.has(loaded.value) };
    }
    if (result.fromCache) this.hits += 1;
    else this.misses += 1;
    return result;
  }

  /** The local tier's hit, as getOrLoad serves it while subscribed; while not, only the shared tier serves. */
  peek(scopeId: string, variantKey: string): CachedSnippets | undefined {
    if (!this.subscribed) return undefined;
    const value = this.local.peek?.(scopeId, variantKey);
    if (value !== undefined) this.hits += 1;
    return value;
  }

  async invalidateScope(scopeId: string): Promise<void> {
    await this.local.invalidateScope(scopeId);
    const message: InvalidationMessage = { scopeId, origin: this.options.instanceId };
    try {
      // Generation outlives every value written under the previous one, so an expired counter restarting at 0
      // can never resurrect an old value.
      const generationTtlMs = Math.max(this.options.ttlMs * 2, 86_400_000);
      await this.redis.snippetTierInvalidate(this.genKey(scopeId), generationTtlMs, this.channel, JSON.stringify(message));
    } catch (error) {
      // Redis is unreachable: other instances' subscriptions are down too, so they bypass their local tier.
      this.options.onEvent?.({ type: 'remote-error', operation: 'invalidate', message: (error as Error).message });
    }
  }

  async eraseScope(scopeId: string): Promise<void> {
    await this.invalidateScope(scopeId);
    // Erased content must leave Redis too, not wait out its TTL behind a bumped generation. Erasure is rare: a
    // SCAN over the scope's value keys is fine. Scope ids are [A-Za-z0-9_:-], so the pattern has no glob syntax.
    try {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.valuePrefix(scopeId)}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await this.redis.unlink(...keys);
      } while (cursor !== '0');
    } catch (error) {
      // Unreachable now: the values still expire with their TTL, and the erasure's second pass (once Context7
      // confirms the deletion) tries again.
      this.options.onEvent?.({ type: 'remote-error', operation: 'erase', message: (error as Error).message });
    }
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, size: this.local.stats().size, ttlMs: this.options.ttlMs };
  }

  /** Closes the local tier; the Redis connections belong to the caller. */
  async close(): Promise<void> {
    this.closed = true;
    this.subscribed = false;
    // A subscriber that is not connected would queue UNSUBSCRIBE for ever: only ask a live one, and only
    // briefly, since a hung one looks live until its heartbeat fails and subscribers have no command timeout.
    if (this.options.subscriber.status === 'ready') {
      await withinBudget('unsubscribe', UNSUBSCRIBE_BUDGET_MS, () => this.options.subscriber.unsubscribe(this.channel)).catch(
        () => undefined,
      );
    }
    await this.local.close();
  }
}

/** Builds the tier and waits until it receives other instances' invalidations. */
export async function createRedisTieredSnippetCache(options: RedisTieredCacheOptions): Promise<RedisTieredSnippetCache> {
  const cache = new RedisTieredSnippetCache(options);
  await cache.ready();
  return cache;
}
