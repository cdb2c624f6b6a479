import { describe, expect, it } from 'vitest';
import { statsOf, summaryFromRecords, type ResponseRecord } from '../../load/bench/records';
import { loadSummarySchema } from '../../load/cli/summary-schema';
import { thresholdSpecs } from '../../load/lib/thresholds';

const specs = thresholdSpecs({ httpAvgLatencyMs: { below: 200 }, httpP95LatencyMs: { below: 500 }, httpErrorRate: { below: 0.05 }, checksPassRate: { above: 0.99 } });
const rec = (endpoint: ResponseRecord['endpoint'], latencyMs: number, ok = true): ResponseRecord => ({
  endpoint,
  latencyMs,
  statusOk: ok,
  checksPassed: ok ? 4 : 1,
  checksTotal: 4,
});

describe('Node runner records', () => {
  it('count transport errors as failed requests with failed checks', () => {
    const s = statsOf([rec('snippets', 10), rec('snippets', 20, false)], 2);
    expect(s.requests).toBe(4);
    expect(s.errorRate).toBe(0.75);
    expect(s.checksPassRate).toBeCloseTo(5 / 10);
    expect(s.latencyMs.avg).toBe(15);
  });

  it('fold into the k6 summary shape, judged by the same thresholds, per endpoint too', () => {
    const records = [...Array.from({ length: 99 }, (_, i) => rec('snippets', 5 + (i % 10))), rec('patterns', 900)];
    const summary = summaryFromRecords(
      { records, transportErrors: 0, durationSeconds: 2 },
      { scenario: 'baseline', target: 'http://127.0.0.1:1', startedAt: '2026-11-23T00:00:00.000Z', specs, thresholdsSource: 'test', environment: { cpus: 2 } },
    );
    expect(loadSummarySchema.safeParse(summary).success).toBe(true);
    expect(summary).toMatchObject({ tool: 'autocannon', requests: 100, throughputRps: 50 });
    expect(summary.endpoints.snippets?.requests).toBe(99);
    expect(summary.thresholds.filter((t) => !t.ok).map((t) => `${t.metric} ${t.expression}`)).toEqual([
      'http_req_duration{endpoint:patterns} avg<200',
      'http_req_duration{endpoint:patterns} p(95)<500',
    ]);
    expect(summary.thresholdsOk).toBe(false);
  });
});
