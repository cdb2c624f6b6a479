/**
 * The metrics time series part of the MemoryStore contract, run against SQLite and PostgreSQL.
 * Times are injected; each test uses its own instance ids so stores may be shared between tests.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyTotals, type MetricTotals } from '../../service/contracts/http';
import type { MemoryStore, MetricsClusterDay, MetricsSample } from '../../service/data-access/memory-store';
import { ClusterCounters, type ClusterTables } from '../../service/domain/exposure-clusters';
import { dailyClusters } from '../../service/domain/metrics-history';

/** Fixed per-cluster tables: `reads` reads in cluster 3 (treatment) and cluster 700 (control), 2 snippets each. */
function clusterTables(reads: number): ClusterTables {
  const counters = new ClusterCounters();
  for (let i = 0; i < reads; i++) {
    counters.recordRequest('treatment', 3, i, true, 200, 10, 2);
    counters.recordContext7Call('treatment', 3, true);
    counters.recordRequest('control', 700, 1_000 + i, true, 200, 5, 2);
  }
  return counters.tables({ sketch: false });
}

export interface MetricsHistoryTarget {
  /** A migrated store; may hold rows of other tests. */
  open(): Promise<MemoryStore>;
}

const DAY = 86_400_000;

function sample(instanceId: string, startedAt: string, intervalStart: string, totals: Partial<MetricTotals>): MetricsSample {
  return {
    instanceId,
    deployId: 'deploy-1',
    startedAt: new Date(startedAt).toISOString(),
    intervalStart: new Date(intervalStart).toISOString(),
    recordedAt: new Date(new Date(intervalStart).getTime() + 30_000).toISOString(),
    totals: { ...emptyTotals(), ...totals },
  };
}

export function describeMetricsHistoryContract(label: string, target: MetricsHistoryTarget): void {
  describe(`MemoryStore contract, metrics history: ${label}`, () => {
    const opened: MemoryStore[] = [];
    const open = async () => {
      const store = await target.open();
      opened.push(store);
      return store;
    };
    afterAll(async () => {
      await Promise.all(opened.map((store) => store.close()));
    });
    // A year of its own per test: rows of other tests never fall in the range read.
    let year = 2030;
    const range = () => {
      year += 1;
      return { from: new Date(`${year}-03-01T00:00:00.000Z`), to: new Date(`${year}-03-04T00:00:00.000Z`), y: year };
    };
    const owned = (rows: MetricsSample[], prefix: string) => rows.filter((row) => row.instanceId.startsWith(prefix));

    it('returns the last sample of each incarnation per UTC day, with the last one before the range as baseline', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `i-${randomUUID()}`;
      const start = `${y}-02-28T12:00:00Z`;
      await store.recordMetricsSample(sample(id, start, `${y}-02-28T22:00:00Z`, { requests: 5 }));
      await store.recordMetricsSample(sample(id, start, `${y}-02-28T23:59:00Z`, { requests: 7 }));
      await store.recordMetricsSample(sample(id, start, `${y}-03-01T00:00:00Z`, { requests: 8 }));
      await store.recordMetricsSample(sample(id, start, `${y}-03-01T23:59:00Z`, { requests: 20, latencyMsSum: 12.5 }));
      await store.recordMetricsSample(sample(id, start, `${y}-03-03T10:00:00Z`, { requests: 30 }));
      await store.recordMetricsSample(sample(id, start, `${y}-03-04T00:00:00Z`, { requests: 99 }));

      const rows = owned(await store.lastMetricsSamplesPerDay(from, to), id);
      expect(rows.map((row) => [row.intervalStart, row.totals.requests])).toEqual([
        [`${y}-02-28T23:59:00.000Z`, 7],
        [`${y}-03-01T23:59:00.000Z`, 20],
        [`${y}-03-03T10:00:00.000Z`, 30],
      ]);
      expect(rows[1]!.totals.latencyMsSum).toBe(12.5);
      expect(rows[1]).toMatchObject({ instanceId: id, deployId: 'deploy-1', startedAt: new Date(start).toISOString() });
    });

    it('keeps the per-cohort counters of a sample, and a sample without them has none', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `i-${randomUUID()}`;
      const cohorts = {
        treatment: { requests: 12, reads: 10, fallbacks: 2, serverErrors: 1, latencyMsSum: 240.5, latencyCount: 12, context7Requests: 10, context7Errors: 2 },
        control: { requests: 88, reads: 80, fallbacks: 0, serverErrors: 0, latencyMsSum: 176, latencyCount: 88, context7Requests: 8, context7Errors: 0 },
      };
      await store.recordMetricsSample({ ...sample(id, `${y}-03-01T00:00:00Z`, `${y}-03-01T10:00:00Z`, { requests: 100 }), cohorts });
      await store.recordMetricsSample(sample(id, `${y}-03-01T00:00:00Z`, `${y}-03-02T10:00:00Z`, { requests: 120 }));
      const rows = owned(await store.lastMetricsSamplesPerDay(from, to), id);
      expect(rows[0]!.cohorts).toEqual(cohorts);
      expect(rows[0]!.totals.requests).toBe(100);
      expect(rows[1]!.cohorts).toBeUndefined();
    });

    it('keeps incarnations apart: a restart of the same instance is a new series', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `r-${randomUUID()}`;
      await store.recordMetricsSample(sample(id, `${y}-03-01T00:00:00Z`, `${y}-03-01T10:00:00Z`, { requests: 50 }));
      await store.recordMetricsSample(sample(id, `${y}-03-01T11:00:00Z`, `${y}-03-01T12:00:00Z`, { requests: 3 }));
      const rows = owned(await store.lastMetricsSamplesPerDay(from, to), id);
      expect(rows.map((row) => row.totals.requests).sort((a, b) => a - b)).toEqual([3, 50]);
    });

    it('an incarnation without samples in the range contributes no baseline', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `b-${randomUUID()}`;
      await store.recordMetricsSample(sample(id, `${y}-02-01T00:00:00Z`, `${y}-02-27T10:00:00Z`, { requests: 5 }));
      expect(owned(await store.lastMetricsSamplesPerDay(from, to), id)).toEqual([]);
    });

    it('re-recording an interval is an upsert: the later recording wins, an older one changes nothing', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `u-${randomUUID()}`;
      const first = sample(id, `${y}-03-01T00:00:00Z`, `${y}-03-02T10:00:00Z`, { requests: 4 });
      await store.recordMetricsSample(first);
      await store.recordMetricsSample({ ...first, recordedAt: `${y}-03-02T10:00:50.000Z`, totals: { ...first.totals, requests: 6 } });
      await store.recordMetricsSample({ ...first, recordedAt: `${y}-03-02T10:00:10.000Z`, totals: { ...first.totals, requests: 5 } });
      const rows = owned(await store.lastMetricsSamplesPerDay(from, to), id);
      expect(rows.map((row) => row.totals.requests)).toEqual([6]);
    });

    it('prunes samples older than the retention cut-off and says how many', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `p-${randomUUID()}`;
      const start = `${y}-01-01T00:00:00Z`;
      await store.recordMetricsSample(sample(id, start, `${y}-03-01T10:00:00Z`, { requests: 1 }));
      await store.recordMetricsSample(sample(id, start, `${y}-03-02T10:00:00Z`, { requests: 2 }));
      await store.recordMetricsSample(sample(id, start, `${y}-03-03T10:00:00Z`, { requests: 3 }));
      const removed = await store.pruneMetricsSamples(new Date(from.getTime() + DAY + 12 * 3_600_000));
      expect(removed).toBeGreaterThanOrEqual(2);
      const rows = owned(await store.lastMetricsSamplesPerDay(from, to), id);
      expect(rows.map((row) => row.totals.requests)).toEqual([3]);
    });

    it('keeps one per-cluster row per incarnation and day (an upsert), with the last one before the range as baseline', async () => {
      const store = await open();
      const { from, to, y } = range();
      const id = `c-${randomUUID()}`;
      const startedAt = new Date(`${y}-02-27T00:00:00Z`).toISOString();
      const day = (d: string, reads: number, recordedAt = `${d}T23:00:00.000Z`): MetricsClusterDay => ({ instanceId: id, startedAt, day: d, recordedAt, clusters: clusterTables(reads) });
      await store.recordMetricsClusters(day(`${y}-02-27`, 1));
      await store.recordMetricsClusters(day(`${y}-02-28`, 2));
      await store.recordMetricsClusters(day(`${y}-03-01`, 3, `${y}-03-01T10:00:00.000Z`));
      await store.recordMetricsClusters(day(`${y}-03-01`, 5)); // a later flush of the same day replaces it
      await store.recordMetricsClusters(day(`${y}-03-01`, 4, `${y}-03-01T11:00:00.000Z`)); // an older one changes nothing
      await store.recordMetricsClusters(day(`${y}-03-03`, 9));
      await store.recordMetricsClusters(day(`${y}-03-04`, 99)); // after the range

      const rows = (await store.metricsClustersPerDay(from, to)).filter((row) => row.instanceId === id);
      expect(rows.map((row) => [row.day, row.clusters.treatment.reads])).toEqual([
        [`${y}-02-28`, [2]],
        [`${y}-03-01`, [5]],
        [`${y}-03-03`, [9]],
      ]);
      expect(rows[1]!.clusters.treatment.index).toEqual([3]);
      expect(rows[1]!.clusters.control).toMatchObject({ index: [700], reads: [5], snippets: [10], readsWithSnippets: [5] });
      expect(rows[1]!.clusters.treatment.context7Calls).toEqual([5]);
      expect(rows[1]).toMatchObject({ startedAt, recordedAt: `${y}-03-01T23:00:00.000Z` });

      // Per day: the day's counts minus the day before (the baseline row counts only as a baseline).
      const days = dailyClusters(rows, from, to);
      expect([...days.keys()]).toEqual([`${y}-03-01`, `${y}-03-03`]);
      expect(days.get(`${y}-03-01`)!.treatment.reads).toEqual([3]);
      expect(days.get(`${y}-03-03`)!.control.snippets).toEqual([8]);

      const removed = await store.pruneMetricsSamples(new Date(`${y}-03-01T00:00:00Z`));
      expect(removed).toBeGreaterThanOrEqual(2);
      const left = (await store.metricsClustersPerDay(from, to)).filter((row) => row.instanceId === id);
      expect(left.map((row) => row.day)).toEqual([`${y}-03-01`, `${y}-03-03`]);
    });

    it('two instances write at once without losing a sample', async () => {
      const [a, b] = [await open(), await open()];
      const { from, to, y } = range();
      const prefix = `n-${randomUUID()}`;
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).recordMetricsSample(sample(`${prefix}-${i}`, `${y}-03-01T00:00:00Z`, `${y}-03-01T10:00:00Z`, { requests: i })),
        ),
      );
      expect(owned(await a.lastMetricsSamplesPerDay(from, to), prefix)).toHaveLength(20);
    });
  });
}
