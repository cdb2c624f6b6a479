/**
 * The live metric source: one measurement = metric samples until every instance behind the load
 * balancer has been seen, plus the health and config probes. Raw answers only; judging is the
 * analysis' job.
 */
import type { Measurement, Probe } from '../analysis/measurement';
import type { CanaryPolicy } from '../policy';
import { httpProbe, type HttpProbe } from './http';

export interface MetricSource {
  /** Takes one measurement, stamped with `atSeconds` (policy seconds since the analysis started). */
  measure(atSeconds: number): Promise<Measurement>;
}

export interface HttpMetricSourceOptions {
  baseUrl: string;
  policy: CanaryPolicy;
  /** how many instances serve the service (from Render), when known */
  expectedInstances?: number;
  probe?: HttpProbe;
  /** follow the backfill's status with this admin token (sent as a header only, never recorded) */
  adminToken?: string;
}

export function instanceOf(probe: Probe): { id: string; fleet: boolean } | undefined {
  const body = probe.body as { instanceId?: unknown; scope?: unknown } | undefined;
  if (probe.status !== 200 || !body || typeof body !== 'object' || typeof body.instanceId !== 'string') return undefined;
  return { id: body.instanceId, fleet: body.scope === 'fleet' };
}

export function createHttpMetricSource(options: HttpMetricSourceOptions): MetricSource {
  const probe = options.probe ?? httpProbe;
  const base = options.baseUrl.replace(/\/+$/, '');
  const { measurement } = options.policy;
  const timeoutMs = measurement.timeoutSeconds * 1000;
  return {
    async measure(atSeconds) {
      const [health, config, backfill] = await Promise.all([
        probe(`${base}/api/memory/health`, { timeoutMs }),
        probe(`${base}/api/config`, { timeoutMs }),
        options.adminToken
          ? probe(`${base}/api/admin/sync-context7/status`, { timeoutMs, headers: { authorization: `Bearer ${options.adminToken}` } })
          : Promise.resolve(undefined),
      ]);
      const samples: Probe[] = [];
      const seen = new Set<string>();
      let withoutNew = 0;
      while (samples.length < measurement.maxSamplesPerMeasurement) {
        const sample = await probe(`${base}/api/metrics/memory`, { timeoutMs });
        samples.push(sample);
        const instance = instanceOf(sample);
        if (instance?.fleet) break; // the service already summed every instance
        if (instance && !seen.has(instance.id)) {
          seen.add(instance.id);
          withoutNew = 0;
        } else withoutNew++;
        if (options.expectedInstances !== undefined && seen.size >= options.expectedInstances) break;
        if (withoutNew >= measurement.stopAfterRepeatSamples) break;
      }
      return { atSeconds, samples, health, config, ...(backfill ? { backfill } : {}) };
    },
  };
}
