/**
 * The edge that reads CUPED's covariate before the stepped canary's first step: each cluster's figures over the
 * last `comparison.preExposureDays` complete UTC days from the metrics history (GET
 * /api/metrics/memory/history?include=clusters), one request with a total deadline (body included). Whatever
 * goes wrong (no answer in time, an older service, days without per-cluster tables), the step falls back to the
 * counters since the instances started, and the note says why; the pure analysis reads it as an observation
 * input (CohortObservation.preExposure).
 */
import { metricsHistoryResponseSchema } from '../../service/contracts/metrics-history';
import { sumClusterTables } from '../../service/domain/exposure-clusters';
import type { HttpProbe } from '../sources/http';
import type { PreExposure } from './types';

export interface PreExposureOptions {
  baseUrl: string;
  /** complete UTC days before `now` (comparison.preExposureDays); 0: do not read */
  days: number;
  now: Date;
  /** total deadline of the one request, body included */
  deadlineMs: number;
}

/** Per-cluster tables of seven days can pass 1 MB; more than this is not a history answer. */
const MAX_HISTORY_BODY_BYTES = 16_000_000;

export async function readPreExposure(probe: HttpProbe, o: PreExposureOptions): Promise<PreExposure> {
  const fallback = (why: string): PreExposure => ({ source: 'counters', note: `fell back to the counters since the instances started: ${why}` });
  if (o.days === 0) return fallback('comparison.preExposureDays is 0');
  const to = o.now.toISOString().slice(0, 10);
  const from = new Date(Date.parse(`${to}T00:00:00Z`) - o.days * 86_400_000).toISOString().slice(0, 10);
  const url = `${o.baseUrl.replace(/\/+$/, '')}/api/metrics/memory/history?from=${from}&to=${to}&bucket=day&include=clusters`;
  const answer = await probe(url, { timeoutMs: o.deadlineMs, maxBodyBytes: MAX_HISTORY_BODY_BYTES });
  if (answer.error === 'timeout') return fallback(`the metrics history (${from} to ${to}) did not arrive within its ${o.deadlineMs} ms deadline`);
  if (answer.error) return fallback(`the metrics history could not be read (${answer.error}: ${answer.message ?? ''})`);
  if (answer.status !== 200) {
    // An older service refuses include=clusters (400); a service without persistence has no history route (404).
    return fallback(`the metrics history answered HTTP ${String(answer.status)}`);
  }
  const parsed = metricsHistoryResponseSchema.safeParse(answer.body);
  if (!parsed.success) return fallback(`the metrics history does not match its contract (${parsed.error.issues[0]?.message ?? ''})`);
  const withClusters = parsed.data.days.filter((day) => day.clusters);
  if (withClusters.length === 0) return fallback(`no day from ${from} to ${to} carries per-cluster tables`);
  const clusters = sumClusterTables(withClusters.map((day) => day.clusters!));
  return {
    source: 'history',
    clusters,
    from,
    to,
    note: `${withClusters.length} of ${o.days} day(s) with per-cluster tables, ${from} to ${to} (exclusive)`,
  };
}

/** The step's observations with the covariate on the first (the baseline), where the analysis reads it. */
export function withPreExposure<T extends { preExposure?: PreExposure }>(observations: T[], pre: PreExposure | undefined): T[] {
  if (!pre || observations.length === 0) return observations;
  return [{ ...observations[0]!, preExposure: pre }, ...observations.slice(1)];
}
