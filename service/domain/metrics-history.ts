/**
 * The metrics time series: each instance persists its own counters every METRICS_HISTORY_INTERVAL_MS, and anyone
 * (the 30-day evaluator) reads them back summed per UTC day across instances.
 *
 * Shape: one row per (instance, incarnation = process start, interval) holding the incarnation's absolute counters.
 * - Restarts: counters restart from zero with each process, so each incarnation is its own series and a day's
 *   figures are the sum, over incarnations, of (last value in the day - last value before the day).
 * - N instances: rows never collide (the instance id is in the key); the sum runs over all of them.
 * - A lost or timed-out write loses nothing: the next one carries the total. Re-writing an interval is an upsert.
 * - The first day an incarnation is seen in a range is measured from its last earlier sample; if none exists (it
 *   started inside the range) from zero. Counts before its first sample of a long-running incarnation whose older
 *   rows were pruned are not attributed (an undercount of at most one interval, never an overcount).
 * Writing is background work: it never blocks or fails a request; failures are logged and counted.
 */
import { emptyTotals, METRIC_TOTAL_KEYS, type CohortTotals, type CohortTotalsPair, type MetricTotals } from '../contracts/http';
import type { MetricsHistoryQuery, MetricsHistoryResponse } from '../contracts/metrics-history';
import type { MemoryStore, MetricsClusterDay, MetricsSample } from '../data-access/memory-store';
import { addClusterTables, CLUSTER_SLOTS, denseToTables, emptyDenseClusters, type ClusterTables, type DenseClusters } from './exposure-clusters';
import { describeError, type ServiceLogger } from '../logging';

export const DAY_MS = 86_400_000;

export interface DailyMetrics {
  /** UTC day, YYYY-MM-DD */
  day: string;
  /** distinct instances (and process incarnations) that contributed counts to the day */
  instances: number;
  incarnations: number;
  totals: MetricTotals;
  /** per cohort, from the rows that carry cohort counters; absent when none of the day's did */
  cohorts?: CohortTotalsPair;
}

export function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function minus(later: MetricTotals, earlier: MetricTotals): MetricTotals | null {
  const delta = emptyTotals();
  for (const key of METRIC_TOTAL_KEYS) {
    delta[key] = later[key] - earlier[key];
    // Within one incarnation counters only grow; a decrease means rows that do not belong together.
    if (delta[key] < 0) return null;
  }
  return delta;
}

function cohortMinus(later: CohortTotals, earlier: CohortTotals): CohortTotals | null {
  const delta = { ...later };
  for (const key of Object.keys(later) as (keyof CohortTotals)[]) {
    delta[key] = later[key] - (earlier[key] ?? 0);
    if (delta[key] < 0) return null;
  }
  return delta;
}

function addCohorts(into: CohortTotalsPair, delta: CohortTotalsPair): void {
  for (const cohort of ['treatment', 'control'] as const) {
    for (const key of Object.keys(delta[cohort]) as (keyof CohortTotals)[]) into[cohort][key] = (into[cohort][key] ?? 0) + delta[cohort][key];
  }
}

const emptyCohortPair = (): CohortTotalsPair => ({
  treatment: { requests: 0, reads: 0, fallbacks: 0, serverErrors: 0, latencyMsSum: 0, latencyCount: 0, context7Requests: 0, context7Errors: 0 },
  control: { requests: 0, reads: 0, fallbacks: 0, serverErrors: 0, latencyMsSum: 0, latencyCount: 0, context7Requests: 0, context7Errors: 0 },
});

/**
 * Sums the deltas of `samples` (as returned by MemoryStore.lastMetricsSamplesPerDay) per UTC day of [from, to).
 * Every day of the range is present, with zeros and no instances when nothing was recorded.
 */
export function dailyMetrics(samples: readonly MetricsSample[], from: Date, to: Date): DailyMetrics[] {
  const days = new Map<string, { totals: MetricTotals; cohorts?: CohortTotalsPair; instances: Set<string>; incarnations: Set<string> }>();
  for (let t = from.getTime(); t < to.getTime(); t += DAY_MS) {
    days.set(utcDay(new Date(t)), { totals: emptyTotals(), instances: new Set(), incarnations: new Set() });
  }
  const byIncarnation = new Map<string, MetricsSample[]>();
  for (const sample of samples) {
    const key = `${sample.instanceId}\u0000${new Date(sample.startedAt).toISOString()}`;
    const series = byIncarnation.get(key);
    if (series) series.push(sample);
    else byIncarnation.set(key, [sample]);
  }
  for (const [key, series] of byIncarnation) {
    series.sort((a, b) => a.intervalStart.localeCompare(b.intervalStart));
    const startedAt = new Date(series[0]!.startedAt);
    const startsInRange = startedAt.getTime() >= from.getTime();
    let previous: MetricTotals | null = startsInRange ? emptyTotals() : null;
    let previousCohorts: CohortTotalsPair | null = startsInRange ? emptyCohortPair() : null;
    for (const sample of series) {
      const intervalStart = new Date(sample.intervalStart);
      const bucket = intervalStart >= from && intervalStart < to ? days.get(utcDay(intervalStart)) : undefined;
      const delta = previous && bucket ? minus(sample.totals, previous) : null;
      previous = sample.totals;
      // Cohort counters diff like the totals, from the previous row that carried them.
      const treatment = sample.cohorts && previousCohorts ? cohortMinus(sample.cohorts.treatment, previousCohorts.treatment) : null;
      const control = sample.cohorts && previousCohorts ? cohortMinus(sample.cohorts.control, previousCohorts.control) : null;
      previousCohorts = sample.cohorts ?? null;
      if (!bucket || !delta) continue;
      for (const name of METRIC_TOTAL_KEYS) bucket.totals[name] += delta[name];
      if (treatment && control) addCohorts((bucket.cohorts ??= emptyCohortPair()), { treatment, control });
      bucket.instances.add(sample.instanceId);
      bucket.incarnations.add(key);
    }
  }
  return [...days].map(([day, bucket]) => ({
    day,
    instances: bucket.instances.size,
    incarnations: bucket.incarnations.size,
    totals: bucket.totals,
    ...(bucket.cohorts ? { cohorts: bucket.cohorts } : {}),
  }));
}

/** a - b slot by slot, or null when any count went down (rows that do not belong together). */
function clusterMinus(later: ClusterTables, earlier: ClusterTables | null): DenseClusters | null {
  const dense = emptyDenseClusters();
  addClusterTables(dense, later);
  if (earlier) addClusterTables(dense, earlier, -1);
  for (const slot of CLUSTER_SLOTS) {
    for (const v of dense[slot].values) if (v < -1e-6) return null;
    if (dense.newScopes[slot] < 0) return null;
  }
  return dense;
}

function addDense(into: DenseClusters, delta: DenseClusters): void {
  for (const slot of CLUSTER_SLOTS) {
    const to = into[slot].values;
    const from = delta[slot].values;
    for (let i = 0; i < to.length; i++) to[i]! += from[i]!;
    into.newScopes[slot] += delta.newScopes[slot];
  }
}

/**
 * Per UTC day of [from, to), the fleet's per-cluster tables (rows from MemoryStore.metricsClustersPerDay): per
 * incarnation, each day's absolute counts minus its previous day's row (from zero when it started inside the range;
 * its first day is skipped when it started before and no earlier row is kept). Days no row covers are absent.
 */
export function dailyClusters(rows: readonly MetricsClusterDay[], from: Date, to: Date): Map<string, ClusterTables> {
  const firstDay = utcDay(from);
  const lastDay = utcDay(to);
  const byIncarnation = new Map<string, MetricsClusterDay[]>();
  for (const row of rows) {
    const key = `${row.instanceId}\u0000${new Date(row.startedAt).toISOString()}`;
    const series = byIncarnation.get(key);
    if (series) series.push(row);
    else byIncarnation.set(key, [row]);
  }
  const days = new Map<string, DenseClusters>();
  for (const series of byIncarnation.values()) {
    series.sort((a, b) => a.day.localeCompare(b.day));
    let previous: ClusterTables | null = null;
    let known = new Date(series[0]!.startedAt).getTime() >= from.getTime();
    for (const row of series) {
      const inRange = row.day >= firstDay && row.day < lastDay;
      const delta = inRange && known ? clusterMinus(row.clusters, previous) : null;
      previous = row.clusters;
      known = true;
      if (!delta) continue;
      const bucket = days.get(row.day);
      if (bucket) addDense(bucket, delta);
      else days.set(row.day, delta);
    }
  }
  return new Map([...days].sort(([a], [b]) => a.localeCompare(b)).map(([day, dense]) => [day, denseToTables(dense)]));
}

/** The interval a moment belongs to: aligned to the epoch, so every instance's rows line up. */
export function intervalStartOf(now: Date, intervalMs: number): Date {
  return new Date(Math.floor(now.getTime() / intervalMs) * intervalMs);
}

export interface MetricsHistoryWriterStats {
  writes: number;
  writeFailures: number;
  /** ticks skipped because the previous write had not finished (a slow store) */
  skipped: number;
  prunes: number;
  pruneFailures: number;
  lastError: string | null;
}

export interface MetricsHistoryWriterOptions {
  store: Pick<MemoryStore, 'recordMetricsSample' | 'pruneMetricsSamples'> & Partial<Pick<MemoryStore, 'recordMetricsClusters'>>;
  /**
   * this instance's per-cluster tables (absolute, without sketches) and a number that changes whenever they do; the
   * tables are encoded and written (one row per UTC day, upserted) only when that number moved or the day changed
   */
  readClusters?: () => { version: number; tables: () => ClusterTables } | undefined;
  /** this instance's own counters (never a fleet view: every instance writes its own) */
  readTotals: () => Promise<MetricTotals> | MetricTotals;
  /** this instance's per-cohort counters, when it measures them (progressive exposure) */
  readCohorts?: () => Promise<CohortTotalsPair | undefined> | CohortTotalsPair | undefined;
  identity: { instanceId: string; deployId: string; startedAt: Date };
  intervalMs: number;
  retentionDays: number;
  /** how often old rows are deleted; every instance prunes, which is idempotent */
  pruneEveryMs?: number;
  /** a store call that takes longer is abandoned and counted as failed */
  timeoutMs?: number;
  clock: () => Date;
  log: ServiceLogger;
}

export interface MetricsHistoryWriter {
  start(): void;
  /** Stops the timer and records the last totals once (within 2 s), so the incarnation's last counts are kept. */
  stop(): Promise<void>;
  /** One write (and a prune when due); never throws. Exposed for tests and the shutdown path. */
  tick(): Promise<void>;
  stats(): MetricsHistoryWriterStats;
}

export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} missed its ${ms} ms deadline`)), ms);
    timer.unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export function createMetricsHistoryWriter(options: MetricsHistoryWriterOptions): MetricsHistoryWriter {
  const { store, log, clock, intervalMs } = options;
  // A write must end before the next is due, so writes never pile up behind a hung store.
  const timeoutMs = options.timeoutMs ?? Math.min(10_000, Math.max(100, Math.floor(intervalMs / 2)));
  const pruneEveryMs = options.pruneEveryMs ?? 3_600_000;
  const stats: MetricsHistoryWriterStats = { writes: 0, writeFailures: 0, skipped: 0, prunes: 0, pruneFailures: 0, lastError: null };
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<void> | null = null;
  let lastPruneAt = Number.NEGATIVE_INFINITY;
  let clustersWritten: string | null = null;

  async function writeOnce(deadlineMs = timeoutMs): Promise<void> {
    const now = clock();
    try {
      const totals = await options.readTotals();
      const cohorts = await options.readCohorts?.();
      const clusters = store.recordMetricsClusters ? options.readClusters?.() : undefined;
      const clusterKey = clusters ? `${utcDay(now)}|${clusters.version}` : null;
      const clusterWrite =
        clusters && clusterKey !== clustersWritten && store.recordMetricsClusters
          ? store.recordMetricsClusters({
              instanceId: options.identity.instanceId,
              startedAt: options.identity.startedAt.toISOString(),
              day: utcDay(now),
              recordedAt: now.toISOString(),
              clusters: clusters.tables(),
            })
          : Promise.resolve();
      const sampleWrite = store.recordMetricsSample({
          instanceId: options.identity.instanceId,
          deployId: options.identity.deployId,
          startedAt: options.identity.startedAt.toISOString(),
          intervalStart: intervalStartOf(now, intervalMs).toISOString(),
          recordedAt: now.toISOString(),
          totals: { ...totals },
          ...(cohorts ? { cohorts: structuredClone(cohorts) } : {}),
        });
      await withDeadline(Promise.all([sampleWrite, clusterWrite]), deadlineMs, 'metrics history write');
      if (clusterKey) clustersWritten = clusterKey;
      stats.writes += 1;
    } catch (error) {
      stats.writeFailures += 1;
      stats.lastError = (error as Error).message;
      log.memoryError.warn('Metrics history write failed (background; requests are unaffected)', describeError(error));
    }
    if (now.getTime() - lastPruneAt < pruneEveryMs) return;
    lastPruneAt = now.getTime();
    try {
      const removed = await withDeadline(
        store.pruneMetricsSamples(new Date(now.getTime() - options.retentionDays * DAY_MS)),
        timeoutMs,
        'metrics history prune',
      );
      stats.prunes += 1;
      if (removed > 0) log.memory.info('Metrics history pruned', { removed, retentionDays: options.retentionDays });
    } catch (error) {
      stats.pruneFailures += 1;
      stats.lastError = (error as Error).message;
      log.memoryError.warn('Metrics history prune failed (background; requests are unaffected)', describeError(error));
    }
  }

  function tick(): Promise<void> {
    if (inFlight) {
      stats.skipped += 1;
      return inFlight;
    }
    inFlight = writeOnce().finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  return {
    start() {
      if (timer) return;
      timer = setInterval(() => void tick(), intervalMs);
      timer.unref();
    },
    async stop() {
      if (!timer) return; // never started: nothing of this incarnation to keep
      clearInterval(timer);
      timer = null;
      await inFlight;
      // Short: it runs inside the SIGTERM budget, after the HTTP drain.
      await writeOnce(Math.min(timeoutMs, 2_000)).catch(() => undefined);
    },
    tick,
    stats: () => ({ ...stats }),
  };
}

export interface MetricsHistoryReaderOptions {
  store: Pick<MemoryStore, 'lastMetricsSamplesPerDay'> & Partial<Pick<MemoryStore, 'metricsClustersPerDay'>>;
  intervalMs: number;
  retentionDays: number;
  /** the read is abandoned (503) past this, like any store call on a request's path */
  timeoutMs?: number;
  /** how long an answer is reused: the route is public, and the figures only move once per interval */
  cacheMs?: number;
  clock: () => Date;
}

/**
 * Answers the history route: one store read per (from, to) at a time, reused for `cacheMs`, so a burst of public
 * requests costs one query. Failures are not cached.
 */
export function createMetricsHistoryReader(options: MetricsHistoryReaderOptions): (query: MetricsHistoryQuery) => Promise<MetricsHistoryResponse> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const cacheMs = options.cacheMs ?? Math.min(options.intervalMs, 60_000);
  const answers = new Map<string, { at: number; answer: Promise<MetricsHistoryResponse> }>();
  return (query) => {
    const withClusters = query.include === 'clusters';
    const key = `${query.bucket}|${query.from}|${query.to}|${withClusters}`;
    const now = options.clock().getTime();
    const cached = answers.get(key);
    if (cached && now - cached.at < cacheMs) return cached.answer;
    if (answers.size >= 64) answers.clear(); // bounded: distinct ranges are few in practice
    const from = new Date(`${query.from}T00:00:00Z`);
    const to = new Date(`${query.to}T00:00:00Z`);
    const readClusters = withClusters && options.store.metricsClustersPerDay ? options.store.metricsClustersPerDay(from, to) : Promise.resolve(null);
    const answer = withDeadline(Promise.all([options.store.lastMetricsSamplesPerDay(from, to), readClusters]), timeoutMs, 'metrics history read').then(([samples, clusterRows]) => {
      const clusters = clusterRows ? dailyClusters(clusterRows, from, to) : null;
      return {
        bucket: query.bucket,
        from: query.from,
        to: query.to,
        intervalMs: options.intervalMs,
        retentionDays: options.retentionDays,
        days: dailyMetrics(samples, from, to).map((day) => {
          const tables = clusters?.get(day.day);
          return tables ? { ...day, clusters: tables } : day;
        }),
      };
    });
    answers.set(key, { at: now, answer });
    answer.catch(() => answers.delete(key));
    return answer;
  };
}
