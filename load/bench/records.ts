/**
 * Per-response records from the Node runner, folded into the shared summary shape (the same one
 * k6's handleSummary writes). Pure.
 */
import { ENDPOINTS, type Endpoint } from '../lib/traffic-mix';
import { latencyStatsFromSamples, SUMMARY_FORMAT, type EndpointStats, type LoadSummary } from '../lib/summary';
import { evaluateThresholds, type ThresholdSpec } from '../lib/thresholds';

export interface ResponseRecord {
  endpoint: Endpoint;
  /** the HTTP status (429s are counted apart: a limiter answered, not the service) */
  status?: number;
  latencyMs: number;
  /** the status was the expected one (k6's http_req_failed is the opposite) */
  statusOk: boolean;
  checksPassed: number;
  checksTotal: number;
}

export interface RawRun {
  records: ResponseRecord[];
  /** requests that got no response (connection error, timeout): failed, and their checks too */
  transportErrors: number;
  durationSeconds: number;
}

export function statsOf(records: readonly ResponseRecord[], transportErrors = 0): EndpointStats {
  const requests = records.length + transportErrors;
  let failed = transportErrors;
  let passed = 0;
  let checks = transportErrors;
  for (const r of records) {
    if (!r.statusOk) failed += 1;
    passed += r.checksPassed;
    checks += r.checksTotal;
  }
  return {
    requests,
    errorRate: requests === 0 ? 0 : failed / requests,
    checksPassRate: checks === 0 ? 1 : passed / checks,
    latencyMs: latencyStatsFromSamples(records.map((r) => r.latencyMs)),
  };
}

export interface BenchSummaryMeta {
  scenario: string;
  target: string;
  startedAt: string;
  specs: ThresholdSpec[];
  thresholdsSource: string;
  environment: Record<string, string | number | boolean>;
  offered?: LoadSummary['offered'];
  traffic?: LoadSummary['traffic'];
  machine?: LoadSummary['machine'];
}

export function summaryFromRecords(run: RawRun, meta: BenchSummaryMeta): LoadSummary {
  const totals = statsOf(run.records, run.transportErrors);
  const endpoints: Partial<Record<Endpoint, EndpointStats>> = {};
  const thresholds = evaluateThresholds(meta.specs, totals);
  for (const endpoint of ENDPOINTS) {
    const mine = run.records.filter((r) => r.endpoint === endpoint);
    if (mine.length === 0) continue;
    const stats = statsOf(mine);
    endpoints[endpoint] = stats;
    thresholds.push(...evaluateThresholds(meta.specs, stats, `{endpoint:${endpoint}}`));
  }
  return {
    format: SUMMARY_FORMAT,
    tool: 'autocannon',
    scenario: meta.scenario,
    target: meta.target,
    startedAt: meta.startedAt,
    durationSeconds: run.durationSeconds,
    ...totals,
    throughputRps: run.durationSeconds > 0 ? totals.requests / run.durationSeconds : 0,
    endpoints,
    thresholds,
    thresholdsOk: thresholds.every((t) => t.ok),
    thresholdsSource: meta.thresholdsSource,
    environment: meta.environment,
    ...(meta.offered ? { offered: meta.offered } : {}),
    ...(meta.traffic ? { traffic: meta.traffic } : {}),
    ...(meta.machine ? { machine: meta.machine } : {}),
    rateLimited: run.records.filter((r) => r.status === 429).length,
    // The Node runner ends only when its planned time is up (a signal stops it without writing a summary).
    run: { outcome: 'completed', exitCode: null, plannedDurationSeconds: meta.offered?.plannedDurationSeconds ?? run.durationSeconds, actualDurationSeconds: run.durationSeconds },
  };
}
