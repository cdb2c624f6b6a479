import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXPOSURE_PERCENT_KEY, FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig, setStackConfig } from '../../canary/actions/stack-file';
import { InMemoryState, StateFile } from '../../canary/actions/state-file';
import type { Notifier } from '../../canary/actions/webhook';
import type { RenderPort } from '../../canary/actions/rollback';
import { runCanary, type CanaryRunOptions } from '../../canary/controller';
import { loadPolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import type { Probe } from '../../canary/analysis';
import type { HttpProbe } from '../../canary/sources/http';
import { zeroCounts } from '../../canary/analysis/counters';
import { IN_PROCESS_RENDER } from '../../render/platform';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(__dirname, 'fixtures/e2e-policy.yaml'));
const COMMIT = 'a1b2c3d4e5f6';

/** A simulated memory service: counters grow with policy time; the flag and faults are switchable. */
class FakeService {
  flag = true;
  errorShare = 0.01;
  /** share of store-bound reads the local store fails (answered 503: not a fallback) */
  storeErrorShare = 0;
  metricsBroken = false;
  readsPerSecond = 20;
  private counts = zeroCounts();
  private lastSeconds = 0;

  advance(atSeconds: number) {
    const seconds = atSeconds - this.lastSeconds;
    this.lastSeconds = atSeconds;
    if (!this.flag || seconds <= 0) return;
    const reads = Math.round(seconds * this.readsPerSecond);
    const calls = Math.round(reads / 2);
    const errors = Math.round(calls * this.errorShare);
    const storeErrors = Math.round(calls * this.storeErrorShare);
    const c = this.counts;
    c.requests += reads;
    c.cacheHits += reads - calls;
    c.cacheMisses += calls;
    c.context7Requests += calls;
    c.context7Errors += errors;
    // A read the store failed is a 503, not a fallback, even when Context7 failed too.
    c.fallbacks += Math.round((calls - storeErrors) * this.errorShare);
    c.storeRequests += calls;
    c.storeErrors += storeErrors;
    c.latencyMsSum += calls * 80;
    c.latencyCount += calls;
  }

  metrics(): Probe {
    if (this.metricsBroken) return { status: 500, body: { error: 'boom' } };
    const c = this.counts;
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
        instanceId: 'srv-1', deployId: COMMIT, startedAt: '2026-11-20T10:00:00.000Z', totals: { ...c },
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
    if (path === '/api/memory/snippets' && options.method === 'POST') return { status: 200, body: { snippets: [], source: 'disabled' } };
    return { status: 404, body: { error: 'not found' } };
  };
}

let dir: string;
let service: FakeService;
let now: number;
let renderCalls: string[];
let notifications: string[];

function fakeRender(fail = false): RenderPort {
  return {
    async setEnvVar(_id, key, value) {
      renderCalls.push(`setEnvVar ${key}=${value}`);
      if (fail) throw new Error('Render answered 503');
      service.flag = value === 'true';
    },
    async triggerDeploy(_id, options) {
      renderCalls.push(`triggerDeploy ${options?.commitId ?? ''}`);
      return { id: 'dep-rollback', status: 'created' };
    },
    async waitForDeploy(_id, deployId) {
      renderCalls.push(`waitForDeploy ${deployId}`);
      now += 3000;
      return { status: 'live' };
    },
  };
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
    render: fakeRender(),
    measuredOn: IN_PROCESS_RENDER,
    notifier,
    probe: service.probe,
    progress: silentProgress,
    operator: 'controller-test',
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    ...overrides,
  };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'canary-controller-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  service = new FakeService();
  now = Date.parse('2026-11-20T10:00:00.000Z');
  renderCalls = [];
  notifications = [];
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('canary controller', () => {
  it('measures on the policy schedule, scaled in real time, and promotes a healthy staging run', async () => {
    // Production adopted with its ceiling at the first step (infra/README.md): the whole flag judged lifts it to 100.
    setStackConfig(join(dir, 'Pulumi.production.yaml'), { [EXPOSURE_PERCENT_KEY]: 5 });
    const start = now;
    const result = await runCanary(options({ stack: 'staging' }));
    expect(result).toMatchObject({ outcome: 'promoted', exitCode: 0 });
    expect(result.state.measurements.map((m) => m.atSeconds)).toEqual(Array.from({ length: 21 }, (_, k) => k * 30));
    // 10 policy minutes at 60x: 10 real seconds.
    expect(now - start).toBe(10_000);
    const production = join(dir, 'Pulumi.production.yaml');
    expect(readStackConfig(production, PINNED_COMMIT_KEY)).toBe(COMMIT);
    expect(readStackConfig(production, FLAG_KEY)).toBe(true);
    expect(readStackConfig(production, EXPOSURE_PERCENT_KEY)).toBe(100);
    expect(renderCalls).toEqual([]);
    expect(notifications).toEqual([expect.stringMatching(/^promote: /)]);
  });

  it('signs off a healthy production run without touching any stack file', async () => {
    const before = readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8');
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'signed_off', exitCode: 0 });
    expect(readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8')).toBe(before);
    expect(readFileSync(result.reportPaths.signoff, 'utf8')).toContain('**Rollback Needed**: NO');
  });

  it('rolls back on a breach: flag off, the same commit redeployed, latched, verified', async () => {
    service.errorShare = 0.4;
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(renderCalls).toEqual(['setEnvVar ENABLE_CONTEXT7_MEMORY=false', `triggerDeploy ${COMMIT}`, 'waitForDeploy dep-rollback']);
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), FLAG_KEY)).toBe(false);
    expect(result.state.actions.filter((a) => a.action === 'verify').every((a) => a.ok)).toBe(true);
    expect(notifications).toEqual([expect.stringMatching(/^rollback: /)]);
  });

  it('reports an unverified rollback (exit 4) when Render fails, and still latches the flag off', async () => {
    service.errorShare = 0.4;
    const result = await runCanary(options({ render: fakeRender(true) }));
    expect(result).toMatchObject({ outcome: 'rollback_unverified', exitCode: 4 });
    expect(readStackConfig(join(dir, 'Pulumi.production.yaml'), FLAG_KEY)).toBe(false);
    expect(result.state.actions.find((a) => a.action === 'render')).toMatchObject({ ok: false, detail: expect.stringContaining('503') });
    expect(notifications).toEqual([expect.stringMatching(/^rollback_unverified: /)]);
  });

  it('decides without acting in a dry run', async () => {
    service.errorShare = 0.4;
    const before = readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8');
    const result = await runCanary(options({ dryRun: true, stateFile: new InMemoryState() }));
    // Its own outcome and exit code: nothing was rolled back (issue 22 §5).
    expect(result).toMatchObject({ outcome: 'would_roll_back', exitCode: 6 });
    // A rehearsal leaves no state behind that would stop the real run from acting.
    expect(existsSync(join(dir, 'state.json'))).toBe(false);
    expect(renderCalls).toEqual([]);
    expect(notifications).toEqual([]);
    expect(readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8')).toBe(before);
    expect(JSON.parse(readFileSync(result.reportPaths.json, 'utf8'))).toMatchObject({ dryRun: true, summary: { outcome: 'would_roll_back' } });
    const html = readFileSync(result.reportPaths.html, 'utf8');
    expect(html).toContain('<span class="outcome warn">would roll back (dry run: nothing was done)</span>');
    expect(html).toContain('would rollback (dry run)');
    expect(html).not.toMatch(/>rollback<\/text>/);
    expect(readFileSync(result.reportPaths.signoff, 'utf8')).toContain('**Rollback Needed**: YES, but this was a dry run: nothing was rolled back');
    expect(result.reportPaths.incident).toBeUndefined();
  });

  it('holds (exit 2) without acting when traffic is too low to judge, and says so on the webhook', async () => {
    service.readsPerSecond = 0.1;
    const before = readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8');
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'held', exitCode: 2 });
    expect(result.state.decision).toMatchObject({ kind: 'hold' });
    expect(renderCalls).toEqual([]);
    expect(readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8')).toBe(before);
    expect(notifications).toEqual([expect.stringMatching(/^hold: /)]);
  });

  it('aborts without acting when the metrics stay unreadable past the limit', async () => {
    service.metricsBroken = true;
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'aborted', exitCode: 3 });
    expect(result.state.measurements).toHaveLength(policy.measurement.maxConsecutiveErrors + 1);
    expect(renderCalls).toEqual([]);
  });

  it('aborts and alerts (exit 5) when the local store fails: no rollback, the flag and stack files untouched', async () => {
    service.storeErrorShare = 0.5;
    const before = readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8');
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'aborted_store_failing', exitCode: 5 });
    expect(result.state.decision).toMatchObject({ kind: 'abort', trigger: 'store_errors', reason: expect.stringContaining('the local store is failing; turning Context7 off cannot fix it') });
    expect(renderCalls).toEqual([]);
    expect(service.flag).toBe(true);
    expect(readFileSync(join(dir, 'Pulumi.production.yaml'), 'utf8')).toBe(before);
    expect(notifications).toEqual(['store_failing: aborted: the local store is failing; turning Context7 off cannot fix it']);
    expect(result.state.actions).toEqual([expect.objectContaining({ action: 'abort', ok: true, detail: expect.stringContaining('ENABLE_CONTEXT7_MEMORY left as it is') })]);
    expect(JSON.parse(readFileSync(result.reportPaths.json, 'utf8')).summary.outcome).toBe('aborted_store_failing');
  });

  it('aborts on a store outage even when Context7 breaches at the same poll (store failure takes precedence)', async () => {
    service.storeErrorShare = 0.5;
    service.errorShare = 0.4;
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'aborted_store_failing', exitCode: 5 });
    expect(result.state.decision!.reason).toMatch(/Context7 breached too \(errorRate/);
    expect(renderCalls).toEqual([]);
  });

  it('rolls the flag back on a store outage when the policy says storeErrors.onBreach: rollback', async () => {
    service.storeErrorShare = 0.5;
    const rollbackPolicy = { ...policy, storeErrors: { ...policy.storeErrors, onBreach: 'rollback' as const } };
    const result = await runCanary(options({ policy: rollbackPolicy }));
    expect(result).toMatchObject({ outcome: 'rolled_back', exitCode: 1 });
    expect(result.state.decision).toMatchObject({ kind: 'rollback', trigger: 'store_errors' });
    expect(renderCalls[0]).toBe('setEnvVar ENABLE_CONTEXT7_MEMORY=false');
  });

  it('ignores store errors below the policy threshold', async () => {
    service.storeErrorShare = 0.01;
    const result = await runCanary(options());
    expect(result).toMatchObject({ outcome: 'signed_off', exitCode: 0 });
  });

  it('decides a store abort without alerting in a dry run', async () => {
    service.storeErrorShare = 0.5;
    const result = await runCanary(options({ dryRun: true, stateFile: new InMemoryState() }));
    expect(result).toMatchObject({ outcome: 'aborted_store_failing', exitCode: 5 });
    expect(notifications).toEqual([]);
    expect(result.state.actions[0]!.detail).toMatch(/^dry run: the local store is failing/);
  });

  it('resumes an interrupted analysis on its original schedule', async () => {
    const stateFile = new StateFile(join(dir, 'state.json'));
    let measured = 0;
    const crashing = options({
      source: {
        measure: async (atSeconds) => {
          if (++measured > 4) throw new Error('simulated crash');
          return options().source.measure(atSeconds);
        },
      },
    });
    await expect(runCanary(crashing)).rejects.toThrow('simulated crash');
    expect(stateFile.load()!.measurements).toHaveLength(4);
    now += 45_000; // the rerun starts 45 real s (45 policy min at 60x) later: it measures at once
    const result = await runCanary(options());
    const times = result.state.measurements.map((m) => m.atSeconds);
    expect(times.slice(0, 4)).toEqual([0, 30, 60, 90]);
    expect(times[4]).toBeGreaterThanOrEqual(90 + 45 * 60);
    expect(result.outcome).toBe('signed_off');
  });
});

describe('rollback time and the incident record', () => {
  it('measures decision-to-verified against the runbook 5 minutes and writes incident.md on a rollback', async () => {
    service.errorShare = 0.4;
    const result = await runCanary(options());
    expect(result.outcome).toBe('rolled_back');
    const report = JSON.parse(readFileSync(result.reportPaths.json, 'utf8'));
    expect(report.rollbackDuration).toMatchObject({ budgetSeconds: 300, withinBudget: true });
    expect(report.rollbackDuration.seconds).toBeGreaterThan(0);
    expect(report.rollbackDuration.seconds).toBeLessThan(300);
    expect(notifications[0]).toMatch(/rollback time \d+ s from decision to verified \(runbook: < 5 min 00 s\): PASS/);
    expect(readFileSync(result.reportPaths.signoff, 'utf8')).toMatch(/\*\*Rollback Time\*\*: rollback time .*PASS/);

    expect(result.reportPaths.incident).toBe(join(dir, 'report', 'incident.md'));
    const incident = readFileSync(result.reportPaths.incident!, 'utf8');
    expect(incident).toMatch(/^# Incident: Context7 memory rollout rolled back \(production, deploy a1b2c3d4e5f6\)/);
    const timeline = incident.slice(incident.indexOf('## Timeline'), incident.indexOf('## Figures'));
    const order = ['analysis started', 'onset estimate: errorRate', 'decision: rollback (breach)', 'set-env', 'verify'].map((text) => timeline.indexOf(text));
    expect(order.every((at) => at > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(incident).toMatch(/\| errorRate \| 4\d\.\d+ ?% \|/);
    expect(incident).toContain('1. Check Render logs and metrics');
    expect(incident).toContain('- Context7 Support: _not configured: set it in the canary policy_');
    expect(incident).toContain('- Render Status: https://status.render.com');
    expect(incident).toContain('### Root cause');
  });

  it('a rollback slower than the budget is a FAIL figure, and contacts come from the policy', async () => {
    service.errorShare = 0.4;
    const slowRender: RenderPort = {
      ...fakeRender(),
      async waitForDeploy() {
        now += 6 * 60_000; // a Render deploy that took six minutes
        return { status: 'live' };
      },
    };
    const withContacts = { ...policy, escalation: { ...policy.escalation, contacts: { 'Internal Team Lead': 'oncall-memory@example.com' } } };
    const result = await runCanary(options({ render: slowRender, policy: withContacts }));
    const report = JSON.parse(readFileSync(result.reportPaths.json, 'utf8'));
    expect(report.rollbackDuration.withinBudget).toBe(false);
    expect(report.rollbackDuration.seconds).toBeGreaterThan(360);
    expect(notifications[0]).toMatch(/rollback time 6 min \d\d s .*: FAIL/);
    const incident = readFileSync(result.reportPaths.incident!, 'utf8');
    expect(incident).toContain('- Internal Team Lead: oncall-memory@example.com');
    expect(incident).not.toContain('Context7 Support');
  });

  it('no incident record for a promotion, a sign-off or a dry run', async () => {
    const promoted = await runCanary(options({ stack: 'staging' }));
    expect(promoted.reportPaths.incident).toBeUndefined();
    expect(existsSync(join(dir, 'report', 'incident.md'))).toBe(false);
    expect(JSON.parse(readFileSync(promoted.reportPaths.json, 'utf8')).rollbackDuration).toBeNull();
  });
});
