/**
 * The fleet rehearsal's guard step (demo/guard-step.ts): the infra guard, as `pulumi preview` runs it, passes the
 * production stack copy the staging canary promoted, and refuses it when the staging report does not match.
 * Fast and file-only, so the refusal needs no second full rehearsal.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, setStackConfig } from '../../canary/actions/stack-file';
import { markSecretsSet, runInfraGuard, tamperedStagingReport } from '../../demo/guard-step';

const REPO = join(__dirname, '../..');
const COMMIT = '54528ae56870fb5bb4ff2ff3a7e849b6690e51c8';
const dir = mkdtempSync(join(tmpdir(), 'fleet-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The production stack copy right after the staging canary promoted COMMIT, and that canary's report. */
function promoted(name: string, summary: Record<string, unknown> = {}) {
  const stackFile = join(dir, `${name}.Pulumi.production.yaml`);
  copyFileSync(join(REPO, 'Pulumi.production.yaml'), stackFile);
  markSecretsSet(stackFile);
  setStackConfig(stackFile, { [PINNED_COMMIT_KEY]: COMMIT, [FLAG_KEY]: true });
  const report = join(dir, `${name}.report.json`);
  const at = new Date().toISOString();
  writeFileSync(
    report,
    JSON.stringify({ summary: { schemaVersion: 1, stack: 'staging', deployId: COMMIT, serviceId: 'srv-x', outcome: 'promoted', startedAt: at, finishedAt: at, ...summary } }),
  );
  return { stackFile, report };
}

describe('the rehearsal runs the infra guard before the production flag goes on', () => {
  it('passes the stack the staging canary promoted, with its report', () => {
    const { stackFile, report } = promoted('ok');
    expect(runInfraGuard('production', stackFile, report)).toEqual({ ok: true, violations: [] });
  });

  it('refuses when the staging report judged another commit (a tampered copy)', () => {
    const { stackFile, report } = promoted('tampered');
    const tampered = join(dir, 'tampered-copy.json');
    tamperedStagingReport(report, tampered);
    const outcome = runInfraGuard('production', stackFile, tampered);
    expect(outcome.ok).toBe(false);
    expect(outcome.violations.join('\n')).toMatch(/does not authorise commit 54528ae5.*but production is pinned to 54528ae5/);
  });

  it('refuses when the staging canary did not promote, or there is no report', () => {
    const rolledBack = promoted('rolled-back', { outcome: 'rolled_back' });
    expect(runInfraGuard('production', rolledBack.stackFile, rolledBack.report).violations.join('\n')).toContain('not "promoted"');
    const missing = runInfraGuard('production', rolledBack.stackFile, join(dir, 'nowhere.json'));
    expect(missing.ok).toBe(false);
    expect(missing.violations.join('\n')).toContain('the file does not exist');
  });

  it('with the flag latched off, production needs no staging report', () => {
    const { stackFile } = promoted('latched');
    setStackConfig(stackFile, { [FLAG_KEY]: false });
    expect(runInfraGuard('production', stackFile, join(dir, 'nowhere.json')).ok).toBe(true);
  });
});
