/**
 * The staging canary's promotion pins production's exposure ceiling to the percentage it reached, through its own
 * stack-file writer (comments kept), and `infra:check` on the file it wrote holds production to that percentage.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promote, promotionEntries } from '../../canary/actions/promote';
import { EXPOSURE_PERCENT_KEY, FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig, setStackConfig } from '../../canary/actions/stack-file';
import { checkStack } from '../../infra/check';

const REPO = resolve(__dirname, '..', '..');
const COMMIT = '2468ace02468ace02468ace02468ace02468ace0';
const SECURE = '  memory-rollout:context7ApiKey:\n    secure: v1:c2FsdA==:key\n  memory-rollout:adminToken:\n    secure: v1:c2FsdA==:tok\n';

let dir: string;
let productionFile: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'exposure-promotion-'));
  productionFile = join(dir, 'Pulumi.production.yaml');
  copyFileSync(join(REPO, 'Pulumi.production.yaml'), productionFile);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeStagingReport(exposureReachedPercent: number): void {
  mkdirSync(join(dir, 'reports', 'staging'), { recursive: true });
  const summary = {
    schemaVersion: 1, stack: 'staging', deployId: COMMIT, serviceId: 'srv-1', outcome: 'promoted',
    startedAt: '2026-11-24T10:00:00Z', finishedAt: '2026-11-24T11:00:00Z', exposureReachedPercent,
  };
  writeFileSync(join(dir, 'reports', 'staging', 'report.json'), JSON.stringify({ summary }));
}

describe('promotion with the percentage the stepped canary reached', () => {
  it('pins the commit, the flag and the exposure ceiling in Pulumi.production.yaml, keeping every comment', () => {
    const before = readFileSync(productionFile, 'utf8');
    const result = promote('staging', COMMIT, productionFile, false, 25);
    expect(result).toMatchObject({ outcome: 'promoted', nextCommand: 'pulumi up -s production' });
    expect(result.detail).toContain(`${EXPOSURE_PERCENT_KEY}: 25`);
    expect(readStackConfig(productionFile, PINNED_COMMIT_KEY)).toBe(COMMIT);
    expect(readStackConfig(productionFile, FLAG_KEY)).toBe(true);
    expect(readStackConfig(productionFile, EXPOSURE_PERCENT_KEY)).toBe(25);

    const after = readFileSync(productionFile, 'utf8');
    for (const line of before.split('\n').filter((l) => l.trimStart().startsWith('#'))) expect(after).toContain(line);
    // Reviewable in git: the ceiling changes in place; the flag flips; only the pinned commit is a new line.
    const removed = before.split('\n').filter((l) => !after.split('\n').includes(l));
    const added = after.split('\n').filter((l) => !before.split('\n').includes(l));
    expect(removed.sort()).toEqual(['  memory-rollout:context7ExposurePercent: 100', '  memory-rollout:enableContext7Memory: false']);
    expect(added.sort()).toEqual([
      '  memory-rollout:context7ExposurePercent: 25',
      '  memory-rollout:enableContext7Memory: true',
      `  memory-rollout:pinnedCommit: ${COMMIT}`,
    ]);
  });

  it('lowers a ceiling an earlier promotion had set higher: the new commit was judged only that far', () => {
    setStackConfig(productionFile, { [EXPOSURE_PERCENT_KEY]: 100 });
    promote('staging', COMMIT, productionFile, false, 12.5);
    expect(readStackConfig(productionFile, EXPOSURE_PERCENT_KEY)).toBe(12.5);
  });

  it('leaves the ceiling alone for a run that judged the whole flag, and writes nothing on a dry run or a whole-flag production sign-off', () => {
    setStackConfig(productionFile, { [EXPOSURE_PERCENT_KEY]: 50 });
    promote('staging', COMMIT, productionFile, false);
    expect(readStackConfig(productionFile, EXPOSURE_PERCENT_KEY)).toBe(50);

    const before = readFileSync(productionFile, 'utf8');
    expect(promote('staging', 'f'.repeat(40), productionFile, true, 5).detail).toMatch(/^dry run: would write .*"memory-rollout:context7ExposurePercent":5/);
    expect(promote('production', COMMIT, productionFile, true, 100).detail).toMatch(/dry run: would write/);
    expect(promote('production', COMMIT, productionFile, false).outcome).toBe('signed_off');
    expect(readFileSync(productionFile, 'utf8')).toBe(before);
  });

  it('a stepped production sign-off pins the percentage it reached as production\'s ceiling (issue 25), as a promotion does', () => {
    setStackConfig(productionFile, { [EXPOSURE_PERCENT_KEY]: 5 });
    const result = promote('production', COMMIT, productionFile, false, 100);
    expect(result.outcome).toBe('signed_off');
    expect(result.detail).toContain(`${EXPOSURE_PERCENT_KEY}: 100`);
    expect(readStackConfig(productionFile, EXPOSURE_PERCENT_KEY)).toBe(100);
    // Nothing else: the flag and the commit are the promotion's.
    expect(readStackConfig(productionFile, PINNED_COMMIT_KEY)).toBeUndefined();
  });

  it('refuses a reached percentage that is not one, before writing anything', () => {
    const before = readFileSync(productionFile, 'utf8');
    for (const bad of [101, -5, 12.345, Number.NaN]) {
      expect(() => promote('staging', COMMIT, productionFile, false, bad), String(bad)).toThrow(/is not a percentage from 0 to 100 in steps of 0.01/);
    }
    expect(readFileSync(productionFile, 'utf8')).toBe(before);
    expect(promotionEntries(COMMIT)).toEqual({ [PINNED_COMMIT_KEY]: COMMIT, [FLAG_KEY]: true });
  });
});

describe('infra:check on the file the promotion wrote', () => {
  it('passes at the pinned percentage, refuses a hand edit above it, and passes again once lowered', () => {
    writeFileSync(productionFile, readFileSync(productionFile, 'utf8') + SECURE);
    writeStagingReport(25);
    promote('staging', COMMIT, productionFile, false, 25);
    const pinned = checkStack('production', dir);
    expect(pinned.ok).toBe(true);
    expect(pinned.lines.join('\n')).toContain('CONTEXT7_EXPOSURE_PERCENT=25 (the staging canary judged 25)');

    setStackConfig(productionFile, { [EXPOSURE_PERCENT_KEY]: 50 });
    const raised = checkStack('production', dir);
    expect(raised.ok).toBe(false);
    expect(raised.lines.join('\n')).toMatch(/context7ExposurePercent is 50 in production, above the 25% the staging canary reached and judged/);

    setStackConfig(productionFile, {
      'memory-rollout:context7ExposureOverridePercent': 50,
      'memory-rollout:context7ExposureOverrideReason': 'incident 4711, approved by alice',
    });
    const overridden = checkStack('production', dir);
    expect(overridden.ok).toBe(true);
    expect(overridden.lines.at(-1)).toMatch(/^WARNING: EXPOSURE OVERRIDE: .*reason: "incident 4711, approved by alice"/);

    setStackConfig(productionFile, { [EXPOSURE_PERCENT_KEY]: 5 });
    expect(checkStack('production', dir).ok).toBe(true);
  });
});
