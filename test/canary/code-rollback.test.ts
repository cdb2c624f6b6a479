import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { executeRollbackSteps, planCodeRollback } from '../../canary/actions/code-rollback';
import type { ListedDeploy, RenderPort } from '../../canary/actions/rollback';
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig } from '../../canary/actions/stack-file';
import { type CanaryState, StateFile } from '../../canary/actions/state-file';
import type { Notifier } from '../../canary/actions/webhook';
import type { Probe } from '../../canary/analysis';
import { zeroCounts } from '../../canary/analysis/counters';
import { runCanary, type CanaryRunOptions } from '../../canary/controller';
import { loadPolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import type { HttpProbe } from '../../canary/sources/http';
import { IN_PROCESS_RENDER } from '../../render/platform';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(__dirname, 'fixtures/e2e-policy.yaml'));
/** The commit this rollout deployed (with the flag on), and the one live before it. */
const NEW = 'a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2';
const OLD = '9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e';

/**
 * A memory service whose behaviour depends on the flag AND on the commit it runs: with the flag on,
 * Context7 fails (errorShare); a broken commit fails memory reads (fallbacks, snippets 500) whatever the flag.
 */
class FakeService {
  flag = true;
  commit = NEW;
  errorShare = 0.4;
  brokenCommits = new Set<string>();
  private counts = zeroCounts();
  private lastSeconds = 0;

  private get broken() {
    return this.brokenCommits.has(this.commit);
  }

  advance(atSeconds: number) {
    const seconds = atSeconds - this.lastSeconds;
    this.lastSeconds = atSeconds;
    if (seconds <= 0) return;
    const reads = seconds * 20;
    const c = this.counts;
    c.requests += reads;
    if (this.broken) c.fallbacks += reads / 2;
    if (!this.flag) return;
    const calls = reads / 2;
    const errors = Math.round(calls * this.errorShare);
    c.cacheHits += reads - calls;
    c.cacheMisses += calls;
    c.context7Requests += calls;
    c.context7Errors += errors;
    c.fallbacks += errors;
    c.latencyMsSum += calls * 80;
    c.latencyCount += calls;
  }

  metrics(): Probe {
    const c = this.counts;
    // The verification watch polls without measuring: a broken commit keeps falling back meanwhile.
    if (this.broken) {
      c.requests += 10;
      c.fallbacks += 5;
    }
    const r = (k: number, n: number) => (n ? k / n : 0);
    return {
      status: 200,
      body: {
        errorRate: r(c.context7Errors, c.context7Requests), errorRatePercent: 100 * r(c.context7Errors, c.context7Requests),
        fallbackRate: r(c.fallbacks, c.requests), fallbackRatePercent: 100 * r(c.fallbacks, c.requests),
        avgLatency: r(c.latencyMsSum, c.latencyCount), p95Latency: 0,
        cacheHitRate: r(c.cacheHits, c.cacheHits + c.cacheMisses), cacheHitRatePercent: 100 * r(c.cacheHits, c.cacheHits + c.cacheMisses),
        context7Requests: c.context7Requests,
        errorsByType: { network: 0, timeout: 0, api_error: c.context7Errors, rate_limited: 0 },
        cache: { hits: c.cacheHits, misses: c.cacheMisses, size: 3, ttlMs: 1000 },
        instanceId: 'srv-1', deployId: this.commit, startedAt: '2026-11-20T10:00:00.000Z', totals: { ...c },
      },
    };
  }

  readonly probe: HttpProbe = async (url, options) => {
    const path = new URL(url).pathname;
    if (path === '/api/metrics/memory') return this.metrics();
    if (path === '/api/config') return { status: 200, body: { enableContext7Memory: this.flag, context7Available: this.flag } };
    if (path === '/api/memory/health') {
      return { status: 200, body: this.flag ? { available: true, provider: 'context7' } : { available: false, reason: 'Context7 disabled in environment' } };
    }
    if (path === '/api/memory/snippets' && options.method === 'POST') {
      return this.broken ? { status: 500, body: { error: 'store unavailable' } } : { status: 200, body: { snippets: [], source: 'disabled' } };
    }
    return { status: 404, body: { error: 'not found' } };
  };
}

interface FakeDeploy extends ListedDeploy {
  id: string;
  commit: { id: string };
  /** ENABLE_CONTEXT7_MEMORY this deploy runs with (a rollback reuses its target's, as on Render) */
  flag: boolean;
}

/** Render as the canary sees it: env var, deploys (newest first), rollback; a live deploy runs on `service`. */
class FakeRender implements RenderPort {
  calls: string[] = [];
  envFlag = true;
  deploys: FakeDeploy[];

  constructor(private readonly onLive: (deploy: FakeDeploy) => void, deploys: FakeDeploy[]) {
    this.deploys = deploys;
  }

  async setEnvVar(_id: string, key: string, value: string) {
    this.calls.push(`setEnvVar ${key}=${value}`);
    this.envFlag = value === 'true';
  }

  async triggerDeploy(_id: string, options?: { commitId?: string }) {
    this.calls.push(`triggerDeploy ${options?.commitId ?? ''}`);
    return this.add({ commit: { id: options?.commitId ?? NEW }, flag: this.envFlag, trigger: 'api' });
  }

  async rollbackDeploy(_id: string, deployId: string) {
    this.calls.push(`rollbackDeploy ${deployId}`);
    const target = this.deploys.find((d) => d.id === deployId);
    if (!target) throw new Error('404 deploy not found');
    return this.add({ commit: { ...target.commit }, flag: target.flag, trigger: 'rollback' });
  }

  async waitForDeploy(_id: string, deployId: string) {
    this.calls.push(`waitForDeploy ${deployId}`);
    const deploy = this.deploys.find((d) => d.id === deployId)!;
    for (const other of this.deploys) if (other.status === 'live') other.status = 'deactivated';
    deploy.status = 'live';
    this.onLive(deploy);
    return { status: 'live' };
  }

  async listDeploys() {
    this.calls.push('listDeploys');
    return structuredClone(this.deploys);
  }

  private add(fields: Omit<FakeDeploy, 'id' | 'status'>): FakeDeploy {
    const deploy: FakeDeploy = { id: `dep-${this.deploys.length + 1}`, status: 'created', ...fields };
    this.deploys.unshift(deploy);
    return structuredClone(deploy);
  }
}

let dir: string;
let service: FakeService;
let render: FakeRender;
let now: number;
let notifications: string[];

/** The rollout under test: `previousCommit` was live (flag off), then this rollout deployed NEW with the flag on. */
function rollout(previousCommit: string, previousFlag = false) {
  render = new FakeRender(
    (deploy) => {
      service.commit = deploy.commit.id;
      service.flag = deploy.flag;
      now += 3000;
    },
    [
      { id: 'dep-2', status: 'live', trigger: 'api', commit: { id: NEW }, flag: true },
      { id: 'dep-1', status: 'deactivated', trigger: 'api', commit: { id: previousCommit }, flag: previousFlag },
    ],
  );
}

const notifier: Notifier = {
  async notify(event, text) {
    notifications.push(`${event}: ${text}`);
  },
};

function options(overrides: Partial<CanaryRunOptions> = {}): CanaryRunOptions {
  return {
    policy,
    stack: 'production',
    baseUrl: 'http://127.0.0.1:9',
    serviceId: 'srv-1',
    source: {
      measure: async (atSeconds) => {
        service.advance(atSeconds);
        const p = service.probe;
        return { atSeconds, samples: [await p('http://x/api/metrics/memory', { timeoutMs: 1 })], health: await p('http://x/api/memory/health', { timeoutMs: 1 }), config: await p('http://x/api/config', { timeoutMs: 1 }) };
      },
    },
    stateFile: new StateFile(join(dir, 'state.json')),
    stackDir: dir,
    reportDir: join(dir, 'report'),
    timeScale: 60,
    dryRun: false,
    render,
    measuredOn: IN_PROCESS_RENDER,
    notifier,
    probe: service.probe,
    progress: silentProgress,
    operator: 'code-rollback-test',
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    ...overrides,
  };
}

function reportActions(result: { reportPaths: { json: string } }): Array<{ action: string; ok: boolean; detail: string }> {
  return JSON.parse(readFileSync(result.reportPaths.json, 'utf8')).actions;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'canary-code-rollback-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  service = new FakeService();
  now = Date.parse('2026-11-20T10:00:00.000Z');
  notifications = [];
  rollout(OLD);
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('rollback when turning the flag off does not fix it', () => {
  it('a fault fixed by the flag alone: flag rollback only, no code rollback (exit 1)', async () => {
    const pinnedBefore = readStackConfig(join(dir, 'Pulumi.production.yaml'), PINNED_COMMIT_KEY);
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(render.calls).toEqual(['setEnvVar ENABLE_CONTEXT7_MEMORY=false', 'listDeploys', `triggerDeploy ${NEW}`, 'waitForDeploy dep-3']);
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), PINNED_COMMIT_KEY)).toBe(pinnedBefore);
    const steps = reportActions(result).filter((a) => a.action.endsWith('rollback'));
    expect(steps).toEqual([expect.objectContaining({ action: 'flag-rollback', ok: true })]);
    expect(result.state.codeRollback).toBeUndefined();
    expect(readFileSync(result.reportPaths.signoff, 'utf8')).toMatch(/\*\*Rollback Steps\*\*: flag-rollback \(ok\): fixed by the flag alone/);
  });

  it('a fault in the code: flag rollback, verification fails, code rollback to the previous deploy, verified (exit 1), pinnedCommit reverted', async () => {
    service.brokenCommits.add(NEW);
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(render.calls).toEqual([
      'setEnvVar ENABLE_CONTEXT7_MEMORY=false', 'listDeploys', `triggerDeploy ${NEW}`, 'waitForDeploy dep-3',
      'listDeploys', // the plan: did the analysed deploy change the commit?
      'listDeploys', 'rollbackDeploy dep-1', 'waitForDeploy dep-4',
    ]);
    expect(service).toMatchObject({ commit: OLD, flag: false });
    const production = join(dir, 'Pulumi.production.yaml');
    expect(readStackConfig(production, PINNED_COMMIT_KEY)).toBe(OLD);
    expect(readStackConfig(production, FLAG_KEY)).toBe(false);

    const actions = reportActions(result);
    expect(actions.filter((a) => a.action.endsWith('rollback'))).toEqual([
      expect.objectContaining({ action: 'flag-rollback', ok: false, detail: expect.stringContaining('the fault persists') }),
      expect.objectContaining({ action: 'code-rollback', ok: true, detail: expect.stringContaining(`code rolled back to ${OLD}`) }),
    ]);
    // The second verification passed after a first that failed.
    expect(actions.filter((a) => a.action === 'verify' && !a.ok).length).toBeGreaterThan(0);
    expect(actions.at(-1)).toMatchObject({ action: 'code-rollback', ok: true });
    expect(result.state.codeRollback).toMatchObject({ plan: { kind: 'roll_back', targetDeployId: 'dep-1', targetCommit: OLD }, rollbackDeploy: { deployId: 'dep-4' } });
    expect(result.state.codeRollback?.verifiedAt).toEqual(expect.any(String));
    expect(notifications).toEqual([expect.stringMatching(/^rollback: .*code rolled back to/)]);
    expect(readFileSync(result.reportPaths.signoff, 'utf8')).toMatch(/\*\*Rollback Steps\*\*: flag-rollback \(not ok\): .*; code-rollback \(ok\): code rolled back to/);
    expect(readFileSync(result.reportPaths.html, 'utf8')).toMatch(/<h2>Rollback steps<\/h2>[\s\S]*<b>code-rollback<\/b> ok: code rolled back to/);
  });

  it('keeps the flag off when the deploy rolled back to ran with it on: the commit is redeployed with the current env vars', async () => {
    rollout(OLD, true);
    service.brokenCommits.add(NEW);
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(render.calls.slice(-5)).toEqual(['rollbackDeploy dep-1', 'waitForDeploy dep-4', 'listDeploys', `triggerDeploy ${OLD}`, 'waitForDeploy dep-5']);
    expect(service).toMatchObject({ commit: OLD, flag: false });
    expect(result.state.actions.find((a) => a.action === 'flag-check')).toMatchObject({ ok: false, detail: expect.stringContaining('target deploy') });
  });

  it('a flag-only rollout (same commit as the deploy before): the fault persisting is exit 4, the code was not changed by this rollout', async () => {
    rollout(NEW);
    service.brokenCommits.add(NEW);
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rollback_unverified', exitCode: 4 });
    expect(render.calls.some((c) => c.startsWith('rollbackDeploy'))).toBe(false);
    expect(result.state.actions.find((a) => a.action === 'code-rollback')).toMatchObject({ ok: false, detail: expect.stringContaining('the code was not changed by this rollout') });
    expect(notifications).toEqual([expect.stringMatching(/^rollback_unverified: .*the code was not changed by this rollout/)]);
  });

  it('a code rollback that does not fix it either is exit 4', async () => {
    service.brokenCommits.add(NEW);
    service.brokenCommits.add(OLD);
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rollback_unverified', exitCode: 4 });
    expect(render.calls).toContain('rollbackDeploy dep-1');
    expect(result.state.actions.at(-1)).toMatchObject({ action: 'code-rollback', ok: false, detail: expect.stringContaining('the fault persists') });
    // The stack file still matches what is live.
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), PINNED_COMMIT_KEY)).toBe(OLD);
  });

  it('staging follows its branch head: the code is rolled back on Render, the stack file is not pinned', async () => {
    service.brokenCommits.add(NEW);
    const staging = join(dir, 'Pulumi.staging.yaml');
    const pinnedBefore = readStackConfig(staging, PINNED_COMMIT_KEY);
    expect(pinnedBefore).toBeUndefined();
    const result = await runCanary(options({ stack: 'staging' }));
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(readStackConfig(staging, PINNED_COMMIT_KEY)).toBeUndefined();
    expect(readStackConfig(staging, FLAG_KEY)).toBe(false);
    expect(result.state.actions.find((a) => a.action === 'pin-commit')).toMatchObject({ ok: true, detail: expect.stringContaining('follows its branch head') });
  });
});

describe('code rollback across a crash', () => {
  it('adopts the rollback a crashed run requested but never recorded, instead of requesting a second one', async () => {
    service.brokenCommits.add(NEW);
    const stateFile = new StateFile(join(dir, 'state.json'));
    // The process dies the moment Render has accepted the rollback: the deploy exists, its id is never
    // saved. Simulated by saving nothing from then on (the state file is what the rerun sees).
    let crashed = false;
    const rollbackDeploy = render.rollbackDeploy.bind(render);
    render.rollbackDeploy = async (id, deployId) => {
      const deploy = await rollbackDeploy(id, deployId);
      crashed = true;
      return deploy;
    };
    await runCanary(options({ stateFile: { path: stateFile.path, load: () => stateFile.load(), save: (s) => crashed || stateFile.save(s) } }));
    const onDisk = stateFile.load()!;
    expect(onDisk.phase).toBe('acting');
    expect(onDisk.codeRollback?.rollbackDeploy).toMatchObject({ requestedAt: expect.any(String), deploysBefore: ['dep-3', 'dep-2', 'dep-1'] });
    expect(onDisk.codeRollback?.rollbackDeploy?.deployId).toBeUndefined();
    expect(render.deploys.map((d) => d.id)).toEqual(['dep-4', 'dep-3', 'dep-2', 'dep-1']);

    render.calls = [];
    render.rollbackDeploy = rollbackDeploy;
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    // The first listing is the resume's check of the live deploy (canary/actions/state-binding.ts).
    expect(render.calls).toEqual(['listDeploys', 'listDeploys', 'waitForDeploy dep-4']);
    expect(result.state.actions.find((a) => a.action === 'code-rollback-deploy-adopted')).toMatchObject({ ok: true, detail: expect.stringContaining('dep-4') });
    // The flag rollback is not repeated either.
    expect(result.state.actions.filter((a) => a.action === 'flag-rollback')).toHaveLength(1);
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), PINNED_COMMIT_KEY)).toBe(OLD);
  });

  it('requests the rollback again when the crashed request never reached Render', async () => {
    const state: CanaryState = {
      version: 1, stack: 'production', baseUrl: 'http://127.0.0.1:9', serviceId: 'srv-1', deployId: NEW,
      startedAtMs: 0, startedAt: '2026-11-20T10:00:00.000Z', measurements: [], phase: 'acting', actions: [],
      rollback: { envSetAt: 't', renderDeployId: 'dep-2', deployLiveAt: 't', latchedAt: 't', verificationFailed: 'watch' },
      codeRollback: {
        faultPersistedAt: 't',
        plan: { kind: 'roll_back', detail: 'x', analysedDeployId: 'dep-2', targetDeployId: 'dep-1', targetCommit: OLD },
        rollbackDeploy: { deploysBefore: ['dep-2', 'dep-1'], requestedAt: 't' },
      },
    };
    const result = await executeRollbackSteps({
      stack: 'production', readFlag: async () => false, state, save: () => {}, render, serviceId: 'srv-1',
      stackFile: join(dir, 'Pulumi.production.yaml'), deployTimeoutMs: 1000, deployPollMs: 10,
      verify: async () => ({ ok: true, checks: [] }),
      record: (action, ok, detail) => state.actions.push({ at: 't', action, ok, detail }),
      now: () => new Date(now),
    });
    expect(result.verified).toBe(true);
    expect(render.calls).toEqual(['listDeploys', 'listDeploys', 'rollbackDeploy dep-1', 'waitForDeploy dep-3']);
  });
});

describe('planCodeRollback (pure)', () => {
  const d = (id: string, commit: string, status = 'deactivated'): ListedDeploy => ({ id, status, commit: { id: commit } });

  it('targets the deploy live before the analysed one, skipping our flag-off deploy and failed deploys', () => {
    const plan = planCodeRollback([d('dep-5', NEW, 'live'), d('dep-4', NEW), d('dep-3', 'b'.repeat(40), 'build_failed'), d('dep-2', OLD), d('dep-1', 'c'.repeat(40))], NEW, 'dep-5');
    expect(plan).toMatchObject({ kind: 'roll_back', analysedDeployId: 'dep-4', targetDeployId: 'dep-2', targetCommit: OLD });
  });

  it('matches an abbreviated commit, and tells a flag-only rollout and an unknown history apart', () => {
    expect(planCodeRollback([d('dep-3', NEW, 'live'), d('dep-2', NEW), d('dep-1', OLD)], NEW.slice(0, 12), 'dep-3')).toMatchObject({ kind: 'roll_back', targetDeployId: 'dep-1' });
    expect(planCodeRollback([d('dep-3', NEW, 'live'), d('dep-2', NEW), d('dep-1', NEW)], NEW, 'dep-3')).toMatchObject({ kind: 'same_commit' });
    expect(planCodeRollback([d('dep-2', NEW, 'live'), d('dep-1', NEW)], NEW, 'dep-2')).toMatchObject({ kind: 'unknown', detail: expect.stringContaining('nothing to roll back to') });
    expect(planCodeRollback([d('dep-1', OLD, 'live')], 'unknown', undefined)).toMatchObject({ kind: 'unknown' });
    expect(planCodeRollback([d('dep-2', NEW, 'live'), d('dep-1', OLD)], NEW, 'dep-9')).toMatchObject({ kind: 'unknown', detail: expect.stringContaining('dep-9') });
  });
});
