/**
 * The learning probe's judging (pure): each run's answers classified, the runs judged under policy.probe with
 * Wilson intervals, a probe that cannot run never a failure, and a failing probe failing the success criteria.
 */
import { describe, expect, it } from 'vitest';
import { classifyProbeRun, judgeProbe, type ProbeRun } from '../../canary/probe/judge-probe';
import { parsePolicy } from '../../canary/policy';
import { readFileSync } from 'node:fs';
import { analyze, type Measurement } from '../../canary/analysis';
import { healthyRun } from './support/healthy-run';

const scopeId = 'scope:canaryprobe-canary:probe:0123456789abcdef';
const content = 'canary probe pattern 42';
const saved = (destinations: string[]) => ({ status: 200, body: { saved: 1, inserted: 1, patternIds: ['p'], destinations } });
const readBack = (backend: string, contents: string[]) => ({
  status: 200,
  body: { source: backend, snippets: contents.map((c, i) => ({ id: `s${i}`, content: c })), attestation: { backend, scopeId, snippetsApplied: contents.length } },
});
const run = (save: Parameters<typeof classifyProbeRun>[0]['save'], read?: Parameters<typeof classifyProbeRun>[0]['read']) =>
  classifyProbeRun({ atSeconds: 60, scopeId, content, save, read });

describe('classifyProbeRun', () => {
  it('passes a save to Context7 read back from context7 or hybrid with the pattern present', () => {
    expect(run(saved(['database', 'context7']), readBack('context7', [content]))).toMatchObject({ outcome: 'ok', failures: [] });
    expect(run(saved(['database', 'context7']), readBack('hybrid', ['other', content]))).toMatchObject({ outcome: 'ok', failures: [] });
  });

  it('fails a save that stayed in the database, a read-back from the database, and a missing pattern', () => {
    expect(run(saved(['database']), readBack('database', [content]))).toMatchObject({ outcome: 'failed', failures: ['not_saved_to_context7', 'wrong_source'] });
    expect(run(saved(['database', 'context7']), readBack('cache', [content])).failures).toEqual(['wrong_source']);
    expect(run(saved(['database', 'context7']), readBack('context7', ['something else'])).failures).toEqual(['pattern_missing']);
  });

  it('a probe that cannot run is a measurement problem, never a failure', () => {
    expect(run({ status: null, error: 'network', message: 'ECONNREFUSED' })).toMatchObject({ outcome: 'not_run', failures: [] });
    expect(run({ status: 401, body: { error: 'unauthorized' } }).detail).toMatch(/refused/);
    expect(run(saved(['database', 'context7']), { status: 503, body: {} })).toMatchObject({ outcome: 'not_run', failures: [] });
  });
});

describe('judgeProbe', () => {
  const policy = { maxFailureRate: 0.1, minimumProbes: 10, everyMeasurements: 1, patternTtlMinutes: 60 };
  const ok = run(saved(['database', 'context7']), readBack('context7', [content]));
  const failed = run(saved(['database']), readBack('database', [content]));
  const notRun = run({ status: 401 });
  const times = (r: ProbeRun, n: number) => Array.from({ length: n }, () => r);

  it('passes enough good probes, fails clearly bad ones, and leaves too few inconclusive', () => {
    expect(judgeProbe(policy, 0.95, times(ok, 40))).toMatchObject({ verdict: 'pass', judged: 40, savesToContext7: { verdict: 'pass' }, attestation: { verdict: 'pass' } });
    const bad = judgeProbe(policy, 0.95, times(failed, 10));
    expect(bad).toMatchObject({ verdict: 'fail', savesToContext7: { verdict: 'fail' }, attestation: { verdict: 'fail' } });
    expect(bad.failuresByKind).toMatchObject({ not_saved_to_context7: 10, wrong_source: 10, pattern_missing: 0 });
    expect(judgeProbe(policy, 0.95, times(failed, 3)).verdict).toBe('inconclusive');
    expect(judgeProbe(policy, 0.95, [...times(ok, 40), failed]).lastResult).toBe(failed);
  });

  it('probes that could not run are counted apart and never fail', () => {
    const judged = judgeProbe(policy, 0.95, times(notRun, 20));
    expect(judged).toMatchObject({ verdict: 'not_run', runs: 20, judged: 0, notRun: 20 });
    expect(judged.failuresByKind.not_run).toBe(20);
  });

  it('old policies load with probe defaults', () => {
    const text = readFileSync('canary/policy.yaml', 'utf8').replace(/^probe:[\s\S]*?(?=^\S)/m, '');
    expect(parsePolicy(text).probe).toEqual({ everyMeasurements: 1, maxFailureRate: 0.15, minimumProbes: 10, patternTtlMinutes: 60 });
  });
});

describe('the probe in the analysis', () => {
  const policy = parsePolicy(readFileSync('test/canary/fixtures/e2e-policy.yaml', 'utf8') + '\nprobe:\n  everyMeasurements: 1\n  maxFailureRate: 0.2\n  minimumProbes: 3\n  patternTtlMinutes: 60\n');
  /** A healthy service (every criterion passes) with the given probe run at every measurement. */
  const healthyWithProbe = (probe: ProbeRun | undefined): Measurement[] =>
    healthyRun(policy, (atSeconds) => (probe ? { probe: { ...probe, atSeconds } } : {}));
  const ok = run(saved(['database', 'context7']), readBack('hybrid', [content]));
  const failed = run(saved(['database']), readBack('database', [content]));

  it('a failing probe fails the success criteria; a passing one, one that cannot run, or none at all promotes', () => {
    const failing = analyze(policy, { measurements: healthyWithProbe(failed) });
    expect(failing.decision).toMatchObject({ kind: policy.onFailAtEnd, trigger: 'end', reason: expect.stringContaining('learning probe fail') });
    expect(failing.checkpoints.at(-1)?.probe?.verdict).toBe('fail');
    expect(analyze(policy, { measurements: healthyWithProbe(ok) }).decision).toMatchObject({ kind: 'promote', reason: expect.stringContaining('learning probe pass') });
    expect(analyze(policy, { measurements: healthyWithProbe(run({ status: 401 })) }).decision?.kind).toBe('promote');
    const without = analyze(policy, { measurements: healthyWithProbe(undefined) });
    expect(without.decision?.kind).toBe('promote');
    expect(without.probe).toBeNull();
  });
});
