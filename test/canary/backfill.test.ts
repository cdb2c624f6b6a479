/** Runbook Step 4 judged: the canary starts or follows the backfill and judges its sync errors at the end. */
import { mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { analyze, judgeBackfill, type Measurement, type Probe } from '../../canary/analysis';
import { classifyBackfill } from '../../canary/analysis/measurement';
import { InMemoryState } from '../../canary/actions/state-file';
import { runCanary } from '../../canary/controller';
import { loadPolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import { createHttpMetricSource } from '../../canary/sources/metrics-poller';
import { healthyRun } from './support/healthy-run';
import type { HttpProbe } from '../../canary/sources/http';
import { noRenderPlatform } from '../../render/platform';

const REPO = join(__dirname, '../..');
const policy = loadPolicy(join(__dirname, 'fixtures/e2e-policy.yaml'));
const ADMIN = 'canary-admin-token-0123456789';
const job = (status: string, synced: number, errors: number, total: number): Probe => ({
  status: 200,
  body: { running: status === 'running', progressPercent: total ? Math.round(((synced + errors) / total) * 100) : 0, job: { name: 'context7-full-sync', status, total, synced, errors } },
});

describe('judging the backfill (pure)', () => {
  const judge = (probe: Probe) => judgeBackfill(policy, classifyBackfill(probe));

  it('fails a fatal error or sync errors significantly above 5%, passes a clean one, and says when it cannot tell', () => {
    expect(judge(job('failed', 10, 0, 500))).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('the backfill failed') });
    expect(judge(job('completed', 800, 200, 1000))).toMatchObject({ verdict: 'fail', reason: '20.0% sync errors (200 of 1000), significantly above 5.0%' });
    expect(judge(job('completed', 1000, 2, 1002))).toMatchObject({ verdict: 'pass' });
    expect(judge(job('running', 300, 0, 5000))).toMatchObject({ verdict: 'pass', reason: expect.stringContaining('so far (still running)') });
    expect(judge(job('completed', 10, 1, 11))).toMatchObject({ verdict: 'not_judged', reason: expect.stringContaining('fewer than 30 items') });
    expect(judge(job('completed', 950, 50, 1000))).toMatchObject({ verdict: 'not_judged', reason: expect.stringContaining('too close') });
    expect(judge({ status: 200, body: { running: false, progressPercent: 0, job: null } })).toMatchObject({ verdict: 'not_judged', reason: 'no backfill has run' });
    expect(judge({ status: 401, body: { error: 'Invalid admin token' } })).toMatchObject({ verdict: 'not_judged', reason: 'HTTP 401' });
  });
});

/** A healthy deploy whose backfill status, per minute, is chosen per test. */
function backfillRun(backfillAt: (minute: number) => Probe | undefined): Measurement[] {
  return healthyRun(policy, (seconds) => {
    const backfill = backfillAt(seconds / 60);
    return backfill ? { backfill } : {};
  });
}

describe('the backfill in the analysis', () => {
  it('a backfill failing 20% of its items fails the success criteria (policy onFailAtEnd)', () => {
    const result = analyze(policy, { measurements: backfillRun((minute) => job(minute >= 9 ? 'completed' : 'running', minute * 80, minute * 20, 1000)) });
    expect(result.decision).toMatchObject({ kind: policy.onFailAtEnd, trigger: 'end', reason: expect.stringContaining('backfill fail') });
    expect(result.checkpoints.at(-1)?.backfill?.verdict).toBe('fail');
  });

  it('a clean backfill still running at the end does not block promotion', () => {
    const result = analyze(policy, { measurements: backfillRun((minute) => job('running', minute * 100, 0, 100_000)) });
    expect(result.decision).toMatchObject({ kind: 'promote' });
    expect(result.backfill).toMatchObject({ state: 'running', synced: 1000 });
    expect(result.checkpoints.at(-1)?.backfill).toMatchObject({ verdict: 'pass' });
  });

  it('without a followed backfill nothing changes', () => {
    const result = analyze(policy, { measurements: backfillRun(() => undefined) });
    expect(result.decision?.kind).toBe('promote');
    expect(result.backfill).toBeNull();
    expect(result.checkpoints.at(-1)?.backfill).toBeUndefined();
  });
});

describe('canary run --backfill start', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'canary-backfill-'));
    for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('starts the sync once the immediate checks pass, follows it with the admin token, and reports it without the token', async () => {
    const healthy = backfillRun(() => undefined);
    let clock = Date.parse('2026-11-24T10:00:00.000Z');
    let polls = 0;
    let started = 0;
    const seenTokens = new Set<string>();
    const probe: HttpProbe = async (url, options) => {
      const path = new URL(url).pathname;
      const auth = options.headers?.authorization;
      if (path.startsWith('/api/admin/')) {
        seenTokens.add(String(auth));
        if (auth !== `Bearer ${ADMIN}`) return { status: 401, body: { error: 'Invalid admin token' } };
        if (path === '/api/admin/sync-context7' && options.method === 'POST') {
          started += 1;
          return { status: 202, body: { message: 'Full sync started (running async)' } };
        }
        if (path === '/api/admin/sync-context7/status') return started ? job('running', polls * 50, 0, 2000) : { status: 200, body: { running: false, progressPercent: 0, job: null } };
      }
      const measurement = healthy[Math.min(polls, healthy.length - 1)]!;
      if (path === '/api/metrics/memory') {
        polls += 1;
        return measurement.samples[0]!;
      }
      if (path === '/api/memory/health') return measurement.health!;
      if (path === '/api/config') return measurement.config!;
      return { status: 404, body: {} };
    };
    const result = await runCanary({
      policy,
      stack: 'staging',
      baseUrl: 'http://127.0.0.1:9',
      serviceId: null,
      source: createHttpMetricSource({ baseUrl: 'http://127.0.0.1:9', policy, probe, adminToken: ADMIN }),
      stateFile: new InMemoryState(),
      stackDir: dir,
      reportDir: join(dir, 'report'),
      timeScale: 60,
      dryRun: false,
      render: undefined,
      measuredOn: noRenderPlatform('http://127.0.0.1:9'),
      notifier: { async notify() {} },
      probe,
      progress: silentProgress,
      operator: 'test',
      backfill: { mode: 'start', adminToken: ADMIN },
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    expect(started).toBe(1);
    expect([...seenTokens]).toEqual([`Bearer ${ADMIN}`]);
    expect(result.state.actions.filter((a) => a.action === 'backfill-start')).toEqual([expect.objectContaining({ ok: true, detail: expect.stringContaining('full sync started') })]);
    expect(result.outcome).toBe('promoted');
    const reportText = readFileSync(result.reportPaths.json, 'utf8');
    expect(JSON.parse(reportText).backfill).toMatchObject({ verdict: 'pass', status: { state: 'running' } });
    expect(readFileSync(result.reportPaths.signoff, 'utf8')).toMatch(/\*\*Backfill\*\*: running: \d+ synced, 0 errors of 2000 .*: PASS/);
    expect(readFileSync(result.reportPaths.html, 'utf8')).toContain('<h2>Backfill</h2>');
    for (const file of Object.values(result.reportPaths)) expect(readFileSync(file!, 'utf8')).not.toContain(ADMIN);
  });
});
