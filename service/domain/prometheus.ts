/**
 * `GET /metrics`: the same figures as /api/metrics/memory in Prometheus text format.
 * Values are set from one snapshot right before serializing, so both endpoints always agree.
 * Each service gets its own registry, so several services in one process never collide.
 * The exposure cohorts' figures carry a `cohort` label (treatment, control) on metrics of their own; the
 * metrics that existed before keep their names and meaning.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { ERROR_TYPES, type CohortFigures, type CohortTotals, type MemoryMetrics } from '../contracts/http';
import { COHORTS, type Cohort } from './exposure';
import { latencyBin, latencyBinUpperMs } from './latency-bins';

export interface PrometheusExporter {
  contentType: string;
  render(snapshot: MemoryMetrics, extra: PrometheusExtra): Promise<string>;
}

export interface PrometheusExtra {
  outboxDepth: number;
  /** the background time-series writer's own counts (service/domain/metrics-history.ts) */
  metricsHistory?: { writes: number; writeFailures: number };
}

/**
 * `le` bounds of the cohorts' request latency histogram, in ms: upper edges of the 5 % bins (latency-bins.ts) near
 * 1-2-5 steps, so each bucket is an exact sum of bins (rounded up to 0.001 ms).
 */
export const COHORT_LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000].map(
  (ms) => ({ bin: latencyBin(ms), le: String(Math.ceil(latencyBinUpperMs(latencyBin(ms)) * 1000) / 1000) }),
);

const COHORT_COUNTERS: { key: Exclude<keyof CohortTotals, 'latencyMsSum' | 'latencyCount'>; name: string; help: string }[] = [
  { key: 'requests', name: 'memory_cohort_requests_total', help: 'Memory requests (reads and learning writes) by exposure cohort, flag on, probe scopes excluded' },
  { key: 'reads', name: 'memory_cohort_reads_total', help: 'Snippet reads by exposure cohort' },
  { key: 'fallbacks', name: 'memory_cohort_fallbacks_total', help: 'Reads answered from the local store because Context7 failed, by cohort (control reads never are)' },
  { key: 'serverErrors', name: 'memory_cohort_server_errors_total', help: 'Memory requests answered with a 5xx status, by cohort' },
  { key: 'context7Requests', name: 'memory_cohort_context7_requests_total', help: "Logical Context7 calls made for a cohort's requests" },
  { key: 'context7Errors', name: 'memory_cohort_context7_errors_total', help: "Logical Context7 calls for a cohort's requests that failed" },
];

/** A histogram set from a snapshot's cumulative bins (prom-client's Histogram can only observe). */
function cohortLatencyHistogram(registry: Registry): { set(cohorts: Record<Cohort, CohortFigures> | undefined): void } {
  const name = 'memory_cohort_request_latency_ms';
  const help = 'Memory request latency at the HTTP edge in milliseconds, by exposure cohort';
  let values: { metricName: string; labels: Record<string, string>; value: number }[] = [];
  const metric = { name, help, type: 'histogram', get: async () => ({ name, help, type: 'histogram', values, aggregator: 'sum' }) };
  registry.registerMetric(metric as unknown as Metric);
  return {
    set(cohorts) {
      values = [];
      for (const cohort of COHORTS) {
        const figures = cohorts?.[cohort];
        const bins = Object.entries(figures?.latencyBins ?? {}).map(([bin, count]) => [Number(bin), count] as const);
        for (const { bin, le } of COHORT_LATENCY_BUCKETS_MS) {
          const count = bins.reduce((sum, [b, n]) => (b <= bin ? sum + n : sum), 0);
          values.push({ metricName: `${name}_bucket`, labels: { cohort, le }, value: count });
        }
        values.push({ metricName: `${name}_bucket`, labels: { cohort, le: '+Inf' }, value: figures?.totals.latencyCount ?? 0 });
        values.push({ metricName: `${name}_sum`, labels: { cohort }, value: figures?.totals.latencyMsSum ?? 0 });
        values.push({ metricName: `${name}_count`, labels: { cohort }, value: figures?.totals.latencyCount ?? 0 });
      }
    },
  };
}

export function createPrometheusExporter(options: { defaultMetrics?: boolean } = {}): PrometheusExporter {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'memory_service_' });

  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });

  const info = gauge('memory_service_info', 'Identity of this instance (value is always 1)', ['instance_id', 'deploy_id', 'started_at']);
  const totals = {
    requests: counter('memory_requests_total', 'Snippet reads served with Context7 memory enabled'),
    fallbacks: counter('memory_fallbacks_total', 'Snippet reads answered from the local store because Context7 failed'),
    context7Requests: counter('memory_context7_requests_total', 'Logical Context7 search/upsert calls (health probes excluded)'),
    context7Errors: counter('memory_context7_errors_total', 'Logical Context7 calls that failed after retries'),
    cacheHits: counter('memory_cache_hits_total', 'Snippet reads answered from the cache'),
    cacheMisses: counter('memory_cache_misses_total', 'Snippet reads that missed the cache'),
    latencyMsSum: counter('memory_context7_latency_ms_sum', 'Sum of Context7 call latencies in milliseconds'),
    latencyCount: counter('memory_context7_latency_ms_count', 'Number of Context7 calls measured'),
    storeRequests: counter('memory_store_requests_total', 'Memory requests that needed the local store (PostgreSQL or SQLite)'),
    storeErrors: counter('memory_store_errors_total', 'Memory requests the local store failed (timeout, refused, busy): not Context7 errors'),
    probeRequests: counter('memory_probe_requests_total', "Memory requests in the canary's probe scopes (canaryprobe-*), counted in no other counter"),
  };
  const errorsByType = counter('memory_context7_errors_by_type_total', 'Failed Context7 calls by error type', ['type']);
  const rates = {
    errorRate: gauge('memory_error_rate', 'context7Errors / context7Requests (0..1)'),
    fallbackRate: gauge('memory_fallback_rate', 'fallbacks / requests (0..1)'),
    cacheHitRate: gauge('memory_cache_hit_rate', 'cacheHits / (cacheHits + cacheMisses) (0..1)'),
    storeErrorRate: gauge('memory_store_error_rate', 'storeErrors / storeRequests (0..1)'),
    avgLatency: gauge('memory_context7_avg_latency_ms', 'Mean Context7 call latency in milliseconds'),
    p95Latency: gauge('memory_context7_p95_latency_ms', 'p95 of recent Context7 call latencies in milliseconds'),
  };
  const cacheSize = gauge('memory_cache_size', 'Entries in the snippet cache');
  const cacheTtl = gauge('memory_cache_ttl_ms', 'Snippet cache TTL in milliseconds');
  const outboxDepth = gauge('memory_outbox_depth', 'Patterns waiting in the outbox for Context7');
  const exposurePercent = gauge('memory_exposure_percent', 'Share of scopes this instance reads from Context7 (0 with the flag off; 0 after the kill switch)');
  const exposureCeiling = gauge('memory_exposure_ceiling_percent', "The stack's ceiling on exposure (CONTEXT7_EXPOSURE_PERCENT)");
  const exposureVersion = gauge('memory_exposure_version', 'The runtime exposure change this instance has applied');
  const historyWrites = counter('memory_metrics_history_writes_total', 'Samples this instance wrote to the metrics time series');
  const historyWriteFailures = counter(
    'memory_metrics_history_write_failures_total',
    'Time-series writes that failed or missed their deadline (background: no request failed)',
  );

  const cohortCounters = COHORT_COUNTERS.map((spec) => ({ ...spec, metric: counter(spec.name, spec.help, ['cohort']) }));
  const cohortLatency = cohortLatencyHistogram(registry);

  const setCounter = (metric: Counter, value: number, labels?: Record<string, string>) => {
    if (labels) {
      metric.remove(labels);
      if (value > 0) metric.inc(labels, value);
      else metric.inc(labels, 0);
    } else {
      metric.reset();
      metric.inc(value);
    }
  };

  // Scrapes are serialized: each one sets every value and then serializes them, without interleaving.
  let previous: Promise<unknown> = Promise.resolve();
  const renderExclusive = async (snapshot: MemoryMetrics, extra: PrometheusExtra): Promise<string> => {
      info.reset();
      info.set({ instance_id: snapshot.instanceId, deploy_id: snapshot.deployId, started_at: snapshot.startedAt }, 1);
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) setCounter(totals[key], snapshot.totals[key]);
      for (const type of ERROR_TYPES) setCounter(errorsByType, snapshot.errorsByType[type], { type });
      rates.errorRate.set(snapshot.errorRate);
      rates.fallbackRate.set(snapshot.fallbackRate);
      rates.cacheHitRate.set(snapshot.cacheHitRate);
      rates.storeErrorRate.set(snapshot.storeErrorRate);
      rates.avgLatency.set(snapshot.avgLatency);
      rates.p95Latency.set(snapshot.p95Latency);
      cacheSize.set(snapshot.cache.size);
      cacheTtl.set(snapshot.cache.ttlMs);
      outboxDepth.set(extra.outboxDepth);
      if (snapshot.exposure) {
        exposurePercent.set(snapshot.exposure.percent);
        exposureCeiling.set(snapshot.exposure.ceiling);
        exposureVersion.set(snapshot.exposure.version);
      }
      setCounter(historyWrites, extra.metricsHistory?.writes ?? 0);
      setCounter(historyWriteFailures, extra.metricsHistory?.writeFailures ?? 0);
      for (const { key, metric } of cohortCounters) {
        for (const cohort of COHORTS) setCounter(metric, snapshot.cohorts?.[cohort].totals[key] ?? 0, { cohort });
      }
      cohortLatency.set(snapshot.cohorts);
      return registry.metrics();
  };

  return {
    contentType: registry.contentType,
    render(snapshot, extra) {
      const result = previous.then(() => renderExclusive(snapshot, extra));
      previous = result.catch(() => undefined);
      return result;
    },
  };
}
