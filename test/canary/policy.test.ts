import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { activeCheckpoint, loadPolicy, parsePolicy, PolicyError } from '../../canary/policy';

const POLICY_PATH = join(__dirname, '../../canary/policy.yaml');
const policyText = readFileSync(POLICY_PATH, 'utf8');

function problemsOf(text: string): PolicyError {
  try {
    parsePolicy(text, 'edited.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error;
    throw error;
  }
  throw new Error('policy was accepted');
}

describe('canary policy loader', () => {
  it('loads the committed policy with the runbook thresholds', () => {
    const policy = loadPolicy(POLICY_PATH);
    expect(policy.pollIntervalSeconds).toBe(120);
    expect(policy.checkpoints.map((c) => c.atMinute)).toEqual([15, 30]);
    expect(policy.checkpoints[0]!.rollbackIf).toEqual({
      errorRate: { above: 0.1 },
      fallbackRate: { above: 0.2 },
      avgLatencyMs: { above: 1000 },
    });
    expect(policy.checkpoints[1]!.rollbackIf.errorRate).toEqual({ above: 0.05 });
    expect(policy.successCriteria.require).toEqual({
      context7Requests: { above: 0 },
      errorRate: { below: 0.05 },
      fallbackRate: { below: 0.1 },
      cacheHitRate: { above: 0.2 },
    });
    expect(policy.thirtyDayProfile.avgLatencyMs).toEqual({ below: 150 });
    expect(policy.load.httpErrorRate).toEqual({ below: 0.05 });
    expect(policy.onInconclusiveAtEnd).toBe('hold');
  });

  it('points at the line and column of a percentage written where a fraction belongs', () => {
    const error = problemsOf(policyText.replace('errorRate: { above: 0.10 }', 'errorRate: { above: 10 }'));
    expect(error.exitCode).toBe(64);
    const line = policyText.split('\n').findIndex((l) => l.includes('errorRate: { above: 0.10 }')) + 1;
    expect(error.problems).toEqual([
      expect.objectContaining({ path: 'checkpoints.0.rollbackIf.errorRate.above', line, message: expect.stringContaining('fractions') }),
    ]);
    expect(error.message).toContain(`edited.yaml:${line}:`);
  });

  it('reports wrong types, unknown keys and YAML syntax errors with positions', () => {
    const typo = problemsOf(policyText.replace('maxConsecutiveErrors: 5', 'maxConsecutiveErrors: five'));
    expect(typo.problems[0]).toMatchObject({ path: 'measurement.maxConsecutiveErrors', line: expect.any(Number) });

    const unknown = problemsOf(policyText.replace('confidence: 0.95', 'confidence: 0.95\nconfidense: 0.9'));
    expect(unknown.problems[0]!.message).toMatch(/confidense/);

    const syntax = problemsOf('version: 1\ncheckpoints: [\n  a: 1\n');
    expect(syntax.problems[0]!.line).toBeGreaterThan(1);
  });

  it('refuses checkpoints out of order and a success check that is not at the end', () => {
    const swapped = problemsOf(policyText.replace('atMinute: 30', 'atMinute: 10'));
    expect(swapped.problems.map((p) => p.path)).toContain('checkpoints.1.atMinute');
    const late = problemsOf(policyText.replace('durationMinutes: 60', 'durationMinutes: 45'));
    expect(late.problems.map((p) => p.path)).toContain('successCriteria.atMinute');
  });

  it('only accepts immediate-check endpoints the canary actually probes', () => {
    const error = problemsOf(policyText.replace('endpoints: [/api/config,', 'endpoints: [/api/confg,'));
    expect(error.problems[0]!.path).toBe('immediateChecks.endpoints.0');
  });

  it('judges store errors apart: abort by default, rollback only when asked, never inside rollbackIf', () => {
    const policy = loadPolicy(POLICY_PATH);
    expect(policy.storeErrors).toEqual({ abortIf: { above: 0.05 }, onBreach: 'abort' });
    expect(policy.minimumSample.storeRequests).toBe(30);
    expect(parsePolicy(policyText.replace('onBreach: abort', 'onBreach: rollback')).storeErrors.onBreach).toBe('rollback');

    const unknownAction = problemsOf(policyText.replace('onBreach: abort', 'onBreach: ignore'));
    expect(unknownAction.problems[0]).toMatchObject({ path: 'storeErrors.onBreach', line: expect.any(Number) });
    const percent = problemsOf(policyText.replace('abortIf: { above: 0.05 }', 'abortIf: { above: 5 }'));
    expect(percent.problems[0]).toMatchObject({ path: 'storeErrors.abortIf.above', message: expect.stringContaining('fractions') });
    const misplaced = problemsOf(policyText.replace('errorRate: { above: 0.10 }', 'errorRate: { above: 0.10 }\n      storeErrorRate: { above: 0.05 }'));
    expect(misplaced.problems[0]).toMatchObject({ path: 'checkpoints.0.rollbackIf.storeErrorRate', message: expect.stringContaining('storeErrors') });
  });

  it('loads a policy written before store errors were judged, with the defaults', () => {
    const older = policyText.replace(/\nstoreErrors:\n(  .*\n)+/, '\n').replace(/  storeRequests: 30.*\n/, '');
    expect(older).not.toContain('storeErrors:');
    const policy = parsePolicy(older);
    expect(policy.storeErrors).toEqual({ abortIf: { above: 0.05 }, onBreach: 'abort' });
    expect(policy.minimumSample.storeRequests).toBe(30);
  });

  it('names a missing file as a policy error', () => {
    expect(() => loadPolicy('/nonexistent/policy.yaml')).toThrow(PolicyError);
  });

  it('keeps each checkpoint in force up to its minute and the last one after', () => {
    const policy = loadPolicy(POLICY_PATH);
    expect(activeCheckpoint(policy, 3).name).toBe('15-minute check');
    expect(activeCheckpoint(policy, 15).name).toBe('15-minute check');
    expect(activeCheckpoint(policy, 16).name).toBe('30-minute check');
    expect(activeCheckpoint(policy, 59).name).toBe('30-minute check');
  });
});
