import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { loadTimeline } from '../../canary/timeline';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const dir = join(__dirname, '../../canary/timelines');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

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

  it('refuses the previous deploy’s figures', () => {
    const timeline = loadTimeline(join(dir, 'stale-deploy-instance.json'));
    const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
    const refused = result.steps.flatMap((s) => s.sampleProblems).filter((p) => p.problem === 'wrong_deploy');
    expect(refused.length).toBeGreaterThan(0);
    expect(result.steps.every((s) => !s.instances.includes('srv-old'))).toBe(true);
  });
});
