import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CanaryState } from '../../canary/actions/state-file';
import { canaryRunArgs, waitFor, useE2eRig } from './support/e2e';

const e2e = useE2eRig();

describe('canary end to end: crash during rollback', () => {
  it('resumes the rollback after a crash and never rolls back twice', async () => {
    const { rig } = e2e;
    const statePath = join(rig.dir, 'state.json');
    const args = canaryRunArgs(rig, 'production', join(rig.dir, 'report'), statePath);
    const readState = (): CanaryState | undefined => (existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) : undefined);
    e2e.startTraffic();
    rig.context7.setFaults({ errorRate: 0.8 });

    // Crash right after the rollback deploy was triggered, before it is live.
    const first = e2e.runCanary(args);
    await waitFor('the rollback deploy to be recorded', () => readState()?.rollback?.renderDeployId, 60_000);
    first.child.kill('SIGKILL');
    expect(await first.exit).not.toBe(0);
    const crashed = readState()!;
    expect(crashed.phase).toBe('acting');
    expect(crashed.rollback?.verifiedAt).toBeUndefined();

    const second = e2e.runCanary(args);
    expect(await second.exit, second.output()).toBe(1);
    expect(second.output()).toContain('resuming from');
    const resumed = readState()!;
    expect(resumed).toMatchObject({ phase: 'done', outcome: 'rolled_back' });
    expect(resumed.rollback?.renderDeployId).toBe(crashed.rollback?.renderDeployId);
    expect(resumed.actions.filter((a) => a.action === 'set-env')).toHaveLength(1);
    expect(resumed.actions.filter((a) => a.action === 'trigger-deploy')).toHaveLength(1);

    // A third run after the finish: no action at all.
    const third = e2e.runCanary(args);
    expect(await third.exit).toBe(1);
    expect(third.output()).toContain('already finished');
    await e2e.stopTraffic();

    // Render saw exactly one rollback deploy: the service's first deploy plus one.
    const deploys = await rig.client.listDeploys(rig.serviceId);
    expect(deploys).toHaveLength(2);
    expect(deploys[0]!.status).toBe('live');
    expect(readState()!.actions.length).toBe(resumed.actions.length);
  }, 150_000);
});
