/**
 * `GET /metrics`: the same figures as /api/metrics/memory in Prometheus text format.
 * Values are set from one snapshot right before serializing, so both endpoints always agree.
 * Each service gets its own registry, so several services in one process never collide.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_TYPES, type MemoryMetrics } from '../contracts/http';

export interface PrometheusExporter {
  contentType: string;
  render(snapshot: MemoryMetrics, extra: PrometheusExtra): Promise<string>;
}

export interface PrometheusExtra {
  outboxDepth: number;
  /** the background time-series writer's own counts (service/domain/metrics-history.ts) */
  metricsHistory?: { writes: number; writeFailures: number };
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
  const historyWrites = counter('memory_metrics_history_writes_total', 'Samples this instance wrote to the metrics time series');
  const historyWriteFailures = counter(
    'memory_metrics_history_write_failures_total',
    'Time-series writes that failed or missed their deadline (background: no request failed)',
  );

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
      setCounter(historyWrites, extra.metricsHistory?.writes ?? 0);
      setCounter(historyWriteFailures, extra.metricsHistory?.writeFailures ?? 0);
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
