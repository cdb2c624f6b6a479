/**
 * Two memory service instances in one test, on two loopback ports, sharing the real PostgreSQL (a database
 * created for this file) and Redis (a random key prefix), with the real Context7 emulator behind both.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type Redis from 'ioredis';
import { loadConfig } from '../../service/config';
import { CALLER_AUTH, TEST_CALLER_KEYS } from '../service/support/harness';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { createContext7Client } from '../../service/context7/client';
import { Context7Error } from '../../service/context7/port';
import { startContext7Emulator, type Context7Emulator } from '../../service/context7/emulator';
import { memoryMetricsSchema } from '../../service/contracts/http';
import type { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { BACKFILL_JOB_NAME } from '../../service/domain/backfill';
import { cohortOf } from '../../service/domain/exposure';
import { scopeKeyOf, sha256Hex, patternId } from '../../service/domain/patterns';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createDataPlane } from '../../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { RedisFleetMetrics } from '../../service/fleet/fleet-metrics';
import { createServiceLogger } from '../../service/logging';
import { createTestDatabase, type TestDatabase } from './support/postgres';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';

const API_KEY = 'c7-fleet-test-key-0123456789';
const ADMIN_TOKEN = 'fleet-admin-token-0123456789';

let db: TestDatabase;
let emulator: Context7Emulator;
let admin: Redis;
let filePrefix: string;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-'));
let testNumber = 0;

interface Instance {
  id: string;
  service: MemoryService;
  url: string;
  /** Pattern ids of every upsert call this instance made to Context7 (re-sends would repeat ids). */
  sentPatternIds: string[];
  /** Pattern ids of every upsert call that failed on this side (timed out, refused, breaker open): the outbox sends them again. */
  failedPatternIds: string[];
  /** upsert calls that reached the network (the breaker refuses some without sending) */
  upsertCalls: number;
  /** upsert calls to Context7 started and not yet answered */
  upsertsInFlight: number;
  call(method: string, route: string, body?: unknown, auth?: boolean): Promise<{ status: number; body: any }>;
}
let running: Instance[] = [];

/** redisReadyWaitMs: how long start() waits for Redis before going on degraded (the service's own default is 5 s). */
async function startInstance(
  id: string,
  fleet: { deployId: string; prefix: string },
  extraEnv: Record<string, string> = {},
  { redisReadyWaitMs }: { redisReadyWaitMs?: number } = {},
): Promise<Instance> {
  const env = {
    ENABLE_CONTEXT7_MEMORY: 'true',
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: emulator.url,
    ADMIN_TOKEN,
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    RENDER_INSTANCE_ID: id,
    DEPLOY_ID: fleet.deployId,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    REDIS_KEY_PREFIX: fleet.prefix,
    FLEET_METRICS_FLUSH_MS: '100',
    BACKFILL_WATCHDOG_MS: '3600000',
    RATE_LIMIT_MAX: '0',
    MEMORY_API_KEYS: TEST_CALLER_KEYS,
    ...extraEnv,
  };
  const config = loadConfig(env);
  const logger = createServiceLogger({ level: 'silent', secrets: [] });
  const created = createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger });
  const dataPlane = redisReadyWaitMs === undefined ? created : { ...created, ready: () => created.ready(redisReadyWaitMs) };
  const instance = { id, sentPatternIds: [] as string[], failedPatternIds: [] as string[], upsertCalls: 0, upsertsInFlight: 0 } as Instance;
  instance.service = createMemoryService(config, {
    dataPlane,
    logger,
    enableSchedule: false,
    backfillOptions: { batchSize: 10, concurrency: 1, progressLogEveryMs: 60_000 },
    createContext7: (observer) => {
      const client = createContext7Client({ baseUrl: emulator.url, apiKey: API_KEY, timeoutMs: 2_000, maxRetries: 0, breakerHalfOpenAfterMs: 200 }, observer);
      return {
        health: () => client.health(),
        searchSnippets: (request) => client.searchSnippets(request),
        deletePatterns: (request) => client.deletePatterns(request),
        circuitState: () => client.circuitState(),
        close: () => client.close(),
        upsertPatterns: async (request) => {
          instance.upsertCalls += 1;
          instance.sentPatternIds.push(...request.patterns.map((p) => p.id));
          instance.upsertsInFlight += 1;
          try {
            return await client.upsertPatterns(request);
          } catch (error) {
            instance.failedPatternIds.push(...request.patterns.map((p) => p.id));
            if (error instanceof Context7Error && error.details.circuitOpen) instance.upsertCalls -= 1;
            throw error;
          } finally {
            instance.upsertsInFlight -= 1;
          }
        },
      };
    },
  });
  const { url } = await instance.service.start(0, '127.0.0.1');
  instance.url = url;
  instance.call = async (method, route, body, auth) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (auth) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
    else if (route.startsWith('/api/memory/')) headers.authorization = CALLER_AUTH.authorization;
    const response = await fetch(`${url}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: await response.json() };
  };
  running.push(instance);
  return instance;
}

/** A fresh fleet (deploy id and key prefix) per test, on an empty database. */
async function startFleet(extraEnv: Record<string, string> = {}): Promise<[Instance, Instance]> {
  testNumber += 1;
  const fleet = { deployId: `deploy-${testNumber}`, prefix: `${filePrefix}${testNumber}:` };
  const a = await startInstance(`inst-a-${testNumber}`, fleet, extraEnv);
  await (a.service.store as PostgresMemoryStore).pool.query(
    'TRUNCATE pattern_history, outbox, patterns, jobs, job_run_slots, fleet_leases',
  );
  const b = await startInstance(`inst-b-${testNumber}`, fleet, extraEnv);
  return [a, b];
}

async function until<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last value ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const scopeOf = (n: number) => generateScopeIdSync({ locationId: 'fleet', agentId: `agent-${n}`, promptText: `prompt ${n}` });

beforeAll(async () => {
  db = await createTestDatabase('fleet');
  emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 11 });
  admin = connectRedis();
  filePrefix = randomPrefix('fleet');
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((instance) => instance.service.stop()));
  emulator.resetFaults();
});

afterAll(async () => {
  await emulator?.close();
  await deleteKeys(admin, filePrefix);
  admin.disconnect();
  await db?.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('two instances sharing PostgreSQL and Redis', () => {
  it('fleet-wide metrics equal the sum of what each instance served, from either instance', async () => {
    const [a, b] = await startFleet();
    await a.call('POST', '/api/memory/patterns', { scopeId: scopeOf(1), patterns: ['Greet by name'] });
    const reads = async (instance: Instance, count: number) => {
      for (let i = 0; i < count; i += 1) {
        const { status } = await instance.call('POST', '/api/memory/snippets', { scopeId: scopeOf(i % 3), query: 'greet' });
        expect(status).toBe(200);
      }
    };
    await reads(a, 7);
    await reads(b, 12);
    const own = (instance: Instance) => (instance.service.metrics as RedisFleetMetrics).instance.totals;
    expect(own(a).requests).toBe(7);
    expect(own(b).requests).toBe(12);

    for (const viewer of [a, b]) {
      const { body } = await until(
        `fleet metrics on ${viewer.id}`,
        () => viewer.call('GET', '/api/metrics/memory'),
        (r) => r.body.totals?.requests === 19,
      );
      const metrics = memoryMetricsSchema.parse(body);
      expect(metrics.scope).toBe('fleet');
      expect(metrics.instancesSeen).toEqual([a.id, b.id].sort());
      expect(metrics.instanceId).toBe(viewer.id);
      for (const field of Object.keys(metrics.totals) as (keyof typeof metrics.totals)[]) {
        expect(metrics.totals[field]).toBeCloseTo(own(a)[field] + own(b)[field], 6);
      }
      expect(metrics.cache.hits + metrics.cache.misses).toBe(19);
      expect(metrics.cacheHitRate).toBeCloseTo(metrics.totals.cacheHits / 19, 10);
    }
    // B served reads of scopes A had cached: the shared tier turned some of B's first reads into hits.
    expect(own(b).cacheHits).toBeGreaterThanOrEqual(10);
    // Prometheus scrapes each instance and sums itself: /metrics carries the instance's own counters.
    const prometheusA = await (await fetch(`${a.url}/metrics`)).text();
    expect(prometheusA).toMatch(/^memory_requests_total 7$/m);
  });

  it('fleet-wide cohort figures sum what each instance served in each cohort (CONTEXT7_EXPOSURE_PERCENT=50)', async () => {
    const [a, b] = await startFleet({ CONTEXT7_EXPOSURE_PERCENT: '50' });
    const scopesIn = (cohort: 'treatment' | 'control') => Array.from({ length: 40 }, (_, n) => scopeOf(1_000 + n)).filter((id) => cohortOf(id, 50) === cohort).slice(0, 2);
    const [treated, untreated] = [scopesIn('treatment'), scopesIn('control')];
    for (const [instance, scopeIds, count] of [[a, treated, 5], [b, treated, 3], [b, untreated, 4]] as const) {
      for (let i = 0; i < count; i += 1) {
        expect((await instance.call('POST', '/api/memory/snippets', { scopeId: scopeIds[i % 2], query: 'greet' })).status).toBe(200);
      }
    }
    const { body } = await until(
      'fleet cohort figures on A',
      () => a.call('GET', '/api/metrics/memory'),
      (r) => r.body.cohorts?.treatment.totals.requests === 8 && r.body.cohorts?.control.totals.requests === 4,
    );
    const metrics = memoryMetricsSchema.parse(body);
    expect(metrics.scope).toBe('fleet');
    expect(metrics.cohorts!.treatment.totals).toMatchObject({ reads: 8, latencyCount: 8, serverErrors: 0 });
    expect(Object.values(metrics.cohorts!.treatment.latencyBins).reduce((sum, n) => sum + n, 0)).toBe(8);
    expect(metrics.cohorts!.control.totals).toMatchObject({ reads: 4, fallbacks: 0 });
    // Prometheus keeps each instance's own: A served the treatment only.
    const prometheusA = await (await fetch(`${a.url}/metrics`)).text();
    expect(prometheusA).toMatch(/^memory_cohort_requests_total\{cohort="treatment"\} 5$/m);
    expect(prometheusA).toMatch(/^memory_cohort_requests_total\{cohort="control"\} 0$/m);
  });

  it('a learning write on A invalidates the scope in B\'s cache at once', async () => {
    const [a, b] = await startFleet();
    const scopeId = scopeOf(42);
    await a.call('POST', '/api/memory/patterns', { scopeId, patterns: ['Offer the Tuesday slot'] });
    const first = await b.call('POST', '/api/memory/snippets', { scopeId });
    expect(first.body.source).not.toBe('cache');
    const cached = await b.call('POST', '/api/memory/snippets', { scopeId });
    expect(cached.body.source).toBe('cache');
    expect(cached.body.snippets.map((s: { content: string }) => s.content)).toEqual(['Offer the Tuesday slot']);

    const write = await a.call('POST', '/api/memory/patterns', { scopeId, patterns: ['Confirm the address first'] });
    expect(write.status).toBe(200);
    const after = await b.call('POST', '/api/memory/snippets', { scopeId });
    expect(after.body.source).not.toBe('cache');
    expect(after.body.snippets.map((s: { content: string }) => s.content).sort()).toEqual([
      'Confirm the address first',
      'Offer the Tuesday slot',
    ]);
    // And A, which cached nothing for the scope after its write, sees the same fresh answer.
    const onA = await a.call('POST', '/api/memory/snippets', { scopeId });
    expect(onA.body.snippets).toHaveLength(2);
  });

  it('the scheduled sync fires on exactly one instance per slot', async () => {
    const [a, b] = await startFleet();
    const scopeId = scopeOf(7);
    await a.service.store.savePatterns(
      scopeKeyOf(scopeId),
      Array.from({ length: 25 }, (_, i) => {
        const content = `weekly ${i}`;
        const contentHash = sha256Hex(content);
        return { id: patternId(scopeId, contentHash), content, contentHash, metadata: null, expiresAt: null };
      }),
      new Date(),
    );
    const monday = new Date('2026-11-30T02:05:00.000Z');
    // Both crons fire, a few milliseconds apart, for the same Monday 02:05.
    const fired = await Promise.all([a.service.runScheduledSync(monday), b.service.runScheduledSync(new Date(monday.getTime() + 40))]);
    expect(fired.filter(Boolean)).toHaveLength(1);
    const winner = fired[0] ? a : b;
    const loser = fired[0] ? b : a;
    await winner.service.backfill!.current();
    expect(loser.service.backfill!.current()).toBeNull();
    const state = await loser.service.store.loadJobState(BACKFILL_JOB_NAME);
    expect(state).toMatchObject({ status: 'completed', synced: 25, errors: 0, owner: winner.id });
    expect(winner.sentPatternIds).toHaveLength(25);
    expect(loser.sentPatternIds).toHaveLength(0);
    // A late timer for the same slot never runs it again; the next Monday is a new slot.
    expect(await loser.service.runScheduledSync(monday)).toBe(false);
    expect(await loser.service.runScheduledSync(new Date('2026-12-07T02:05:00.000Z'))).toBe(true);
    await loser.service.backfill!.current();
  });

  it('the backfill resumes from its checkpoint on the other instance after one is stopped mid-run', async () => {
    const [a, b] = await startFleet({ BACKFILL_WATCHDOG_MS: '100' });
    const scopeIds = [scopeOf(100), scopeOf(101)];
    for (const scopeId of scopeIds) {
      await a.service.store.savePatterns(
        scopeKeyOf(scopeId),
        Array.from({ length: 100 }, (_, i) => {
          const content = `resumable ${scopeId.slice(-4)} ${i}`;
          const contentHash = sha256Hex(content);
          return { id: patternId(scopeId, contentHash), content, contentHash, metadata: null, expiresAt: null };
        }),
        new Date(),
      );
    }
    // 100 ms per batch of 10: the 20 batches take 2 s, so A is stopped well before it could finish alone.
    emulator.setFaults({ latencyMs: 100 });
    const started = await a.call('POST', '/api/admin/sync-context7', {}, true);
    expect(started.status).toBe(202);
    // Any instance reports the job; a second start on the other instance is refused.
    await until('progress on B', () => b.call('GET', '/api/admin/sync-context7/status', undefined, true), (r) => r.body.job?.synced >= 20);
    const refused = await b.call('POST', '/api/admin/sync-context7', {}, true);
    expect(refused.status).toBe(409);
    expect(refused.body.job.owner).toBe(a.id);

    // What SIGTERM does on Render: a graceful stop, which persists "interrupted" and the cursor.
    await a.service.stop();
    running = running.filter((i) => i !== a);
    const interrupted = await b.service.store.loadJobState(BACKFILL_JOB_NAME);
    expect(interrupted?.status === 'interrupted' || interrupted?.owner === b.id).toBe(true);
    const sentByA = new Set(a.sentPatternIds);
    expect(sentByA.size).toBeGreaterThanOrEqual(20);
    expect(sentByA.size).toBeLessThan(200);

    const done = await until(
      'completion on B',
      () => b.call('GET', '/api/admin/sync-context7/status', undefined, true),
      (r) => r.body.job?.status === 'completed',
    );
    expect(done.body.job).toMatchObject({ owner: b.id, synced: 200, errors: 0 });
    expect(done.body.progressPercent).toBe(100);
    // B continued after A's checkpoint: nothing A sent was sent again, and together they sent everything once.
    expect(b.sentPatternIds.filter((id) => sentByA.has(id))).toEqual([]);
    expect(a.sentPatternIds.length + b.sentPatternIds.length).toBe(200);
    for (const scopeId of scopeIds) expect(emulator.patterns(scopeId)).toHaveLength(100);
  });

  it('a run whose owner died without a word (stale heartbeat) is taken over from its cursor', async () => {
    const [a, b] = await startFleet({ BACKFILL_WATCHDOG_MS: '100' });
    const scopeId = scopeOf(300);
    const { saved } = await a.service.store.savePatterns(
      scopeKeyOf(scopeId),
      Array.from({ length: 40 }, (_, i) => {
        const content = `abandoned ${i}`;
        const contentHash = sha256Hex(content);
        return { id: patternId(scopeId, contentHash), content, contentHash, metadata: null, expiresAt: null };
      }),
      new Date(),
    );
    const ordered = saved.map((p) => p.id).sort();
    const cursor = ordered[14]!;
    // A process that was SIGKILLed: still "running", its last heartbeat two minutes old, 15 patterns done.
    const twoMinutesAgo = new Date(Date.now() - 120_000).toISOString();
    await a.service.store.saveJobState({
      name: BACKFILL_JOB_NAME,
      status: 'running',
      startedAt: twoMinutesAgo,
      finishedAt: null,
      cursor,
      total: 40,
      synced: 15,
      errors: 0,
      owner: 'killed-instance',
      heartbeatAt: twoMinutesAgo,
    });
    const done = await until(
      'takeover',
      () => b.call('GET', '/api/admin/sync-context7/status', undefined, true),
      (r) => r.body.job?.status === 'completed',
    );
    expect([a.id, b.id]).toContain(done.body.job.owner);
    expect(done.body.job).toMatchObject({ synced: 40, errors: 0, startedAt: twoMinutesAgo });
    const sent = [...a.sentPatternIds, ...b.sentPatternIds].sort();
    expect(sent).toEqual(ordered.slice(15));
  });

  it('learning writes sent by the write path are never sent again by a drainer running at the same time', async () => {
    const [a, b] = await startFleet({ OUTBOX_DRAIN_INTERVAL_MS: '10' });
    emulator.setFaults({ latencyMs: 20 });
    const scopeId = scopeOf(400);
    await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        (i % 2 ? b : a).call('POST', '/api/memory/patterns', { scopeId, patterns: [`concurrent write ${i}`] }),
      ),
    );
    await until('outbox drained', () => a.service.store.outboxDepth(), (depth) => depth === 0);
    const sent = [...a.sentPatternIds, ...b.sentPatternIds];
    expect(sent).toHaveLength(24);
    expect(new Set(sent).size).toBe(24);
  });

  // Its own waits (15 s for calls in flight, 20 s to drain) and 30 writes at load 15 outlast vitest's 30 s default.
  it('the outbox drains exactly once across instances after a Context7 outage', async () => {
    const [a, b] = await startFleet({ OUTBOX_DRAIN_INTERVAL_MS: '50' });
    emulator.setFaults({ outage: true });
    const scopes = [scopeOf(200), scopeOf(201), scopeOf(202)];
    let accepted = 0;
    for (let i = 0; i < 30; i += 1) {
      const instance = i % 2 ? b : a;
      const { status } = await instance.call('POST', '/api/memory/patterns', {
        scopeId: scopes[i % 3],
        patterns: [`outage pattern ${i}`, `outage pattern ${i} bis`],
      });
      expect(status).toBe(200);
      accepted += 2;
    }
    expect(await a.service.store.outboxDepth()).toBe(accepted);
    // The outage ends between two attempts, never during one: a call sent in the outage and answered after it would
    // deliver patterns counted as sent during it (at load 15 two were: 58 of 60). Nothing is awaited from this check
    // to resetFaults below, so no drain can start in between.
    const quietBy = Date.now() + 15_000;
    while (a.upsertsInFlight + b.upsertsInFlight > 0) {
      if (Date.now() > quietBy) throw new Error('an upsert call to Context7 stayed in flight for 15 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const sentDuringOutage = a.sentPatternIds.length + b.sentPatternIds.length;
    a.sentPatternIds.length = 0;
    b.sentPatternIds.length = 0;
    a.failedPatternIds.length = 0;
    b.failedPatternIds.length = 0;
    a.upsertCalls = 0;
    b.upsertCalls = 0;
    expect(sentDuringOutage).toBeGreaterThan(0); // the immediate sends were tried and failed
    const upsertsBefore = emulator.stats().requests.upsertPatterns;

    emulator.resetFaults();
    await until('outbox drained', () => a.service.store.outboxDepth(), (depth) => depth === 0, 20_000);
    const sent = [...a.sentPatternIds, ...b.sentPatternIds];
    // Once per pattern, plus once more for each call that failed on our side: the outbox is at-least-once by design
    // (upserts by stable id), and a call whose 2 s deadline expires on a loaded machine may have been stored already.
    // Only failOutbox releases an entry's lease, so any other re-send (two drainers at once) still fails here.
    const failed = [...a.failedPatternIds, ...b.failedPatternIds];
    expect(sent).toHaveLength(accepted + failed.length);
    expect(new Set(sent).size).toBe(accepted);
    // One drainer at a time: the lease holder did all the sending.
    expect(Math.min(a.sentPatternIds.length, b.sentPatternIds.length)).toBe(0);
    expect(emulator.stats().requests.upsertPatterns - upsertsBefore).toBe(a.upsertCalls + b.upsertCalls);
    for (const scopeId of scopes) expect(emulator.patterns(scopeId)).toHaveLength(20);
  }, 60_000);
});

describe('an instance whose Redis is unreachable', () => {
  it('still starts and serves reads, writes and metrics, answering for itself only', async () => {
    testNumber += 1;
    const instance = await startInstance(
      `inst-lonely-${testNumber}`,
      { deployId: `deploy-${testNumber}`, prefix: `${filePrefix}${testNumber}:` },
      { REDIS_URL: 'redis://127.0.0.1:1' },
      // Nothing listens there: waiting the default 5 s for it to get ready would only delay the start.
      { redisReadyWaitMs: 200 },
    );
    const scopeId = scopeOf(500);
    expect((await instance.call('POST', '/api/memory/patterns', { scopeId, patterns: ['Still learning'] })).status).toBe(200);
    const read = await instance.call('POST', '/api/memory/snippets', { scopeId });
    expect(read.status).toBe(200);
    expect(read.body.snippets.map((s: { content: string }) => s.content)).toEqual(['Still learning']);
    const metrics = await instance.call('GET', '/api/metrics/memory');
    expect(metrics.status).toBe(200);
    expect(memoryMetricsSchema.parse(metrics.body).scope).toBe('instance');
    expect(metrics.body.totals.requests).toBe(1);
  });
});
