import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CanaryState } from '../../canary/actions/state-file';
import { E2E_POLICY, runCanaryCli, startRig, startTraffic, waitFor, type CanaryProcess, type E2eRig } from './support/e2e';

let rig: E2eRig;
let traffic: ReturnType<typeof startTraffic> | undefined;
const started: CanaryProcess[] = [];

beforeAll(async () => {
  rig = await startRig();
}, 60_000);

afterEach(async () => {
  // Stop the load first, also when an assertion failed midway.
  await traffic?.stop();
  traffic = undefined;
  for (const canary of started) if (canary.child.exitCode === null) canary.child.kill('SIGKILL');
});

afterAll(async () => {
  await rig?.close();
});

describe('canary end to end: crash during rollback', () => {
  it('resumes the rollback after a crash and never rolls back twice', async () => {
    const statePath = join(rig.dir, 'state.json');
    const args = [
      '--base-url', rig.serviceUrl,
      '--stack', 'production',
      '--policy', E2E_POLICY,
      '--render-api-url', rig.render.url,
      '--render-service-id', rig.serviceId,
      '--state-file', statePath,
      '--report-dir', join(rig.dir, 'report'),
      '--stack-dir', rig.dir,
      '--time-scale', '60',
    ];
    const readState = (): CanaryState | undefined => (existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) : undefined);
    traffic = startTraffic(() => rig.serviceUrl);
    rig.context7.setFaults({ errorRate: 0.8 });

    // Crash right after the rollback deploy was triggered, before it is live.
    const first = runCanaryCli(args, rig.renderApiKey);
    started.push(first);
    await waitFor('the rollback deploy to be recorded', () => readState()?.rollback?.renderDeployId, 60_000);
    first.child.kill('SIGKILL');
    expect(await first.exit).not.toBe(0);
    const crashed = readState()!;
    expect(crashed.phase).toBe('acting');
    expect(crashed.rollback?.verifiedAt).toBeUndefined();

    const second = runCanaryCli(args, rig.renderApiKey);
    started.push(second);
    expect(await second.exit, second.output()).toBe(1);
    expect(second.output()).toContain('resuming from');
    const resumed = readState()!;
    expect(resumed).toMatchObject({ phase: 'done', outcome: 'rolled_back' });
    expect(resumed.rollback?.renderDeployId).toBe(crashed.rollback?.renderDeployId);
    expect(resumed.actions.filter((a) => a.action === 'set-env')).toHaveLength(1);
    expect(resumed.actions.filter((a) => a.action === 'trigger-deploy')).toHaveLength(1);

    // A third run after the finish: no action at all.
    const third = runCanaryCli(args, rig.renderApiKey);
    started.push(third);
    expect(await third.exit).toBe(1);
    expect(third.output()).toContain('already finished');
    await traffic.stop();
    traffic = undefined;

    // Render saw exactly one rollback deploy: the service's first deploy plus one.
    const deploys = await rig.client.listDeploys(rig.serviceId);
    expect(deploys).toHaveLength(2);
    expect(deploys[0]!.status).toBe('live');
    expect(readState()!.actions.length).toBe(resumed.actions.length);
  }, 150_000);
});
