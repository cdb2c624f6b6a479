import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { executeRollback, type RenderPort } from '../../canary/actions/rollback';
import { FLAG_KEY, readStackConfig } from '../../canary/actions/stack-file';
import type { CanaryState } from '../../canary/actions/state-file';

const REPO = join(__dirname, '../..');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'canary-rollback-'));
  copyFileSync(join(REPO, 'Pulumi.production.yaml'), join(dir, 'Pulumi.production.yaml'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function baseState(rollback: CanaryState['rollback']): CanaryState {
  return {
    version: 1, stack: 'production', baseUrl: 'http://127.0.0.1:9', serviceId: 'srv-1', deployId: 'a1b2c3d4e5f6',
    startedAtMs: 0, startedAt: '2026-11-20T10:00:00.000Z', measurements: [], phase: 'acting', actions: [],
    ...(rollback ? { rollback } : {}),
  };
}

/** A Render whose deploy list is newest first; triggering prepends a new deploy. */
function fakeRender(existing: string[], calls: string[], options: { listFails?: boolean } = {}): RenderPort {
  const deploys = [...existing];
  return {
    async setEnvVar(_id, key, value) {
      calls.push(`setEnvVar ${key}=${value}`);
    },
    async triggerDeploy() {
      const id = `dep-${deploys.length}`;
      deploys.unshift(id);
      calls.push(`triggerDeploy -> ${id}`);
      return { id, status: 'created' };
    },
    async waitForDeploy(_id, deployId) {
      calls.push(`waitForDeploy ${deployId}`);
      return { status: 'live' };
    },
    async listDeploys() {
      if (options.listFails) throw new Error('Render answered 503');
      return deploys.map((id) => ({ id }));
    },
  };
}

function run(state: CanaryState, render: RenderPort, saves: CanaryState[] = []) {
  return executeRollback({
    state,
    save: () => saves.push(structuredClone(state)),
    render,
    serviceId: 'srv-1',
    stackFile: join(dir, 'Pulumi.production.yaml'),
    deployTimeoutMs: 1000,
    deployPollMs: 10,
    verify: async () => ({ ok: true, checks: [{ name: 'all', ok: true, detail: 'ok' }] }),
    record: (action, ok, detail) => state.actions.push({ at: '2026-11-20T10:10:00.000Z', action, ok, detail }),
    now: () => new Date('2026-11-20T10:10:00.000Z'),
  });
}

describe('rollback across a crash', () => {
  it('saves the deploys it saw before requesting one, before it requests it', async () => {
    const calls: string[] = [];
    const saves: CanaryState[] = [];
    const state = baseState(undefined);
    expect(await run(state, fakeRender(['dep-0'], calls), saves)).toMatchObject({ verified: true });
    expect(calls).toEqual(['setEnvVar ENABLE_CONTEXT7_MEMORY=false', 'triggerDeploy -> dep-1', 'waitForDeploy dep-1']);
    // What a crash right after Render accepted the deploy would leave on disk.
    expect(saves.find((s) => s.rollback?.deployRequestedAt && !s.rollback.renderDeployId)?.rollback).toMatchObject({ deploysBefore: ['dep-0'] });
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), FLAG_KEY)).toBe(false);
  });

  it('finds the deploy a crashed run requested but never recorded, instead of deploying twice', async () => {
    const calls: string[] = [];
    // Render accepted dep-1; the run died before saving its id.
    const state = baseState({ envSetAt: '2026-11-20T10:09:00.000Z', deploysBefore: ['dep-0'], deployRequestedAt: '2026-11-20T10:09:01.000Z' });
    const result = await run(state, fakeRender(['dep-1', 'dep-0'], calls));
    expect(result).toMatchObject({ verified: true });
    expect(calls).toEqual(['waitForDeploy dep-1']);
    expect(state.rollback?.renderDeployId).toBe('dep-1');
    expect(state.actions.map((a) => a.action)).toContain('adopt-deploy');
  });

  it('deploys again when the crashed request never reached Render', async () => {
    const calls: string[] = [];
    const state = baseState({ envSetAt: '2026-11-20T10:09:00.000Z', deploysBefore: ['dep-0'], deployRequestedAt: '2026-11-20T10:09:01.000Z' });
    await run(state, fakeRender(['dep-0'], calls));
    expect(calls).toEqual(['triggerDeploy -> dep-1', 'waitForDeploy dep-1']);
  });

  it('still rolls back when Render cannot list deploys', async () => {
    const calls: string[] = [];
    const state = baseState(undefined);
    expect(await run(state, fakeRender(['dep-0'], calls, { listFails: true }))).toMatchObject({ verified: true });
    expect(calls).toEqual(['setEnvVar ENABLE_CONTEXT7_MEMORY=false', 'triggerDeploy -> dep-1', 'waitForDeploy dep-1']);
    expect(state.actions.find((a) => a.action === 'list-deploys')).toMatchObject({ ok: false });
  });
});
