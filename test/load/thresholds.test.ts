import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../canary/policy';
import { DEFAULT_POLICY_PATH, thresholdsFromPolicy } from '../../load/cli/policy-thresholds';
import { applyProfile, evaluateThresholds, thresholdSpecs, toK6Thresholds } from '../../load/lib/thresholds';
import { ENDPOINTS } from '../../load/lib/traffic-mix';

const tmp = mkdtempSync(join(tmpdir(), 'load-thresholds-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('thresholds from the canary policy', () => {
  const file = thresholdsFromPolicy(DEFAULT_POLICY_PATH, 'rollout');

  it('carries the policy load section unchanged, read through the canary loader', () => {
    expect(file.load).toEqual(loadPolicy(DEFAULT_POLICY_PATH).load);
    expect(file.source).toBe('canary/policy.yaml');
    // the runbook figures: average < 200 ms, error rate < 5%
    expect(file.load.httpAvgLatencyMs).toEqual({ below: 200 });
    expect(file.load.httpErrorRate).toEqual({ below: 0.05 });
  });

  it('follows an edited policy (one source of truth)', () => {
    const edited = readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace('httpP95LatencyMs: { below: 500 }', 'httpP95LatencyMs: { below: 321 }');
    expect(edited).toContain('below: 321');
    const path = join(tmp, 'policy.yaml');
    writeFileSync(path, edited);
    const k6 = toK6Thresholds(thresholdSpecs(thresholdsFromPolicy(path, 'rollout').load), { endpoints: [] });
    expect(k6.http_req_duration).toContain('p(95)<321');
  });

  it('reports a broken policy with its location instead of running', () => {
    const path = join(tmp, 'broken.yaml');
    writeFileSync(path, readFileSync(DEFAULT_POLICY_PATH, 'utf8').replace('httpErrorRate: { below: 0.05 }', 'httpErrorRate: { below: 5 }'));
    expect(() => thresholdsFromPolicy(path, 'rollout')).toThrow(/load\.httpErrorRate|fraction/);
  });

  it('maps to k6 thresholds for the whole run and per endpoint', () => {
    const k6 = toK6Thresholds(thresholdSpecs(file.load), { endpoints: ENDPOINTS });
    expect(k6.http_req_duration).toEqual(['avg<200', 'p(95)<500']);
    expect(k6.http_req_failed).toEqual(['rate<0.05']);
    expect(k6.checks).toEqual(['rate>0.99']);
    for (const e of ENDPOINTS) {
      expect(k6[`http_req_duration{endpoint:${e}}`]).toEqual(['avg<200', 'p(95)<500']);
      expect(k6[`http_req_failed{endpoint:${e}}`]).toEqual(['rate<0.05']);
    }
  });

  it('aborts on fail for breakpoint runs, on the whole-run thresholds only', () => {
    const k6 = toK6Thresholds(thresholdSpecs(file.load), { endpoints: ['snippets'], abortOnFail: true, reportOnlyTags: ['rate_step:100'] });
    expect(k6.http_req_failed[0]).toEqual({ threshold: 'rate<0.05', abortOnFail: true, delayAbortEval: '10s' });
    expect(k6['http_req_failed{endpoint:snippets}']).toEqual(['rate<0.05']);
    expect(k6['http_req_duration{rate_step:100}']).toEqual(['avg<200', 'p(95)<500']);
  });

  it('tightens average latency to the 30-day profile on request', () => {
    const thirty = thresholdsFromPolicy(DEFAULT_POLICY_PATH, 'thirty-day');
    expect(thirty.load.httpAvgLatencyMs).toEqual({ below: 150 });
    expect(thirty.load.httpP95LatencyMs).toEqual(file.load.httpP95LatencyMs);
    expect(applyProfile(file.load, 'thirty-day', 250).httpAvgLatencyMs).toEqual({ below: 200 });
    expect(() => applyProfile(file.load, 'thirty-day', undefined)).toThrow(/thirtyDayProfile/);
  });

  it('refuses unknown or malformed threshold keys rather than ignoring them', () => {
    expect(() => thresholdSpecs({ ...file.load, httpP99LatencyMs: { below: 900 } } as never)).toThrow(/unknown load threshold "httpP99LatencyMs"/);
    expect(() => thresholdSpecs({ ...file.load, httpErrorRate: { below: 0.1, above: 0.01 } })).toThrow(/exactly one/);
    expect(() => thresholdSpecs({ ...file.load, checksPassRate: undefined } as never)).toThrow(/missing/);
  });

  it('evaluates measured stats the way k6 would', () => {
    const specs = thresholdSpecs(file.load);
    const good = evaluateThresholds(specs, { errorRate: 0.01, checksPassRate: 1, latencyMs: { avg: 20, p95: 80 } });
    expect(good.every((r) => r.ok)).toBe(true);
    const slow = evaluateThresholds(specs, { errorRate: 0.01, checksPassRate: 1, latencyMs: { avg: 200, p95: 80 } }, '{endpoint:snippets}');
    expect(slow.filter((r) => !r.ok)).toEqual([{ metric: 'http_req_duration{endpoint:snippets}', expression: 'avg<200', ok: false, actual: 200 }]);
    const badChecks = evaluateThresholds(specs, { errorRate: 0, checksPassRate: 0.98, latencyMs: { avg: 1, p95: 1 } });
    expect(badChecks.find((r) => r.metric === 'checks')?.ok).toBe(false);
  });
});
