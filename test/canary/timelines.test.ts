import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze, STORE_FAILING_MESSAGE, type Measurement } from '../../canary/analysis';
import { replayExitCode } from '../../canary/format';
import { loadPolicy, type CanaryPolicy } from '../../canary/policy';
import { loadTimeline } from '../../canary/timeline';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const dir = join(__dirname, '../../canary/timelines');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const rollbackOnStoreBreach: CanaryPolicy = { ...policy, storeErrors: { ...policy.storeErrors, onBreach: 'rollback' } };

function analyseTimeline(name: string, p: CanaryPolicy = policy) {
  const timeline = loadTimeline(join(dir, `${name}.json`));
  return analyze(p, { deployId: timeline.deployId, measurements: timeline.measurements });
}

/** The same timeline as an older service would have reported it: no store counters at all. */
function withoutStoreCounters(measurements: Measurement[]): Measurement[] {
  return measurements.map((m) => ({
    ...m,
    samples: m.samples.map((probe) => {
      const body = probe.body as { totals?: Record<string, unknown> } | undefined;
      if (!body || typeof body !== 'object' || !body.totals || typeof body.totals !== 'object') return probe;
      const { storeErrorRate: _rate, storeErrorRatePercent: _percent, ...rest } = body as Record<string, unknown>;
      const { storeRequests: _requests, storeErrors: _errors, ...totals } = body.totals;
      return { ...probe, body: { ...rest, totals } };
    }),
  }));
}

describe('timeline corpus under the committed policy', () => {
  it('covers every case the issue lists', () => {
    for (const name of [
      'healthy-high-traffic',
      'healthy-low-traffic',
      'step-regression-20min',
      'slow-drift',
      'flaky-metrics-endpoint',
      'counter-reset-restart',
      'two-instances-disagree',
      'malformed-payloads',
      'context7-down-from-start',
      'store-outage',
      'store-outage-with-context7-regression',
      'store-errors-below-threshold',
    ]) {
      expect(files).toContain(`${name}.json`);
    }
  });

  it.each(files)('%s reaches its expected decision', (file) => {
    const timeline = loadTimeline(join(dir, file));
    const expected = timeline.expected!;
    const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
    expect(result.decision, result.steps.at(-1)?.notes.join('; ')).toBeDefined();
    expect(result.decision!.kind).toBe(expected.decision);
    if (expected.trigger) expect(result.decision!.trigger).toBe(expected.trigger);
    if (expected.decidedByMinute !== undefined) expect(result.decision!.atSeconds / 60).toBeLessThanOrEqual(expected.decidedByMinute);
    if (expected.breachOnsetMinute !== undefined) expect(result.decision!.atSeconds / 60).toBeGreaterThanOrEqual(expected.breachOnsetMinute);
    if (timeline.healthy) expect(result.decision!.kind).not.toBe('rollback');
  });

  it('never judges a malformed payload: those polls are measurement errors, not data', () => {
    const timeline = loadTimeline(join(dir, 'malformed-payloads.json'));
    const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
    const late = result.steps.filter((s) => s.atSeconds >= 600);
    expect(late.length).toBeGreaterThan(0);
    for (const step of late) {
      expect(step.status).toBe('measurement_error');
      expect(step.sampleProblems.every((p) => p.problem === 'malformed')).toBe(true);
    }
  });

  it('marks the restart and the counter drop as invalid windows, not failures', () => {
    const timeline = loadTimeline(join(dir, 'counter-reset-restart.json'));
    const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
    const invalid = result.steps.filter((s) => s.status === 'measured' && !s.window.valid);
    expect(invalid.map((s) => s.atSeconds / 60)).toEqual([26, 42]);
    expect(invalid[0]!.window.invalidReason).toMatch(/restarted/);
    expect(invalid[1]!.window.invalidReason).toMatch(/went down/);
  });

  describe('a store outage is not a Context7 failure', () => {
    it('store outage alone: aborts and alerts (exit 5), never rolls the flag back', () => {
      const result = analyseTimeline('store-outage');
      expect(result.decision).toMatchObject({ kind: 'abort', trigger: 'store_errors', reason: expect.stringContaining(STORE_FAILING_MESSAGE) });
      expect(replayExitCode(result.decision)).toBe(5);
      const decided = result.steps.at(-1)!;
      expect(decided.storeChecks.some((c) => c.verdict === 'fail')).toBe(true);
      // Reads the store failed are 503s, not fallbacks, and Context7 kept being called and answering.
      expect(decided.breachChecks.every((c) => c.verdict !== 'fail')).toBe(true);
      expect(decided.window.counts!.fallbacks / decided.window.counts!.requests).toBeLessThan(0.05);
      expect(decided.window.counts!.context7Requests).toBeGreaterThan(100);
      expect(decided.window.counts!.storeErrors).toBeGreaterThan(100);
    });

    it('Context7 regression alone: rolls back exactly as before store errors were counted', () => {
      const timeline = loadTimeline(join(dir, 'step-regression-20min.json'));
      const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
      expect(result.decision).toMatchObject({ kind: 'rollback', trigger: 'breach' });
      expect(result.steps.flatMap((s) => s.storeChecks).every((c) => c.verdict !== 'fail')).toBe(true);
      expect(result.steps.at(-1)!.cumulative.counts.storeRequests).toBeGreaterThan(0);
      const older = analyze(policy, { deployId: timeline.deployId, measurements: withoutStoreCounters(timeline.measurements) });
      expect(older.decision).toEqual(result.decision);
    });

    it('both at the same poll: the store failure takes precedence (abort, told about Context7 too)', () => {
      const result = analyseTimeline('store-outage-with-context7-regression');
      expect(result.decision).toMatchObject({ kind: 'abort', trigger: 'store_errors' });
      const decided = result.steps.at(-1)!;
      expect(decided.breachChecks.some((c) => c.metric === 'errorRate' && c.verdict === 'fail')).toBe(true);
      expect(result.decision!.reason).toMatch(/Context7 breached too \(errorRate/);
    });

    it('store errors below the bound change nothing', () => {
      const timeline = loadTimeline(join(dir, 'store-errors-below-threshold.json'));
      const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
      expect(result.decision).toMatchObject({ kind: 'promote', trigger: 'end' });
      expect(result.steps.at(-1)!.cumulative.counts.storeErrors).toBeGreaterThan(0);
      const older = analyze(policy, { deployId: timeline.deployId, measurements: withoutStoreCounters(timeline.measurements) });
      expect(older.decision).toEqual(result.decision);
    });

    it('rolls the flag back instead when the policy says storeErrors.onBreach: rollback', () => {
      for (const name of ['store-outage', 'store-outage-with-context7-regression']) {
        const abort = analyseTimeline(name);
        const rollback = analyseTimeline(name, rollbackOnStoreBreach);
        expect(rollback.decision).toMatchObject({ kind: 'rollback', trigger: 'store_errors', atSeconds: abort.decision!.atSeconds });
        expect(rollback.decision!.reason).not.toContain('cannot fix it');
      }
    });

    it('reads timelines recorded before store counters existed: store checks stay inconclusive', () => {
      const timeline = loadTimeline(join(dir, 'healthy-high-traffic.json'));
      const result = analyze(policy, { deployId: timeline.deployId, measurements: withoutStoreCounters(timeline.measurements) });
      expect(result.decision).toMatchObject({ kind: 'promote' });
      const checks = result.steps.flatMap((s) => s.storeChecks);
      expect(checks.length).toBeGreaterThan(0);
      expect(checks.every((c) => c.verdict === 'inconclusive' && c.sample === 0)).toBe(true);
    });
  });

  it('refuses the previous deploy’s figures', () => {
    const timeline = loadTimeline(join(dir, 'stale-deploy-instance.json'));
    const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
    const refused = result.steps.flatMap((s) => s.sampleProblems).filter((p) => p.problem === 'wrong_deploy');
    expect(refused.length).toBeGreaterThan(0);
    expect(result.steps.every((s) => !s.instances.includes('srv-old'))).toBe(true);
  });
});
