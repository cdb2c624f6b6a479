import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readStackConfig } from '../../canary/actions/stack-file';
import { canaryReportSummarySchema } from '../../canary/report-summary';
import { canaryRunArgs, waitFor, useE2eRig } from './support/e2e';

const e2e = useE2eRig();

describe('canary end to end: Context7 failing', () => {
  it('rolls back through Render, the service restarts with the flag off, and verification passes', async () => {
    const { rig } = e2e;
    e2e.startTraffic();
    rig.context7.setFaults({ errorRate: 0.8 });
    const reportDir = join(rig.dir, 'report');
    const canary = e2e.runCanary(canaryRunArgs(rig, 'production', reportDir));
    const code = await canary.exit;
    const stats = (await e2e.stopTraffic())!;
    const output = canary.output();
    expect(code, output).toBe(1);
    expect(stats.sent).toBeGreaterThan(50);

    // Render: the flag is off and a second deploy (the rollback) is live.
    const env = await rig.client.listEnvVars(rig.serviceId);
    expect(env.find((v) => v.key === 'ENABLE_CONTEXT7_MEMORY')?.value).toBe('false');
    const deploys = await rig.client.listDeploys(rig.serviceId);
    expect(deploys).toHaveLength(2);
    expect(deploys[0]!.status).toBe('live');

    // The restarted service answers the runbook's way.
    const config = await (await fetch(`${rig.serviceUrl}/api/config`)).json();
    expect(config).toMatchObject({ enableContext7Memory: false });
    const health = await (await fetch(`${rig.serviceUrl}/api/memory/health`)).json();
    expect(health).toEqual({ available: false, reason: 'Context7 disabled in environment' });

    // The latch, keeping the file's comments.
    const stackFile = join(rig.dir, 'Pulumi.production.yaml');
    expect(readStackConfig(stackFile, 'memory-rollout:enableContext7Memory')).toBe(false);
    expect(readFileSync(stackFile, 'utf8')).toContain('# Production: at least two instances');

    // Reports: the summary infra reads, every verification check passed, sign-off says YES.
    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8'));
    expect(canaryReportSummarySchema.parse(report.summary)).toMatchObject({ stack: 'production', outcome: 'rolled_back', serviceId: rig.serviceId });
    expect(report.decision.kind).toBe('rollback');
    const verifications = report.actions.filter((a: { action: string }) => a.action === 'verify');
    expect(verifications.length).toBe(4);
    expect(verifications.every((a: { ok: boolean }) => a.ok)).toBe(true);
    expect(readFileSync(join(reportDir, 'signoff.md'), 'utf8')).toContain('**Rollback Needed**: YES');
    expect(existsSync(join(reportDir, 'report.html'))).toBe(true);

    // The Render key never shows up in anything the canary wrote or printed.
    for (const text of [output, readFileSync(join(reportDir, 'report.json'), 'utf8'), readFileSync(join(rig.dir, 'state.json'), 'utf8')]) {
      expect(text).not.toContain(rig.renderApiKey);
    }
  }, 120_000);
});
