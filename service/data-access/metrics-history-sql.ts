/**
 * The metrics time series (table metrics_history) for both stores: one row per instance incarnation and interval,
 * its absolute counters as JSON (the contract's MetricTotals, so a counter added later needs no migration).
 * Kept apart from the stores' pattern code so the two evolve without touching each other.
 */
import type Database from 'better-sqlite3';
import type { PgQuery } from './pg-query';
import { cohortTotalsPairSchema, metricTotalsSchema } from '../contracts/http';
import { clusterTablesSchema } from '../domain/exposure-clusters';
import type { MetricsClusterDay, MetricsSample } from './memory-store';

export const SQLITE_METRICS_HISTORY_MIGRATION = `
  CREATE TABLE metrics_history (
    instance_id    TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    interval_start TEXT NOT NULL,
    deploy_id      TEXT NOT NULL,
    recorded_at    TEXT NOT NULL,
    totals         TEXT NOT NULL,
    PRIMARY KEY (instance_id, started_at, interval_start)
  );
  CREATE INDEX metrics_history_interval ON metrics_history (interval_start);
`;

export const PG_METRICS_HISTORY_MIGRATION = `
  CREATE TABLE metrics_history (
    instance_id    text NOT NULL,
    started_at     timestamptz NOT NULL,
    interval_start timestamptz NOT NULL,
    deploy_id      text NOT NULL,
    recorded_at    timestamptz NOT NULL,
    totals         jsonb NOT NULL,
    PRIMARY KEY (instance_id, started_at, interval_start)
  );
  CREATE INDEX metrics_history_interval ON metrics_history (interval_start);
`;

/**
 * The per-cluster tables (service/domain/exposure-clusters.ts, columnar, without sketches): one row per instance
 * incarnation and UTC day, its absolute counts, overwritten by each flush of that day. A day's figures are the
 * last row of the day minus the incarnation's row of the day before (as for the totals), so history stays cheap:
 * one row per instance per day, not per interval.
 */
export const SQLITE_METRICS_CLUSTERS_MIGRATION = `
  CREATE TABLE metrics_history_clusters (
    instance_id TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    day         TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    tables      TEXT NOT NULL,
    PRIMARY KEY (instance_id, started_at, day)
  );
  CREATE INDEX metrics_history_clusters_day ON metrics_history_clusters (day);
`;

export const PG_METRICS_CLUSTERS_MIGRATION = `
  CREATE TABLE metrics_history_clusters (
    instance_id text NOT NULL,
    started_at  timestamptz NOT NULL,
    day         date NOT NULL,
    recorded_at timestamptz NOT NULL,
    tables      jsonb NOT NULL,
    PRIMARY KEY (instance_id, started_at, day)
  );
  CREATE INDEX metrics_history_clusters_day ON metrics_history_clusters (day);
`;

interface ClusterRow {
  instance_id: string;
  started_at: string | Date;
  day: string | Date;
  recorded_at: string | Date;
  tables: string | Record<string, unknown>;
}

function toClusterDay(row: ClusterRow): MetricsClusterDay | null {
  const parsed = clusterTablesSchema.safeParse(typeof row.tables === 'string' ? JSON.parse(row.tables) : row.tables);
  // An unreadable row (another version's shape) is left out, never guessed at.
  if (!parsed.success) return null;
  const day = row.day instanceof Date ? row.day.toISOString().slice(0, 10) : String(row.day).slice(0, 10);
  return { instanceId: row.instance_id, startedAt: isoOf(row.started_at), day, recordedAt: isoOf(row.recorded_at), clusters: parsed.data };
}

/** Rows of days in [from, to), and per incarnation among them its last row before `from`. */
function clusterDaysSql(p: { from: string; to: string }): string {
  return `
    WITH in_range AS (
      SELECT * FROM metrics_history_clusters WHERE day >= ${p.from} AND day < ${p.to}
    ),
    baseline AS (
      SELECT c.*, row_number() OVER (PARTITION BY instance_id, started_at ORDER BY day DESC) AS rn
      FROM metrics_history_clusters c
      WHERE day < ${p.from} AND (instance_id, started_at) IN (SELECT instance_id, started_at FROM in_range)
    )
    SELECT instance_id, started_at, day, recorded_at, tables FROM in_range
    UNION ALL
    SELECT instance_id, started_at, day, recorded_at, tables FROM baseline WHERE rn = 1
    ORDER BY instance_id, started_at, day`;
}

interface SampleRow {
  instance_id: string;
  started_at: string | Date;
  interval_start: string | Date;
  deploy_id: string;
  recorded_at: string | Date;
  totals: string | Record<string, unknown>;
}

function isoOf(value: string | Date): string {
  return new Date(value).toISOString();
}

/** The JSON column: the totals, and the per-cohort totals under `cohorts` when the sample has them. */
function totalsJson(sample: MetricsSample): string {
  return JSON.stringify(sample.cohorts ? { ...sample.totals, cohorts: sample.cohorts } : sample.totals);
}

function toSample(row: SampleRow): MetricsSample {
  const json = (typeof row.totals === 'string' ? JSON.parse(row.totals) : row.totals) as Record<string, unknown>;
  // A row without cohorts (written before they were measured), or with unreadable ones, simply has none.
  const cohorts = cohortTotalsPairSchema.safeParse(json.cohorts);
  return {
    ...(cohorts.success ? { cohorts: cohorts.data } : {}),
    instanceId: row.instance_id,
    deployId: row.deploy_id,
    startedAt: isoOf(row.started_at),
    intervalStart: isoOf(row.interval_start),
    recordedAt: isoOf(row.recorded_at),
    // Parsed, never trusted: a row written by an older version gets the defaults of counters it lacked.
    totals: metricTotalsSchema.parse(json),
  };
}

/**
 * Per incarnation: the last row of each UTC day in [from, to), and the last row before `from`. `dayOf` is the
 * dialect's UTC day of interval_start; both dialects support window functions and row values.
 */
function lastPerDaySql(dayOf: string, p: { from: string; to: string }): string {
  return `
    WITH in_range AS (
      SELECT h.*, row_number() OVER (
        PARTITION BY instance_id, started_at, ${dayOf} ORDER BY interval_start DESC) AS rn
      FROM metrics_history h
      WHERE interval_start >= ${p.from} AND interval_start < ${p.to}
    ),
    baseline AS (
      SELECT h.*, row_number() OVER (PARTITION BY instance_id, started_at ORDER BY interval_start DESC) AS rn
      FROM metrics_history h
      WHERE interval_start < ${p.from}
        AND (instance_id, started_at) IN (SELECT instance_id, started_at FROM in_range)
    )
    SELECT instance_id, started_at, interval_start, deploy_id, recorded_at, totals FROM in_range WHERE rn = 1
    UNION ALL
    SELECT instance_id, started_at, interval_start, deploy_id, recorded_at, totals FROM baseline WHERE rn = 1
    ORDER BY instance_id, started_at, interval_start`;
}

export interface MetricsHistoryMethods {
  recordMetricsSample(sample: MetricsSample): Promise<void>;
  lastMetricsSamplesPerDay(from: Date, to: Date): Promise<MetricsSample[]>;
  pruneMetricsSamples(before: Date): Promise<number>;
  recordMetricsClusters(day: MetricsClusterDay): Promise<void>;
  metricsClustersPerDay(from: Date, to: Date): Promise<MetricsClusterDay[]>;
}

/** `db()` is called per use: the store prepares nothing before migrate() and refuses use after close(). */
export function sqliteMetricsHistory(db: () => Database.Database): MetricsHistoryMethods {
  return {
    async recordMetricsSample(sample) {
      db()
        .prepare(
          `INSERT INTO metrics_history (instance_id, started_at, interval_start, deploy_id, recorded_at, totals)
           VALUES (@instanceId, @startedAt, @intervalStart, @deployId, @recordedAt, @totals)
           ON CONFLICT (instance_id, started_at, interval_start) DO UPDATE
             SET deploy_id = excluded.deploy_id, recorded_at = excluded.recorded_at, totals = excluded.totals
             WHERE excluded.recorded_at >= metrics_history.recorded_at`,
        )
        .run({
          instanceId: sample.instanceId,
          startedAt: isoOf(sample.startedAt),
          intervalStart: isoOf(sample.intervalStart),
          deployId: sample.deployId,
          recordedAt: isoOf(sample.recordedAt),
          totals: totalsJson(sample),
        });
    },
    async lastMetricsSamplesPerDay(from, to) {
      const rows = db()
        .prepare(lastPerDaySql('substr(interval_start, 1, 10)', { from: '@from', to: '@to' }))
        .all({ from: from.toISOString(), to: to.toISOString() }) as SampleRow[];
      return rows.map(toSample);
    },
    async pruneMetricsSamples(before) {
      const samples = db().prepare(`DELETE FROM metrics_history WHERE interval_start < ?`).run(before.toISOString()).changes;
      const days = db().prepare(`DELETE FROM metrics_history_clusters WHERE day < ?`).run(before.toISOString().slice(0, 10)).changes;
      return samples + days;
    },
    async recordMetricsClusters(day) {
      db()
        .prepare(
          `INSERT INTO metrics_history_clusters (instance_id, started_at, day, recorded_at, tables)
           VALUES (@instanceId, @startedAt, @day, @recordedAt, @tables)
           ON CONFLICT (instance_id, started_at, day) DO UPDATE
             SET recorded_at = excluded.recorded_at, tables = excluded.tables
             WHERE excluded.recorded_at >= metrics_history_clusters.recorded_at`,
        )
        .run({ instanceId: day.instanceId, startedAt: isoOf(day.startedAt), day: day.day, recordedAt: isoOf(day.recordedAt), tables: JSON.stringify(day.clusters) });
    },
    async metricsClustersPerDay(from, to) {
      const rows = db()
        .prepare(clusterDaysSql({ from: '@from', to: '@to' }))
        .all({ from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) }) as ClusterRow[];
      return rows.flatMap((row) => toClusterDay(row) ?? []);
    },
  };
}

/** Every call is one statement through the store's own query path, so it keeps the store's statement deadline. */
export function pgMetricsHistory(query: PgQuery): MetricsHistoryMethods {
  return {
    async recordMetricsSample(sample) {
      await query(
        `INSERT INTO metrics_history AS h (instance_id, started_at, interval_start, deploy_id, recorded_at, totals)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (instance_id, started_at, interval_start) DO UPDATE
           SET deploy_id = EXCLUDED.deploy_id, recorded_at = EXCLUDED.recorded_at, totals = EXCLUDED.totals
           WHERE EXCLUDED.recorded_at >= h.recorded_at`,
        [sample.instanceId, sample.startedAt, sample.intervalStart, sample.deployId, sample.recordedAt, totalsJson(sample)],
      );
    },
    async lastMetricsSamplesPerDay(from, to) {
      const result = await query<SampleRow>(
        lastPerDaySql(`((interval_start AT TIME ZONE 'UTC')::date)`, { from: '$1', to: '$2' }),
        [from, to],
      );
      return result.rows.map(toSample);
    },
    async pruneMetricsSamples(before) {
      const result = await query(`DELETE FROM metrics_history WHERE interval_start < $1`, [before]);
      const days = await query(`DELETE FROM metrics_history_clusters WHERE day < $1::date`, [before.toISOString().slice(0, 10)]);
      return (result.rowCount ?? 0) + (days.rowCount ?? 0);
    },
    async recordMetricsClusters(day) {
      await query(
        `INSERT INTO metrics_history_clusters AS c (instance_id, started_at, day, recorded_at, tables)
         VALUES ($1, $2, $3::date, $4, $5)
         ON CONFLICT (instance_id, started_at, day) DO UPDATE
           SET recorded_at = EXCLUDED.recorded_at, tables = EXCLUDED.tables
           WHERE EXCLUDED.recorded_at >= c.recorded_at`,
        [day.instanceId, day.startedAt, day.day, day.recordedAt, JSON.stringify(day.clusters)],
      );
    },
    async metricsClustersPerDay(from, to) {
      // day::text: the date as YYYY-MM-DD whatever the driver's date parsing.
      const result = await query<ClusterRow>(
        clusterDaysSql({ from: '$1::date', to: '$2::date' }).replace(/SELECT instance_id, started_at, day, recorded_at, tables/g, 'SELECT instance_id, started_at, day::text AS day, recorded_at, tables'),
        [from.toISOString().slice(0, 10), to.toISOString().slice(0, 10)],
      );
      return result.rows.flatMap((row) => toClusterDay(row) ?? []);
    },
  };
}
