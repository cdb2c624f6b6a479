/**
 * The stepped canary's options for a run on a fake clock against a FakeExposureService, served in process: the
 * one rig the stepped controller, operator-command and replay tests share. Each test supplies its clock and what
 * it varies (Render, the notifier, the state path); the rest is the same everywhere.
 */
import { join } from 'node:path';
import type { RenderPort } from '../../../canary/actions/rollback';
import { StateFile } from '../../../canary/actions/state-file';
import type { Notifier } from '../../../canary/actions/webhook';
import { analyzeStep } from '../../../canary/exposure/analyze-step';
import type { SteppedPolicy, SteppedRunOptions } from '../../../canary/exposure/stepped-controller';
import { silentProgress } from '../../../canary/progress';
import { createExposureAdmin } from '../../../canary/sources/exposure-admin';
import { createHttpMetricSource } from '../../../canary/sources/metrics-poller';
import type { FakeExposureService } from './fake-exposure-service';
import { IN_PROCESS_RENDER } from '../../../render/platform';

export interface FakeClockRun {
  policy: SteppedPolicy;
  service: FakeExposureService;
  dir: string;
  baseUrl: string;
  adminToken: string;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  render: RenderPort;
  notifier: Notifier;
  operator: string;
  stack?: 'staging' | 'production';
  statePath?: string;
}

export function steppedOptions(run: FakeClockRun): SteppedRunOptions {
  const { policy, service, baseUrl, now, sleep } = run;
  return {
    policy,
    stack: run.stack ?? 'staging',
    baseUrl,
    serviceId: 'srv-1',
    source: createHttpMetricSource({ baseUrl, policy, probe: service.probe }),
    stateFile: new StateFile(run.statePath ?? join(run.dir, 'state.json')),
    stackDir: run.dir,
    reportDir: join(run.dir, 'report'),
    timeScale: 60,
    dryRun: false,
    render: run.render,
    measuredOn: IN_PROCESS_RENDER,
    notifier: run.notifier,
    probe: service.probe,
    progress: silentProgress,
    operator: run.operator,
    exposure: createExposureAdmin({ baseUrl, adminToken: run.adminToken, probe: service.probe, timeoutMs: 1000, pollMs: 100, now, sleep }),
    analyzeStep,
    applyTimeoutMs: 10_000,
    now,
    sleep,
  };
}

/**
 * Render as the stepped tests see it: every call recorded in `calls`, the flag applied to the fake service, a
 * deploy live after 30 s of the test's clock. With `liveCommit`, Render also lists that commit live (a resumed
 * run checks it before acting).
 */
export function recordingRender(service: FakeExposureService, calls: string[], advance: (ms: number) => void, liveCommit?: string): RenderPort {
  return {
    ...(liveCommit ? { listDeploys: async () => [{ id: 'dep-live', status: 'live', commit: { id: liveCommit } }] } : {}),
    async setEnvVar(_id, key, value) {
      calls.push(`setEnvVar ${key}=${value}`);
      if (key === 'ENABLE_CONTEXT7_MEMORY') service.flagOn = value === 'true';
    },
    async triggerDeploy(_id, options) {
      calls.push(`triggerDeploy ${options?.commitId ?? ''}`);
      return { id: 'dep-rollback', status: 'created' };
    },
    async waitForDeploy(_id, deployId) {
      calls.push(`waitForDeploy ${deployId}`);
      advance(30_000);
      return { status: 'live' };
    },
  };
}
