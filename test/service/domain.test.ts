/**
 * Domain pieces without HTTP: backfill concurrency/cursor/takeover, the weekly schedule, single-flight misses.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { Context7Error, type Context7Port } from '../../service/context7/port';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import type { MemoryStore } from '../../service/data-access/memory-store';
import { BACKFILL_JOB_NAME, createBackfillJob } from '../../service/domain/backfill';
import { createHealthReporter } from '../../service/domain/health';
import { CACHE_HIT_LOG_INTERVAL_MS, createMemoryDomain } from '../../service/domain/memory';
import { InstanceMetrics } from '../../service/domain/metrics';
import { createLruSnippetCache } from '../../service/cache/snippet-cache';
import { scopeKeyOf, toNewPattern } from '../../service/domain/patterns';
import { serializedJsonOf } from '../../service/domain/serialized-json';
import { scheduleWeeklySync } from '../../service/domain/sync-schedule';
import { createServiceLogger } from '../../service/logging';
import { LogCapture, scope, startHarness, tempDataDir, type Harness } from './support/harness';

const stores: MemoryStore[] = [];
const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

async function seededStore(scopes: number, perScope: number): Promise<MemoryStore> {
  const store = createSqliteStore({ dataDir: ':memory:' });
  stores.push(store);
  await store.migrate();
  for (let s = 0; s < scopes; s += 1) {
    const key = scopeKeyOf(scope('bf', `agent-${s}`, 'p'));
    await store.savePatterns(key, Array.from({ length: perScope }, (_, i) => toNewPattern(key.scopeId, `s${s} p${i}`)), new Date());
  }
  return store;
}

/** A Context7 fake that records concurrency and can fail chosen scopes. */
function recordingContext7(options: { delayMs?: number; failScopes?: Set<string> } = {}) {
  let inFlight = 0;
  const calls: { scopeId: string; ids: string[] }[] = [];
  const port: Context7Port & { maxInFlight: number } = {
    maxInFlight: 0,
    async health() {},
    async deletePatterns() {
      return { deleted: 0 };
    },
    async searchSnippets() {
      return [];
    },
    async upsertPatterns({ scopeId, patterns }) {
      inFlight += 1;
      port.maxInFlight = Math.max(port.maxInFlight, inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 2));
        if (options.failScopes?.has(scopeId)) throw new Context7Error('api_error', 'HTTP 500', { operation: 'upsertPatterns', status: 500 });
        calls.push({ scopeId, ids: patterns.map((p) => p.id) });
        return { upserted: patterns.length };
      } finally {
        inFlight -= 1;
      }
    },
    circuitState: () => 'closed',
  };
  return { port, calls };
}

describe('backfill job', () => {
  it('sends every pattern once in batches with bounded concurrency, persists progress, and logs progress and completion', async () => {
    const store = await seededStore(6, 7);
    const { port, calls } = recordingContext7({ delayMs: 3 });
    const logs = new LogCapture();
    const job = createBackfillJob({
      store,
      context7: port,
      log: createServiceLogger({ level: 'info', secrets: [], destination: logs }),
      owner: 'me',
      clock: () => new Date(),
      sleep: async () => {},
      batchSize: 4,
      concurrency: 3,
      progressLogEveryMs: 0,
    });
    expect((await job.start('manual')).started).toBe(true);
    const final = await job.current()!;
    expect(final).toMatchObject({ status: 'completed', synced: 42, errors: 0, total: 42 });
    expect(port.maxInFlight).toBeLessThanOrEqual(3);
    expect(port.maxInFlight).toBeGreaterThan(1);
    expect(calls.every((c) => c.ids.length <= 4)).toBe(true);
    const sent = calls.flatMap((c) => c.ids);
    expect(new Set(sent).size).toBe(42);
    expect(sent).toHaveLength(42);
    expect(logs.messages().some((m) => /^\[SYNC\] Progress: \d+\/42 patterns/.test(m))).toBe(true);
    expect(logs.messages()).toContainEqual(expect.stringMatching(/^\[SYNC\] Complete: 42 synced, 0 errors in \d+ms$/));
    expect(await store.outboxDepth()).toBe(0);
    expect((await store.loadJobState(BACKFILL_JOB_NAME))!.cursor).toBe(sent.sort().at(-1));
  });

  it('counts failed batches as errors and still completes', async () => {
    const store = await seededStore(3, 2);
    const failing = scope('bf', 'agent-1', 'p');
    const { port } = recordingContext7({ failScopes: new Set([failing]) });
    const logs = new LogCapture();
    const job = createBackfillJob({
      store, context7: port, log: createServiceLogger({ level: 'info', secrets: [], destination: logs }),
      owner: 'me', clock: () => new Date(), sleep: async () => {},
    });
    await job.start('manual');
    expect(await job.current()!).toMatchObject({ status: 'completed', synced: 4, errors: 2 });
    expect(logs.messages()).toContainEqual(expect.stringMatching(/^\[SYNC\] Complete: 4 synced, 2 errors in \d+ms$/));
  });

  it('refuses a second start while another instance runs with a fresh heartbeat, and takes over a stale one', async () => {
    const store = await seededStore(1, 2);
    const now = new Date('2026-11-23T10:00:00.000Z');
    await store.saveJobState({
      name: BACKFILL_JOB_NAME, status: 'running', startedAt: now.toISOString(), finishedAt: null, cursor: null,
      total: 2, synced: 0, errors: 0, owner: 'other-instance', heartbeatAt: now.toISOString(),
    });
    const { port } = recordingContext7();
    const make = (at: Date) =>
      createBackfillJob({ store, context7: port, log: createServiceLogger({ level: 'silent', secrets: [] }), owner: 'me', clock: () => at, sleep: async () => {}, staleAfterMs: 60_000 });
    const refused = await make(new Date(now.getTime() + 30_000)).start('manual');
    expect(refused).toMatchObject({ started: false, state: { owner: 'other-instance' } });
    const takeover = make(new Date(now.getTime() + 120_000));
    expect((await takeover.start('manual')).started).toBe(true);
    expect(await takeover.current()!).toMatchObject({ status: 'completed', owner: 'me', synced: 2 });
  });
});

describe('weekly schedule', () => {
  it('next run is a Monday at 02:05 in the configured time zone', () => {
    for (const tz of ['UTC', 'America/New_York', 'Asia/Tokyo']) {
      const schedule = scheduleWeeklySync(tz, async () => {});
      try {
        const next = schedule.nextRun()!;
        const parts = Object.fromEntries(
          new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
            .formatToParts(next)
            .map((p) => [p.type, p.value]),
        );
        expect(parts).toMatchObject({ weekday: 'Mon', hour: '02', minute: '05' });
        expect(next.getTime()).toBeGreaterThan(Date.now());
        expect(next.getTime() - Date.now()).toBeLessThanOrEqual(7 * 24 * 3600_000);
      } finally {
        schedule.stop();
      }
    }
  });
});

describe('single-flight reads', () => {
  it('concurrent misses for one scope and query share a single Context7 call', async () => {
    const h = await startHarness({ emulator: { faults: { latencyMs: 300 } } });
    harnesses.push(h);
    const scopeId = scope('sf', 'a', 'p');
    const before = h.emulator!.stats().requests.searchSnippets;
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => h.request('POST', '/api/memory/snippets', { scopeId, query: 'same' })),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(h.emulator!.stats().requests.searchSnippets - before).toBe(1);
    const m = (await h.request('GET', '/api/metrics/memory')).body;
    expect(m.totals.requests).toBe(10);
    expect(m.totals.context7Requests).toBe(1);
  });
});

describe('cache hit log lines', () => {
  it('a scope logs at most one [CACHE] hit line per interval, counting the hits in between; misses log each', async () => {
    const store = createSqliteStore({ dataDir: ':memory:' });
    stores.push(store);
    await store.migrate();
    const logs = new LogCapture();
    let nowMs = Date.parse('2026-01-05T10:00:00Z');
    const metrics = new InstanceMetrics({ instanceId: 'i', deployId: 'd', startedAt: new Date(nowMs) });
    const domain = createMemoryDomain({
      enabled: true,
      context7: recordingContext7().port,
      store,
      cache: createLruSnippetCache(),
      metrics,
      log: createServiceLogger({ level: 'info', secrets: [], destination: logs }),
      clock: () => new Date(nowMs),
    });
    const [a, b] = [scope('hits', 'a', 'p'), scope('hits', 'b', 'p')];
    const cacheLines = () => logs.lines().filter((line) => line.tag === '[CACHE]');
    await domain.readSnippets({ scopeId: a, query: 'q' }); // miss
    for (let i = 0; i < 4; i += 1) await domain.readSnippets({ scopeId: a, query: 'q' }); // 4 hits: 1 line + 3 counted
    await domain.readSnippets({ scopeId: b, query: 'q' }); // another scope: its own miss line
    await domain.readSnippets({ scopeId: b, query: 'q' }); // and its own first hit line
    nowMs += CACHE_HIT_LOG_INTERVAL_MS - 1;
    await domain.readSnippets({ scopeId: a, query: 'q' }); // still within a's interval: counted
    nowMs += 1;
    await domain.readSnippets({ scopeId: a, query: 'q' }); // a's next line carries the 4 hits it did not log
    await domain.readSnippets({ scopeId: a, query: 'other' }); // a new query misses: logged, not counted
    // [CACHE] lines are written after the answer (in the next macrotask), in the order the reads happened.
    const writtenBeforeTheNextTurn = cacheLines().length;
    await new Promise((resolve) => setImmediate(resolve));
    expect(writtenBeforeTheNextTurn).toBe(5);
    expect(cacheLines().map((line) => [line.msg, line.scopeId, line.similarHitsSinceLastLine])).toEqual([
      ['[CACHE] miss', a, undefined],
      ['[CACHE] hit', a, undefined],
      ['[CACHE] miss', b, undefined],
      ['[CACHE] hit', b, undefined],
      ['[CACHE] hit', a, 4],
      ['[CACHE] miss', a, undefined],
    ]);
    // The metrics count every hit, logged or not.
    expect(metrics.totals.cacheHits).toBe(7);
  });
});

describe('a read answered at once (readSnippetsNow)', () => {
  it('answers a cache hit as readSnippets does, counted and logged alike; a miss or the control cohort it leaves to readSnippets', async () => {
    const store = createSqliteStore({ dataDir: ':memory:' });
    stores.push(store);
    await store.migrate();
    const logs = new LogCapture();
    const metrics = new InstanceMetrics({ instanceId: 'i', deployId: 'd', startedAt: new Date('2026-01-05T10:00:00Z') });
    const context7 = recordingContext7();
    let percent = 100;
    const domain = createMemoryDomain({
      enabled: true,
      context7: context7.port,
      store,
      cache: createLruSnippetCache(),
      metrics,
      log: createServiceLogger({ level: 'info', secrets: [], destination: logs }),
      clock: () => new Date('2026-01-05T10:00:00Z'),
      exposure: { percent: () => percent },
    });
    const scopeId = scope('now', 'a', 'p');
    const request = { scopeId, query: 'q' };
    expect(domain.readSnippetsNow!(request)).toBeUndefined(); // a miss: nothing counted
    expect(metrics.totals.cacheMisses).toBe(0);
    await domain.readSnippets(request);
    const answeredNow = domain.readSnippetsNow!(request);
    const answeredLater = await domain.readSnippets(request);
    expect(answeredNow).toEqual(answeredLater);
    expect(answeredNow).toMatchObject({ source: 'cache', attestation: { scopeId, backend: 'context7' } });
    expect(metrics.totals).toMatchObject({ cacheHits: 2, cacheMisses: 1 });
    await new Promise((resolve) => setImmediate(resolve));
    expect(logs.lines().filter((line) => line.tag === '[CACHE]').map((line) => line.msg)).toEqual(['[CACHE] miss', '[CACHE] hit']);
    // The control cohort reads the store by design, never the cache.
    percent = 0;
    expect(domain.readSnippetsNow!(request)).toBeUndefined();
    expect(metrics.totals.cacheHits).toBe(2);
  });

  it("makes a hit's answer once per cache entry, frozen, with its JSON; a new entry (after a learning write) gets its own", async () => {
    const store = createSqliteStore({ dataDir: ':memory:' });
    stores.push(store);
    await store.migrate();
    const scopeId = scope('kept', 'a', 'p');
    const domain = createMemoryDomain({
      enabled: true,
      // Its sends fail: the learnt pattern stays unsynced, so the next load merges it into the answer.
      context7: recordingContext7({ failScopes: new Set([scopeId]) }).port,
      store,
      cache: createLruSnippetCache(),
      metrics: new InstanceMetrics({ instanceId: 'i', deployId: 'd', startedAt: new Date() }),
      log: createServiceLogger({ level: 'silent', secrets: [] }),
      clock: () => new Date(),
    });
    const request = { scopeId }; // no query: the local half lists the scope's patterns
    const missed = await domain.readSnippets(request);
    expect(serializedJsonOf(missed)).toBeUndefined(); // a miss's answer is serialized when sent, as before
    const first = domain.readSnippetsNow!(request)!;
    const kept = serializedJsonOf(first)!;
    expect(kept.text).toBe(JSON.stringify(first));
    expect(kept.bytes).toBe(Buffer.byteLength(kept.text));
    expect(Object.isFrozen(first) && Object.isFrozen((first as { attestation: object }).attestation)).toBe(true);
    // Invisible to equality, spreads and JSON: the same answer as a plain object.
    expect(first).toStrictEqual({ ...first });
    expect(domain.readSnippetsNow!(request)).toBe(first);
    expect(await domain.readSnippets(request)).toBe(first);
    // Another variant of the scope is another entry, another answer.
    expect(domain.readSnippetsNow!({ scopeId, query: 'other' })).toBeUndefined();
    // A learning write drops the scope's entries: the next hit is of a new entry, with the new pattern in it.
    await domain.learnPatterns({ scopeId, patterns: ['Greet the caller by name'] });
    const reloaded = await domain.readSnippets(request);
    const second = domain.readSnippetsNow!(request)!;
    expect(second).not.toBe(first);
    expect(second.snippets).toEqual(reloaded.snippets);
    expect(JSON.stringify(second)).toContain('Greet the caller by name');
    expect(serializedJsonOf(second)!.text).toBe(JSON.stringify(second));
  });

  it('with the flag off answers "disabled" at once, as readSnippets does', async () => {
    const store = createSqliteStore({ dataDir: ':memory:' });
    stores.push(store);
    const domain = createMemoryDomain({
      enabled: false,
      context7: null,
      store,
      cache: createLruSnippetCache(),
      metrics: new InstanceMetrics({ instanceId: 'i', deployId: 'd', startedAt: new Date() }),
      log: createServiceLogger({ level: 'silent', secrets: [] }),
      clock: () => new Date(),
    });
    const request = { scopeId: scope('now', 'b', 'p') };
    expect(domain.readSnippetsNow!(request)).toEqual(await domain.readSnippets(request));
  });
});

describe('health reporter', () => {
  it('reuses one probe for a few seconds, so polling cannot hammer Context7', async () => {
    let probes = 0;
    let nowMs = 1_000;
    const port: Context7Port = {
      async health() {
        probes += 1;
      },
      async deletePatterns() {
        return { deleted: 0 };
      },
      async searchSnippets() {
        return [];
      },
      async upsertPatterns() {
        return { upserted: 0 };
      },
      circuitState: () => 'closed',
    };
    const reporter = createHealthReporter({ enabled: true, hasKey: true, context7: port, cacheMs: 5_000, now: () => nowMs });
    const answers = await Promise.all(Array.from({ length: 20 }, () => reporter.check()));
    expect(answers.every((a) => a.available)).toBe(true);
    nowMs += 4_999;
    await reporter.check();
    expect(probes).toBe(1);
    nowMs += 2;
    await reporter.check();
    expect(probes).toBe(2);
  });
});

describe('read path faults', () => {
  it('a failing local store is a 500 server fault, never miscounted as a Context7 fallback', async () => {
    const dataDir = tempDataDir('store-fault');
    const real = createSqliteStore({ dataDir });
    let failReads = false;
    const store: MemoryStore = Object.assign(Object.create(null), real, {
      kind: real.kind,
      async searchPatterns(...args: Parameters<MemoryStore['searchPatterns']>) {
        if (failReads) throw new Error('disk I/O error');
        return real.searchPatterns(...args);
      },
    });
    const h = await startHarness({ emulator: {}, dataDir, overrides: { store } });
    onTestFinished(async () => {
      await h.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    const scopeId = scope('sf', 'store', 'fault');
    failReads = true;
    const res = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'x' });
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'Internal server error' });
    const m = (await h.request('GET', '/api/metrics/memory')).body;
    expect(m.totals.fallbacks).toBe(0);
    expect(h.logs.messages().some((msg) => msg.includes('Context7 search failed'))).toBe(false);
    expect(h.logs.lines().some((line) => line.tag === '[MEMORY_ERROR]' && String(line.msg).includes('Unhandled error'))).toBe(true);
    failReads = false;
    expect((await h.request('POST', '/api/memory/snippets', { scopeId, query: 'x' })).status).toBe(200);
  });
});
