/**
 * Render's own platform metrics for the analysed service, an independent second source: GET /metrics/http-requests
 * (aggregated by status code) gives the load balancer's 5xx rate, GET /metrics/http-latency (quantile 0.95) its
 * p95, GET /metrics/memory each instance's memory over time. Counts since the analysed deploy started.
 */
import type { RenderClient } from '../../render/client';
import type { MetricSeries } from '../../render/types';
import { RENDER_PLATFORM_SOURCE, type Observation } from '../analysis/observations';
import type { ObservationSource } from './second-sources';

export type RenderMetricsPort = Pick<RenderClient, 'getMetrics'>;

export interface RenderPlatformSourceOptions {
  render: RenderMetricsPort;
  serviceId: string;
  /** the analysed deploy's createdAt */
  since: string;
  now?: () => number;
}

const MIN_RESOLUTION_SECONDS = 30;
const MIB = 1024 * 1024;

const labelOf = (series: MetricSeries[number], field: string) => series.labels.find((l) => l.field === field)?.value;
const sumOf = (series: MetricSeries[number]) => series.values.reduce((sum, point) => sum + point.value, 0);

/** Pure: the three observations from the three answers. */
export function platformObservations(requests: MetricSeries, latency: MetricSeries, memory: MetricSeries): Observation[] {
  const total = Math.round(requests.reduce((sum, s) => sum + sumOf(s), 0));
  const errors = Math.round(requests.filter((s) => labelOf(s, 'statusCode')?.startsWith('5')).reduce((sum, s) => sum + sumOf(s), 0));
  const observations: Observation[] = [{ name: 'http5xxRate', kind: 'rate', events: errors, total }];
  const p95 = latency.flatMap((s) => s.values).sort((a, b) => a.timestamp.localeCompare(b.timestamp)).at(-1);
  if (p95) observations.push({ name: 'p95LatencyMs', kind: 'value', value: p95.value, sample: total, unit: 'ms' });
  // The instance that grew most since the deploy: a leak shows on every instance of the new deploy, in time.
  let worst: { growth: number; points: number; instance: string } | undefined;
  for (const series of memory) {
    const points = [...series.values].sort((a, b) => a.timestamp.localeCompare(b.timestamp));
    if (points.length === 0) continue;
    const growth = (points.at(-1)!.value - points[0]!.value) / MIB;
    if (!worst || growth > worst.growth) worst = { growth, points: points.length, instance: labelOf(series, 'instance') ?? 'unknown' };
  }
  if (worst) {
    observations.push({ name: 'memoryGrowthMb', kind: 'value', value: Math.round(worst.growth * 10) / 10, sample: worst.points, unit: 'MB', detail: `instance ${worst.instance}` });
  }
  return observations;
}

export function createRenderPlatformSource(options: RenderPlatformSourceOptions): ObservationSource {
  const now = options.now ?? Date.now;
  return {
    name: RENDER_PLATFORM_SOURCE,
    async read() {
      const endMs = now();
      const startTime = options.since;
      const endTime = new Date(endMs).toISOString();
      // One bucket over the whole window for the totals and the p95; 30 s points for memory over time.
      const windowSeconds = Math.max(MIN_RESOLUTION_SECONDS, Math.ceil((endMs - Date.parse(startTime)) / 1000));
      const base = { resource: options.serviceId, startTime, endTime };
      try {
        const [requests, latency, memory] = await Promise.all([
          options.render.getMetrics('http-requests', { ...base, resolutionSeconds: windowSeconds, aggregateBy: 'statusCode' }),
          options.render.getMetrics('http-latency', { ...base, resolutionSeconds: windowSeconds, quantile: 0.95 }),
          options.render.getMetrics('memory', { ...base, resolutionSeconds: MIN_RESOLUTION_SECONDS }),
        ]);
        return { source: RENDER_PLATFORM_SOURCE, observations: platformObservations(requests, latency, memory) };
      } catch (error) {
        return { source: RENDER_PLATFORM_SOURCE, observations: [], error: `Render metrics: ${(error as Error).message.slice(0, 200)}` };
      }
    },
  };
}
