/**
 * The metrics time series: the pure daily sum (restarts, N instances, baselines), the background writer (a failing
 * or hung store never fails a request: logged and counted), the history endpoint and its validation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { emptyTotals, type MetricTotals } from '../../service/contracts/http';
import { metricsHistoryResponseSchema } from '../../service/contracts/metrics-history';
import { loadConfig } from '../../service/config';
import type { MemoryStore, MetricsClusterDay, MetricsSample } from '../../service/data-access/memory-store';
import { ClusterCounters } from '../../service/domain/exposure-clusters';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { createMetricsHistoryReader, createMetricsHistoryWriter, dailyMetrics, intervalStartOf } from '../../service/domain/metrics-history';
import { createServiceLogger } from '../../service/logging';
import { LogCapture, scope, startHarness, tempDataDir, type Harness } from './support/harness';

const totals = (partial: Partial<MetricTotals>): MetricTotals => ({ ...emptyTotals(), ...partial });
const sample = (instanceId: string, startedAt: string, intervalStart: string, partial: Partial<MetricTotals>): MetricsSample => ({
  instanceId,
  deployId: 'd',
  startedAt: new Date(startedAt).toISOString(),
  intervalStart: new Date(intervalStart).toISOString(),
  recordedAt: new Date(intervalStart).toISOString(),
  totals: totals(partial),
});
const FROM = new Date('2026-03-01T00:00:00Z');
const TO = new Date('2026-03-04T00:00:00Z');

describe('dailyMetrics (pure)', () => {
  it('sums per UTC day the increase of each incarnation, measured from its last sample before the day', () => {
    const days = dailyMetrics(
      [
        sample('a', '2026-02-20T00:00:00Z', '2026-02-28T23:59:00Z', { requests: 100, fallbacks: 10 }),
        sample('a', '2026-02-20T00:00:00Z', '2026-03-01T23:59:00Z', { requests: 160, fallbacks: 12 }),
        sample('a', '2026-02-20T00:00:00Z', '2026-03-03T08:00:00Z', { requests: 200, fallbacks: 12 }),
      ],
      FROM,
      TO,
    );
    expect(days.map((d) => [d.day, d.totals.requests, d.totals.fallbacks, d.instances])).toEqual([
      ['2026-03-01', 60, 2, 1],
      ['2026-03-02', 0, 0, 0],
      ['2026-03-03', 40, 0, 1],
    ]);
  });

  it('a restart is a new incarnation counted from zero, and instances add up', () => {
    const days = dailyMetrics(
      [
        sample('a', '2026-02-20T00:00:00Z', '2026-02-28T23:00:00Z', { requests: 50 }),
        sample('a', '2026-02-20T00:00:00Z', '2026-03-01T10:00:00Z', { requests: 80 }),
        // the same instance restarted at 11:00: its counters start again from zero
        sample('a', '2026-03-01T11:00:00Z', '2026-03-01T23:00:00Z', { requests: 7 }),
        sample('b', '2026-03-01T05:00:00Z', '2026-03-01T20:00:00Z', { requests: 13, latencyMsSum: 130, latencyCount: 2 }),
      ],
      FROM,
      TO,
    );
    expect(days[0]).toMatchObject({ day: '2026-03-01', instances: 2, incarnations: 3 });
    expect(days[0]!.totals).toMatchObject({ requests: 30 + 7 + 13, latencyMsSum: 130, latencyCount: 2 });
  });

  it('an incarnation older than the range without a baseline only sets the baseline (never an overcount)', () => {
    const days = dailyMetrics(
      [
        sample('a', '2026-01-01T00:00:00Z', '2026-03-01T10:00:00Z', { requests: 100_000 }),
        sample('a', '2026-01-01T00:00:00Z', '2026-03-02T10:00:00Z', { requests: 100_050 }),
      ],
      FROM,
      TO,
    );
    expect(days.map((d) => d.totals.requests)).toEqual([0, 50, 0]);
  });

  it('ignores a decrease within one incarnation instead of counting it', () => {
    const days = dailyMetrics(
      [
        sample('a', '2026-03-01T00:00:00Z', '2026-03-01T10:00:00Z', { requests: 10 }),
        sample('a', '2026-03-01T00:00:00Z', '2026-03-02T10:00:00Z', { requests: 4 }),
        sample('a', '2026-03-01T00:00:00Z', '2026-03-03T10:00:00Z', { requests: 9 }),
      ],
      FROM,
      TO,
    );
    expect(days.map((d) => d.totals.requests)).toEqual([10, 0, 5]);
  });

  it('keeps per-cohort figures: each cohort summed per day like the totals, rows without cohorts skipped', () => {
    const pair = (treatment: number, control: number) => ({
      treatment: { requests: treatment, reads: treatment, fallbacks: Math.floor(treatment / 10), serverErrors: 0, latencyMsSum: treatment * 20, latencyCount: treatment, context7Requests: treatment, context7Errors: 0 },
      control: { requests: control, reads: control, fallbacks: 0, serverErrors: 1, latencyMsSum: control * 2, latencyCount: control, context7Requests: 0, context7Errors: 0 },
    });
    const days = dailyMetrics(
      [
        { ...sample('a', '2026-02-20T00:00:00Z', '2026-02-28T23:59:00Z', { requests: 100 }), cohorts: pair(10, 90) },
        { ...sample('a', '2026-02-20T00:00:00Z', '2026-03-01T23:59:00Z', { requests: 200 }), cohorts: pair(30, 170) },
        // a row from before cohorts were measured: the totals count, the cohorts wait for the next pair
        sample('b', '2026-03-01T00:00:00Z', '2026-03-01T12:00:00Z', { requests: 40 }),
        { ...sample('b', '2026-03-01T00:00:00Z', '2026-03-03T12:00:00Z', { requests: 50 }), cohorts: pair(5, 45) },
      ],
      FROM,
      TO,
    );
    expect(days.map((d) => [d.day, d.totals.requests, d.cohorts?.treatment.requests, d.cohorts?.control.requests])).toEqual([
      ['2026-03-01', 140, 20, 80],
      ['2026-03-02', 0, undefined, undefined],
      ['2026-03-03', 10, undefined, undefined],
    ]);
    expect(days[0]!.cohorts!.treatment).toMatchObject({ fallbacks: 2, latencyMsSum: 400, latencyCount: 20 });
  });

  it('aligns intervals to the epoch, so every instance writes the same interval starts', () => {
    expect(intervalStartOf(new Date('2026-03-01T10:00:59.999Z'), 60_000).toISOString()).toBe('2026-03-01T10:00:00.000Z');
  });
});

describe('the metrics history writer', () => {
  const logs = new LogCapture();
  const log = createServiceLogger({ level: 'debug', secrets: [], destination: logs, base: {} });
  const identity = { instanceId: 'i-1', deployId: 'd-1', startedAt: new Date('2026-03-01T00:00:00Z') };

  it('a failing store is logged and counted, never thrown', async () => {
    const writer = createMetricsHistoryWriter({
      store: { recordMetricsSample: async () => Promise.reject(new Error('disk full')), pruneMetricsSamples: async () => 0 },
      readTotals: () => totals({ requests: 1 }),
      identity,
      intervalMs: 60_000,
      retentionDays: 35,
      clock: () => new Date('2026-03-01T10:00:30Z'),
      log,
    });
    await expect(writer.tick()).resolves.toBeUndefined();
    expect(writer.stats()).toMatchObject({ writes: 0, writeFailures: 1, lastError: 'disk full' });
    expect(logs.text()).toMatch(/\[MEMORY_ERROR\].*Metrics history write failed/);
  });

  it('a hung store misses its deadline, and ticks meanwhile are skipped instead of piling up', async () => {
    let calls = 0;
    const writer = createMetricsHistoryWriter({
      store: { recordMetricsSample: () => ((calls += 1), new Promise<void>(() => undefined)), pruneMetricsSamples: async () => 0 },
      readTotals: () => totals({}),
      identity,
      intervalMs: 60_000,
      retentionDays: 35,
      timeoutMs: 50,
      clock: () => new Date(),
      log,
    });
    const first = writer.tick();
    await writer.tick();
    await first;
    expect(calls).toBe(1);
    expect(writer.stats()).toMatchObject({ writeFailures: 1, skipped: 1 });
    expect(writer.stats().lastError).toMatch(/missed its 50 ms deadline/);
  });

  it('writes absolute totals for its interval and prunes past the retention once per prune period', async () => {
    const written: MetricsSample[] = [];
    const cutoffs: Date[] = [];
    let now = new Date('2026-03-10T10:00:30Z');
    const writer = createMetricsHistoryWriter({
      store: { recordMetricsSample: async (s) => void written.push(s), pruneMetricsSamples: async (before) => (cutoffs.push(before), 0) },
      readTotals: () => totals({ requests: written.length + 1 }),
      identity,
      intervalMs: 60_000,
      retentionDays: 5,
      pruneEveryMs: 3_600_000,
      clock: () => now,
      log,
    });
    await writer.tick();
    now = new Date('2026-03-10T10:01:30Z');
    await writer.tick();
    expect(written.map((s) => [s.intervalStart, s.totals.requests, s.instanceId, s.startedAt])).toEqual([
      ['2026-03-10T10:00:00.000Z', 1, 'i-1', '2026-03-01T00:00:00.000Z'],
      ['2026-03-10T10:01:00.000Z', 2, 'i-1', '2026-03-01T00:00:00.000Z'],
    ]);
    expect(cutoffs.map((d) => d.toISOString())).toEqual(['2026-03-05T10:00:30.000Z']);
  });
});

describe('the per-cluster history', () => {
  const log = createServiceLogger({ level: 'debug', secrets: [], destination: new LogCapture(), base: {} });
  const identity = { instanceId: 'i-1', deployId: 'd-1', startedAt: new Date('2026-03-01T00:00:00Z') };
  it('is written with the flush, one row per UTC day, re-encoded only when a count moved or the day changed', async () => {
    const written: MetricsClusterDay[] = [];
    let encoded = 0;
    const counters = new ClusterCounters();
    let now = new Date('2026-03-10T23:58:30Z');
    const writer = createMetricsHistoryWriter({
      store: { recordMetricsSample: async () => undefined, pruneMetricsSamples: async () => 0, recordMetricsClusters: async (d) => void written.push(d) },
      readTotals: () => totals({}),
      readClusters: () => ({ version: counters.version, tables: () => ((encoded += 1), counters.tables({ sketch: false })) }),
      identity,
      intervalMs: 60_000,
      retentionDays: 5,
      clock: () => now,
      log,
    });
    counters.recordRequest('treatment', 4, 1, true, 200, 12, 3);
    await writer.tick();
    now = new Date('2026-03-10T23:59:30Z');
    await writer.tick(); // nothing moved: no write
    counters.recordRequest('control', 900, 2, true, 200, 8, 0);
    await writer.tick();
    now = new Date('2026-03-11T00:00:30Z');
    await writer.tick(); // a new day: its first row, though nothing moved
    expect(encoded).toBe(3);
    expect(written.map((d) => [d.day, d.clusters.treatment.snippets, d.clusters.control.reads, d.startedAt])).toEqual([
      ['2026-03-10', [3], [], '2026-03-01T00:00:00.000Z'],
      ['2026-03-10', [3], [1], '2026-03-01T00:00:00.000Z'],
      ['2026-03-11', [3], [1], '2026-03-01T00:00:00.000Z'],
    ]);
    expect(written[0]!.clusters.treatment.sketch).toEqual([]);
  });

  it('the reader adds the days\' tables only when asked (include=clusters), summed across instances', async () => {
    const tables = (reads: number) => {
      const c = new ClusterCounters();
      for (let i = 0; i < reads; i++) c.recordRequest('treatment', 7, i, true, 200, 5, 1);
      return c.tables({ sketch: false });
    };
    const rows: MetricsClusterDay[] = [
      { instanceId: 'a', startedAt: '2026-03-01T00:00:00.000Z', day: '2026-03-01', recordedAt: '2026-03-01T23:00:00.000Z', clusters: tables(2) },
      { instanceId: 'a', startedAt: '2026-03-01T00:00:00.000Z', day: '2026-03-02', recordedAt: '2026-03-02T23:00:00.000Z', clusters: tables(5) },
      { instanceId: 'b', startedAt: '2026-03-02T06:00:00.000Z', day: '2026-03-02', recordedAt: '2026-03-02T23:00:00.000Z', clusters: tables(4) },
    ];
    const read = createMetricsHistoryReader({
      store: { lastMetricsSamplesPerDay: async () => [], metricsClustersPerDay: async () => rows },
      intervalMs: 60_000,
      retentionDays: 35,
      clock: () => new Date(0),
    });
    const plain = await read({ from: '2026-03-01', to: '2026-03-04', bucket: 'day' });
    expect(plain.days.some((d) => d.clusters)).toBe(false);
    const answer = metricsHistoryResponseSchema.parse(await read({ from: '2026-03-01', to: '2026-03-04', bucket: 'day', include: 'clusters' }));
    expect(answer.days.map((d) => d.clusters?.treatment.reads ?? null)).toEqual([[2], [3 + 4], null]);
    expect(answer.days[1]!.clusters!.treatment.index).toEqual([7]);
  });
});

describe('the metrics history reader', () => {
  const query = { from: '2026-03-01', to: '2026-03-04', bucket: 'day' as const };

  it('a burst of requests costs one store read, reused for the cache period, then read again', async () => {
    let reads = 0;
    let now = 0;
    const read = createMetricsHistoryReader({
      store: { lastMetricsSamplesPerDay: async () => ((reads += 1), [sample('a', '2026-03-01T00:00:00Z', '2026-03-01T10:00:00Z', { requests: 4 })]) },
      intervalMs: 60_000,
      retentionDays: 35,
      cacheMs: 1_000,
      clock: () => new Date(now),
    });
    const answers = await Promise.all([read(query), read(query), read(query)]);
    expect(reads).toBe(1);
    expect(answers[0]!.days.map((d) => d.totals.requests)).toEqual([4, 0, 0]);
    now = 1_500;
    await read(query);
    expect(reads).toBe(2);
  });

  it('a hung store is abandoned at the deadline, and the failure is not cached', async () => {
    let calls = 0;
    const read = createMetricsHistoryReader({
      store: { lastMetricsSamplesPerDay: () => ((calls += 1), calls === 1 ? new Promise<never>(() => undefined) : Promise.resolve([])) },
      intervalMs: 60_000,
      retentionDays: 35,
      timeoutMs: 50,
      clock: () => new Date(0),
    });
    await expect(read(query)).rejects.toThrow(/missed its 50 ms deadline/);
    await expect(read(query)).resolves.toMatchObject({ days: [{ day: '2026-03-01' }, { day: '2026-03-02' }, { day: '2026-03-03' }] });
  });
});

describe('configuration', () => {
  it('defaults to a sample a minute kept 35 days, and names a bad value', () => {
    const config = loadConfig({});
    expect(config.metricsHistoryIntervalMs).toBe(60_000);
    expect(config.metricsHistoryRetentionDays).toBe(35);
    expect(() => loadConfig({ METRICS_HISTORY_INTERVAL_MS: '10' })).toThrow(/METRICS_HISTORY_INTERVAL_MS/);
    expect(() => loadConfig({ METRICS_HISTORY_RETENTION_DAYS: '0' })).toThrow(/METRICS_HISTORY_RETENTION_DAYS/);
  });
});

describe('GET /api/metrics/memory/history', () => {
  let harness: Harness | null = null;
  afterEach(async () => {
    await harness?.close();
    harness = null;
  });
  const today = () => new Date().toISOString().slice(0, 10);
  const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

  it("sums this day's counters across restarts of the service over one store", async () => {
    const dataDir = tempDataDir('history');
    const readSnippets = async (h: Harness, n: number) => {
      for (let i = 0; i < n; i += 1) {
        expect((await h.request('POST', '/api/memory/snippets', { scopeId: scope(), query: `q${i}` })).status).toBe(200);
      }
    };
    harness = await startHarness({ emulator: {}, dataDir });
    await readSnippets(harness, 3);
    const firstTotals = (await harness.request('GET', '/api/metrics/memory')).body.totals as MetricTotals;
    await harness.close(); // the last sample is written on the way out
    harness = await startHarness({ emulator: {}, dataDir });
    await readSnippets(harness, 2);
    await harness.service.metricsHistory.tick();
    const secondTotals = (await harness.request('GET', '/api/metrics/memory')).body.totals as MetricTotals;

    const response = await harness.request('GET', `/api/metrics/memory/history?from=${today()}&to=${tomorrow()}&bucket=day`);
    expect(response.status).toBe(200);
    const body = metricsHistoryResponseSchema.parse(response.body);
    expect(body).toMatchObject({ bucket: 'day', intervalMs: 60_000, retentionDays: 35 });
    expect(body.days).toHaveLength(1);
    expect(body.days[0]).toMatchObject({ day: today(), instances: 1, incarnations: 2 });
    expect(body.days[0]!.totals.requests).toBe(firstTotals.requests + secondTotals.requests);
    expect(body.days[0]!.totals.requests).toBe(5);
    expect(body.days[0]!.totals.context7Requests).toBe(firstTotals.context7Requests + secondTotals.context7Requests);
    // Per cohort too (issue 28): every read of the day is in one cohort or the other, across both incarnations.
    const cohorts = body.days[0]!.cohorts!;
    expect(cohorts.treatment.requests + cohorts.control.requests).toBe(5);
    expect(cohorts.treatment.reads + cohorts.control.reads).toBe(5);
    // Per cluster too, written by the same flush: every read of the day is in some cluster of one slot.
    const withClusters = await harness.request('GET', `/api/metrics/memory/history?from=${today()}&to=${tomorrow()}&bucket=day&include=clusters`);
    const clusters = metricsHistoryResponseSchema.parse(withClusters.body).days[0]!.clusters!;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(clusters.treatment.reads) + sum(clusters.control.reads) + sum(clusters.off.reads)).toBe(5);
    expect(sum(clusters.treatment.reads)).toBe(cohorts.treatment.reads);
  });

  it.each([
    ['', /from/],
    ['?from=2026-03-01', /to/],
    ['?from=2026-3-1&to=2026-03-02', /YYYY-MM-DD/],
    ['?from=2026-02-30&to=2026-03-02', /calendar date/],
    ['?from=2026-03-02&to=2026-03-02', /after `from`/],
    ['?from=2026-01-01&to=2026-06-01', /at most 92 days/],
    ['?from=2026-03-01&to=2026-03-02&bucket=hour', /bucket/],
    ['?from=2026-03-01&to=2026-03-02&include=sketches', /include/],
    ['?from=2026-03-01&from=2026-03-02&to=2026-03-05', /from/],
    ['?from=2026-03-01&to=2026-03-02&scopeId=x', /scopeId|Unrecognized|unrecognized/],
  ])('answers 400 with the problem for %s', async (query, problem) => {
    harness ??= await startHarness();
    const response = await harness.request('GET', `/api/metrics/memory/history${query}`);
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body)).toMatch(problem);
  });

  it('a store whose history fails never fails a request: reads still answer, the failure is logged and counted, the history answers 503', async () => {
    const dataDir = tempDataDir('history-fail');
    const real = createSqliteStore({ dataDir });
    const broken: MemoryStore = Object.assign(Object.create(real) as MemoryStore, {
      recordMetricsSample: async () => Promise.reject(new Error('metrics_history is locked')),
      lastMetricsSamplesPerDay: async () => Promise.reject(new Error('metrics_history is locked')),
    });
    harness = await startHarness({ emulator: {}, dataDir, overrides: { store: broken } });
    await harness.service.metricsHistory.tick();
    expect((await harness.request('POST', '/api/memory/snippets', { scopeId: scope(), query: 'x' })).status).toBe(200);
    expect(harness.service.metricsHistory.stats()).toMatchObject({ writeFailures: 1, lastError: 'metrics_history is locked' });
    expect(harness.logs.text()).toMatch(/Metrics history write failed/);
    expect((await harness.request('GET', '/metrics')).text).toMatch(/^memory_metrics_history_write_failures_total 1$/m);
    const history = await harness.request('GET', `/api/metrics/memory/history?from=${today()}&to=${tomorrow()}`);
    expect(history.status).toBe(503);
    expect(history.headers.get('retry-after')).toBe('5');
  });
});
