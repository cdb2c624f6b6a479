/** Fleet-wide metrics in the real Redis: sums over instances, per deploy, idempotent flushes, and the fallback. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Redis from 'ioredis';
import { memoryMetricsSchema } from '../../service/contracts/http';
import { countedApartAsProbe, InstanceMetrics } from '../../service/domain/metrics';
import { RedisFleetMetrics, latencyBin, latencyBinUpperMs, percentileFromBins } from '../../service/fleet/fleet-metrics';
import { closeRedis, connectRedis as connectServiceRedis, createRedisClient } from '../../service/fleet/redis-connection';
import { startStallProxy } from '../support/stall-proxy';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';

let redis: Redis;
let prefix: string;
const CACHE = { hits: 0, misses: 0, size: 3, ttlMs: 300_000 };
const NOW = new Date('2026-01-05T10:00:30.000Z');

beforeAll(() => {
  redis = connectRedis();
  prefix = randomPrefix('fleetmetrics');
});

afterAll(async () => {
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

function instance(instanceId: string, deployId = 'deploy-1', startedAt = new Date('2026-01-05T09:00:00.000Z')) {
  const local = new InstanceMetrics({ instanceId, deployId, startedAt });
  const fleet = new RedisFleetMetrics(local, { redis, keyPrefix: prefix, flushIntervalMs: 0, now: () => NOW });
  return { local, fleet };
}

function serve(target: RedisFleetMetrics, reads: number, fallbacks: number, calls: { ms: number; ok: boolean }[]) {
  for (let i = 0; i < reads; i += 1) {
    target.recordRead({ source: i < fallbacks ? 'database' : 'context7', fallback: i < fallbacks, cache: i % 2 ? 'hit' : 'miss' });
  }
  for (const call of calls) {
    target.recordContext7Call({
      operation: 'searchSnippets',
      ok: call.ok,
      latencyMs: call.ms,
      attempts: 1,
      errorType: call.ok ? undefined : 'timeout',
    });
  }
  target.recordContext7Call({ operation: 'health', ok: true, latencyMs: 5, attempts: 1 });
}

describe('RedisFleetMetrics', () => {
  it('answers for the whole deploy from any instance: totals are the sums, rates derive from them', async () => {
    const a = instance('inst-a');
    const b = instance('inst-b', 'deploy-1', new Date('2026-01-05T08:30:00.000Z'));
    serve(a.fleet, 10, 2, [{ ms: 40, ok: true }, { ms: 60, ok: false }]);
    serve(b.fleet, 30, 1, [{ ms: 100, ok: true }, { ms: 20, ok: true }, { ms: 80, ok: false }]);
    await b.fleet.flush(5);

    const fromA = await a.fleet.snapshot(CACHE);
    expect(memoryMetricsSchema.parse(fromA)).toBeTruthy();
    expect(fromA.scope).toBe('fleet');
    expect(fromA.instancesSeen).toEqual(['inst-a', 'inst-b']);
    expect(fromA.instanceId).toBe('inst-a');
    expect(fromA.startedAt).toBe('2026-01-05T08:30:00.000Z');
    const sum = (field: keyof typeof a.local.totals) => a.local.totals[field] + b.local.totals[field];
    for (const field of Object.keys(a.local.totals) as (keyof typeof a.local.totals)[]) {
      expect(fromA.totals[field]).toBe(sum(field));
    }
    expect(fromA.totals.requests).toBe(40);
    expect(fromA.totals.context7Requests).toBe(5); // health probes excluded
    expect(fromA.errorRate).toBeCloseTo(2 / 5);
    expect(fromA.fallbackRate).toBeCloseTo(3 / 40);
    expect(fromA.avgLatency).toBe(60);
    expect(fromA.errorsByType.timeout).toBe(2);
    expect(fromA.cache.size).toBe(3 + 5);
    // p95 of [20,40,60,80,100] is 100, read from a 5%-wide bin.
    expect(fromA.p95Latency).toBeGreaterThanOrEqual(100);
    expect(fromA.p95Latency).toBeLessThanOrEqual(105.1);

    const fromB = await b.fleet.snapshot(CACHE);
    expect(fromB.totals).toEqual(fromA.totals);
    await Promise.all([a.fleet.close(), b.fleet.close()]);
  });

  it('sums probe requests across the fleet and keeps what they cause out of every other counter and the p95', async () => {
    const a = instance('inst-probe-a', 'deploy-probe');
    const b = instance('inst-probe-b', 'deploy-probe');
    serve(a.fleet, 4, 0, [{ ms: 40, ok: true }]);
    for (const target of [a.fleet, b.fleet]) {
      target.recordProbeRequest();
      await countedApartAsProbe(async () => {
        target.recordRead({ source: 'database', fallback: true, cache: 'miss' });
        target.recordStoreCall({ ok: true });
        target.recordContext7Call({ operation: 'upsertPatterns', ok: false, latencyMs: 5_000, attempts: 1, errorType: 'timeout' });
      });
    }
    await b.fleet.flush(5);
    const fleet = await a.fleet.snapshot(CACHE);
    expect(fleet.totals).toMatchObject({ probeRequests: 2, requests: 4, fallbacks: 0, context7Requests: 1, context7Errors: 0, storeRequests: 0 });
    expect(fleet.p95Latency).toBeLessThan(100);
    await Promise.all([a.fleet.close(), b.fleet.close()]);
  });

  it('counts each event once however often it flushes, and stays monotonic across a process restart', async () => {
    const a = instance('inst-r', 'deploy-2');
    serve(a.fleet, 4, 0, [{ ms: 10, ok: true }]);
    await Promise.all([a.fleet.flush(), a.fleet.flush(), a.fleet.flush()]);
    serve(a.fleet, 2, 0, []);
    expect((await a.fleet.snapshot(CACHE)).totals.requests).toBe(6);
    expect((await a.fleet.snapshot(CACHE)).totals.requests).toBe(6);
    await a.fleet.close();
    // Same instance id, new process: its fresh counters add to, never replace, what the old process reported.
    const restarted = instance('inst-r', 'deploy-2', new Date('2026-01-05T09:30:00.000Z'));
    serve(restarted.fleet, 1, 0, []);
    const after = await restarted.fleet.snapshot(CACHE);
    expect(after.totals.requests).toBe(7);
    expect(after.instancesSeen).toEqual(['inst-r']);
    await restarted.fleet.close();
  });

  it('keeps deploys apart, so a canary judges only the new code', async () => {
    const old = instance('old-1', 'deploy-old');
    const fresh = instance('new-1', 'deploy-new');
    serve(old.fleet, 50, 25, []);
    serve(fresh.fleet, 10, 0, []);
    await old.fleet.flush();
    const view = await fresh.fleet.snapshot(CACHE);
    expect(view.totals.requests).toBe(10);
    expect(view.fallbackRate).toBe(0);
    expect(view.instancesSeen).toEqual(['new-1']);
    await Promise.all([old.fleet.close(), fresh.fleet.close()]);
  });

  it('falls back to this instance\'s own figures, saying so, when Redis is unreachable', async () => {
    const local = new InstanceMetrics({ instanceId: 'lonely', deployId: 'deploy-3', startedAt: NOW });
    // Nothing listens on port 1: every command fails at once.
    const dead = createRedisClient('redis://127.0.0.1:1', { name: 'dead' });
    const fleet = new RedisFleetMetrics(local, { redis: dead, keyPrefix: prefix, flushIntervalMs: 0 });
    fleet.recordRead({ source: 'cache', fallback: false, cache: 'hit' });
    const view = await fleet.snapshot(CACHE);
    expect(view.scope).toBe('instance');
    expect(view.totals.requests).toBe(1);
    expect(view.instancesSeen).toBeUndefined();
    await fleet.close();
    dead.disconnect();
  });
});

describe('RedisFleetMetrics with a Redis that hangs', () => {
  it('never stacks flushes, answers each snapshot within its budget from its own counts, and returns to the fleet view', async () => {
    const proxy = await startStallProxy({ host: new URL(TEST_REDIS_URL).hostname, port: Number(new URL(TEST_REDIS_URL).port || 6379) });
    const hung = await connectServiceRedis(proxy.url(TEST_REDIS_URL), { name: 'hang', commandTimeoutMs: 300 });
    const local = new InstanceMetrics({ instanceId: 'hanging', deployId: 'deploy-hang', startedAt: NOW });
    const fleet = new RedisFleetMetrics(local, { redis: hung, keyPrefix: prefix, flushIntervalMs: 0, timeoutMs: 100 });
    try {
      serve(fleet, 3, 0, []);
      expect((await fleet.snapshot(CACHE)).scope).toBe('fleet');
      proxy.pause();

      // Twenty callers while the first write hangs share at most two writes: chained, they took 20 x 300 ms.
      const started = performance.now();
      await Promise.allSettled(Array.from({ length: 20 }, () => fleet.flush()));
      expect(performance.now() - started).toBeLessThan(1_500);

      const times: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        serve(fleet, 1, 0, []);
        const before = performance.now();
        const view = await fleet.snapshot(CACHE);
        times.push(Math.round(performance.now() - before));
        expect(view.scope).toBe('instance');
        expect(view.totals.requests).toBe(4 + i); // the caller's own counts, up to the read just served
      }
      expect(Math.max(...times), `snapshot times ${times.join(', ')} ms`).toBeLessThan(1_000);
      expect(times[9]!, `snapshot times ${times.join(', ')} ms`).toBeLessThan(times[0]! + 500);

      proxy.resume();
      const deadline = Date.now() + 10_000;
      let view = await fleet.snapshot(CACHE);
      while (view.scope !== 'fleet' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        view = await fleet.snapshot(CACHE);
      }
      expect(view.scope).toBe('fleet');
      expect(view.totals.requests).toBe(13);
    } finally {
      await fleet.close();
      await closeRedis(hung);
      await proxy.close();
    }
  });
});

describe('latency bins', () => {
  it('put every latency in a bin whose upper edge is within 5% above it', () => {
    for (const ms of [0, 0.4, 1, 3, 17, 99.9, 250, 1_000, 29_999]) {
      const upper = latencyBinUpperMs(latencyBin(ms));
      expect(upper).toBeGreaterThanOrEqual(ms);
      expect(upper).toBeLessThanOrEqual(ms * 1.05 + 1.05);
    }
  });

  it('reads the nearest-rank percentile', () => {
    const bins = new Map<number, number>();
    for (const ms of [...Array(95).fill(10), ...Array(5).fill(900)]) bins.set(latencyBin(ms), (bins.get(latencyBin(ms)) ?? 0) + 1);
    expect(percentileFromBins(bins, 95)).toBeLessThan(11);
    expect(percentileFromBins(bins, 96)).toBeGreaterThan(899);
    expect(percentileFromBins(new Map(), 95)).toBe(0);
  });
});
