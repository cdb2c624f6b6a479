import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PINNED_COMMIT_KEY, FLAG_KEY, readStackConfig } from '../../canary/actions/stack-file';
import { canaryReportSummarySchema, stagingRunAuthorises } from '../../canary/report-summary';
import { canaryRunArgs, useE2eRig } from './support/e2e';

const e2e = useE2eRig();

describe('canary end to end: healthy staging', () => {
  it('promotes: pins the commit and turns the flag on in Pulumi.production.yaml, leaving the service alone', async () => {
    const { rig } = e2e;
    e2e.startTraffic();
    const reportDir = join(rig.dir, 'report');
    const productionBefore = readFileSync(join(rig.dir, 'Pulumi.production.yaml'), 'utf8');
    const canary = e2e.runCanary(canaryRunArgs(rig, 'staging', reportDir));
    const code = await canary.exit;
    await e2e.stopTraffic();
    // Precondition, so a starved machine fails clearly: zero errors only prove "< 5%" past ~74 calls.
    const calls = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')).steps.at(-1).cumulative.counts.context7Requests;
    expect(calls, 'Context7 calls driven by the traffic loop').toBeGreaterThan(100);
    expect(code, canary.output()).toBe(0);

    const live = (await rig.client.listDeploys(rig.serviceId))[0]!;
    const commit = live.commit!.id!;
    const production = join(rig.dir, 'Pulumi.production.yaml');
    expect(readStackConfig(production, PINNED_COMMIT_KEY)).toBe(commit);
    expect(readStackConfig(production, FLAG_KEY)).toBe(true);
    // Only those two entries changed; every comment survives.
    const after = readFileSync(production, 'utf8');
    for (const line of productionBefore.split('\n').filter((l) => l.startsWith('#'))) expect(after).toContain(line);
    // The staging stack and the service were not touched.
    expect(readStackConfig(join(rig.dir, 'Pulumi.staging.yaml'), FLAG_KEY)).toBe(true);
    expect(await rig.client.listDeploys(rig.serviceId)).toHaveLength(1);

    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8'));
    const summary = canaryReportSummarySchema.parse(report.summary);
    expect(summary).toMatchObject({ stack: 'staging', outcome: 'promoted', deployId: commit });
    expect(stagingRunAuthorises(summary, commit)).toBe(true);
    expect(report.checkpoints.at(-1)).toMatchObject({ name: 'success criteria', outcome: 'pass' });
    expect(canary.output()).toContain('pulumi up -s production');
    expect(readFileSync(join(reportDir, 'signoff.md'), 'utf8')).toContain('**Rollback Needed**: NO');
    // The CLI recorded what it ran against: --render-api-url, the emulator's local platform on loopback.
    const emulatorOrigin = new URL(rig.render.url).origin;
    expect(report.measuredOn).toEqual({ kind: 'emulator', apiUrl: rig.render.url.replace(/\/+$/, ''), label: `emulator (local platform at ${emulatorOrigin})` });
    expect(readFileSync(join(reportDir, 'signoff.md'), 'utf8')).toContain(`**Measured Against**: emulator (local platform at ${emulatorOrigin})`);
    expect(canary.output()).toContain(`measured against: emulator (local platform at ${emulatorOrigin})`);
  }, 120_000);
});
