/**
 * Fleet-wide cohort figures in the real Redis: two recorders' treatment and control counters and request latency
 * bins sum per deploy, repeated flushes count nothing twice, and without Redis the instance's own cohorts answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Redis from 'ioredis';
import { memoryMetricsSchema, type CohortFigures } from '../../service/contracts/http';
import { withinCohort } from '../../service/domain/cohort-metrics';
import { packSighting } from '../../service/domain/exposure-clusters';
import { latencyBin } from '../../service/domain/latency-bins';
import { InstanceMetrics } from '../../service/domain/metrics';
import { RedisFleetMetrics } from '../../service/fleet/fleet-metrics';
import { createRedisClient } from '../../service/fleet/redis-connection';
import { connectRedis, deleteKeys, randomPrefix } from './support/redis';

let redis: Redis;
let prefix: string;
const CACHE = { hits: 0, misses: 0, size: 0, ttlMs: 300_000 };
const NOW = new Date('2026-01-05T10:00:30.000Z');

beforeAll(() => {
  redis = connectRedis();
  prefix = randomPrefix('fleetcohorts');
});

afterAll(async () => {
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

function recorder(instanceId: string, deployId: string, startedAt = new Date('2026-01-05T09:00:00.000Z')) {
  const local = new InstanceMetrics({ instanceId, deployId, startedAt });
  return { local, fleet: new RedisFleetMetrics(local, { redis, keyPrefix: prefix, flushIntervalMs: 0, now: () => NOW }) };
}

/** Requests of one cohort as the HTTP edge records them, with a fallback and a failed Context7 call inside each read's cohort. */
async function serve(
  target: RedisFleetMetrics,
  cohort: 'treatment' | 'control',
  requests: { latencyMs: number; status?: number; fallback?: boolean }[],
): Promise<void> {
  for (const { latencyMs, status = 200, fallback = false } of requests) {
    await withinCohort(cohort, async () => {
      target.recordRead({ source: fallback ? 'database' : 'context7', fallback, cache: 'miss' });
      target.recordContext7Call({ operation: 'searchSnippets', ok: !fallback, latencyMs: 30, attempts: 1, ...(fallback ? { errorType: 'network' as const } : {}) });
    });
    target.recordCohortRequest(cohort, { read: true, status, latencyMs });
  }
}

function binTotal(figures: CohortFigures): number {
  return Object.values(figures.latencyBins).reduce((sum, n) => sum + n, 0);
}

describe('fleet cohort figures', () => {
  it('sum both cohorts and their latency bins over the deploy\'s instances, from any instance', async () => {
    const a = recorder('coh-a', 'deploy-coh');
    const b = recorder('coh-b', 'deploy-coh');
    await serve(a.fleet, 'treatment', [{ latencyMs: 10 }, { latencyMs: 40, fallback: true }, { latencyMs: 900, status: 503 }]);
    await serve(a.fleet, 'control', [{ latencyMs: 12 }]);
    await serve(b.fleet, 'treatment', [{ latencyMs: 10 }, { latencyMs: 45, fallback: true }]);
    await serve(b.fleet, 'control', [{ latencyMs: 12 }, { latencyMs: 300, status: 500 }]);
    await b.fleet.flush();

    const view = memoryMetricsSchema.parse(await a.fleet.snapshot(CACHE));
    expect(view.scope).toBe('fleet');
    const { treatment, control } = view.cohorts!;
    expect(treatment.totals).toEqual({
      requests: 5,
      reads: 5,
      fallbacks: 2,
      serverErrors: 1,
      latencyMsSum: 10 + 40 + 900 + 10 + 45,
      latencyCount: 5,
      context7Requests: 5,
      context7Errors: 2,
    });
    expect(control.totals).toMatchObject({ requests: 3, reads: 3, fallbacks: 0, serverErrors: 1, latencyCount: 3, context7Requests: 3 });
    // Bins are summed bin by bin: both instances' 10 ms requests share one bin.
    expect(treatment.latencyBins[String(latencyBin(10))]).toBe(2);
    expect(control.latencyBins[String(latencyBin(12))]).toBe(2);
    expect(binTotal(treatment)).toBe(5);
    expect(binTotal(control)).toBe(3);
    expect(treatment.fallbackRate).toBeCloseTo(2 / 5);
    expect(control.serverErrorRate).toBeCloseTo(1 / 3);
    expect(treatment.p95LatencyMs).toBeGreaterThanOrEqual(900);
    expect(treatment.p95LatencyMs).toBeLessThanOrEqual(945);
    // The fleet's cohorts are the sum of the instances' own.
    const own = [a.local.cohorts.figures(), b.local.cohorts.figures()];
    expect(treatment.totals.requests).toBe(own[0]!.treatment.totals.requests + own[1]!.treatment.totals.requests);

    expect((await b.fleet.snapshot(CACHE)).cohorts).toEqual(view.cohorts);
    await Promise.all([a.fleet.close(), b.fleet.close()]);
  });

  it('count each request once however often it flushes, stay monotonic across a restart, and keep deploys apart', async () => {
    const a = recorder('coh-r', 'deploy-coh-2');
    await serve(a.fleet, 'treatment', [{ latencyMs: 20 }, { latencyMs: 20 }]);
    await Promise.all([a.fleet.flush(), a.fleet.flush(), a.fleet.flush()]);
    expect((await a.fleet.snapshot(CACHE)).cohorts!.treatment.totals.requests).toBe(2);
    expect((await a.fleet.snapshot(CACHE)).cohorts!.treatment.latencyBins[String(latencyBin(20))]).toBe(2);
    await a.fleet.close();

    const restarted = recorder('coh-r', 'deploy-coh-2', new Date('2026-01-05T09:30:00.000Z'));
    await serve(restarted.fleet, 'treatment', [{ latencyMs: 20 }]);
    const after = await restarted.fleet.snapshot(CACHE);
    expect(after.cohorts!.treatment.totals.requests).toBe(3);
    expect(after.cohorts!.treatment.latencyBins[String(latencyBin(20))]).toBe(3);

    const other = recorder('coh-other', 'deploy-coh-3');
    await serve(other.fleet, 'control', [{ latencyMs: 5 }]);
    const otherView = await other.fleet.snapshot(CACHE);
    expect(otherView.cohorts!.treatment.totals.requests).toBe(0);
    expect(otherView.cohorts!.control.totals.requests).toBe(1);
    await Promise.all([restarted.fleet.close(), other.fleet.close()]);
  });

  it('sum the per-cluster tables over instances, slot by slot, counting nothing twice across flushes', async () => {
    const a = recorder('cl-a', 'deploy-cl');
    const b = recorder('cl-b', 'deploy-cl');
    a.fleet.recordCohortRequest('treatment', { read: true, status: 200, latencyMs: 20, cluster: 7, scopeHash: 1, snippets: 2 });
    a.fleet.recordCohortRequest('off', { read: false, status: 200, latencyMs: 20, cluster: 500, scopeHash: 2 });
    await Promise.all([a.fleet.flush(), a.fleet.flush()]);
    b.fleet.recordCohortRequest('treatment', { read: true, status: 503, latencyMs: 40, cluster: 7, scopeHash: 3, snippets: 0 });
    b.fleet.recordCohortRequest('control', { read: true, status: 200, latencyMs: 10, cluster: 900, scopeHash: 4, snippets: 1 });
    await b.fleet.flush();
    const view = memoryMetricsSchema.parse(await a.fleet.snapshot(CACHE));
    const clusters = view.clusters!;
    expect(clusters.treatment).toMatchObject({ index: [7], requests: [2], reads: [2], serverErrors: [1], latencyMsSum: [60], snippets: [2], readsWithSnippets: [1] });
    expect(clusters.control).toMatchObject({ index: [900], requests: [1] });
    expect(clusters.off).toMatchObject({ index: [500], requests: [1], reads: [0] });
    expect(clusters.newScopes).toEqual({ treatment: 2, control: 1, off: 1 });
    // The cohort totals (flag on) leave the `off` requests out, as before.
    expect(view.cohorts!.treatment.totals.requests + view.cohorts!.control.totals.requests).toBe(3);
    await Promise.all([a.fleet.close(), b.fleet.close()]);
  });

  it('count a scope new once fleet-wide, not once per instance that saw it, across failed and repeated flushes', async () => {
    // Issue 23: behind a load balancer a scope reaches both instances; summed, its first sightings counted twice and
    // the sample-ratio check took 17 of 142 "new scopes" for a mismatch at 5 %.
    const a = recorder('ns-a', 'deploy-ns');
    const b = recorder('ns-b', 'deploy-ns');
    const seenBy = (target: typeof a, slot: 'treatment' | 'control', hashes: number[]) => {
      for (const scopeHash of hashes) target.fleet.recordCohortRequest(slot, { read: true, status: 200, latencyMs: 5, cluster: slot === 'treatment' ? 7 : 900, scopeHash });
    };
    seenBy(a, 'treatment', [11, 12]);
    seenBy(a, 'control', [21, 22, 23]);
    await a.fleet.flush();
    seenBy(b, 'treatment', [11, 12, 13]); // 11 and 12: a saw them first
    seenBy(b, 'control', [21, 24]);
    await b.fleet.flush();
    await b.fleet.flush(); // a repeated flush tells nothing new
    const view = memoryMetricsSchema.parse(await a.fleet.snapshot(CACHE));
    expect(view.clusters!.newScopes).toEqual({ treatment: 3, control: 4, off: 0 });
    // Each instance alone still counts what it saw first (its own view, without Redis).
    expect(b.local.cohorts.clusters.tables().newScopes).toMatchObject({ treatment: 3, control: 2 });

    // A flush that fails keeps its sightings for the next one (here: the same counters once Redis answers again).
    const c = recorder('ns-c', 'deploy-ns');
    const dead = createRedisClient('redis://127.0.0.1:1', { name: 'dead' });
    const cut = new RedisFleetMetrics(c.local, { redis: dead, keyPrefix: prefix, flushIntervalMs: 0, timeoutMs: 200 });
    seenBy(c, 'treatment', [13, 14]); // 13: b saw it first
    await expect(cut.flush()).rejects.toThrow();
    await c.fleet.flush();
    // A batch told twice (a write that landed but whose answer was lost, then retried) counts once.
    c.local.cohorts.clusters.returnFirstSightings([packSighting(0, 14)]);
    await c.fleet.flush();
    const after = memoryMetricsSchema.parse(await a.fleet.snapshot(CACHE));
    expect(after.clusters!.newScopes).toEqual({ treatment: 4, control: 4, off: 0 });
    dead.disconnect();
    await Promise.all([a.fleet.close(), b.fleet.close(), c.fleet.close()]);
  });

  it('answer with this instance\'s own cohorts when Redis is unreachable', async () => {
    const local = new InstanceMetrics({ instanceId: 'coh-lonely', deployId: 'deploy-coh-4', startedAt: NOW });
    const dead = createRedisClient('redis://127.0.0.1:1', { name: 'dead' });
    const fleet = new RedisFleetMetrics(local, { redis: dead, keyPrefix: prefix, flushIntervalMs: 0 });
    await serve(fleet, 'control', [{ latencyMs: 7 }]);
    const view = await fleet.snapshot(CACHE);
    expect(view.scope).toBe('instance');
    expect(view.cohorts!.control.totals.requests).toBe(1);
    await fleet.close();
    dead.disconnect();
  });
});
