/**
 * The workflow's optional backfill after the production sign-off (runbook Step 4), against the real service and
 * the Context7 emulator: started once, followed, judged against 5 % sync errors, and added to report.json and the
 * sign-off. And the human checkboxes: recorded as given, never made up.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBackfillStep } from '../../canary/backfill-after-signoff';
import { loadPolicy } from '../../canary/policy';
import { checklistIssues, checklistSignoffLines, readChecklist } from '../../canary/report/checklist';
import { httpProbe } from '../../canary/sources/http';
import { scope, startHarness, TEST_ADMIN_TOKEN, type Harness } from '../service/support/harness';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
let harness: Harness | undefined;
let dir = '';
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = '';
});

async function serviceWithPatterns(count: number): Promise<Harness> {
  const h = await startHarness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
  for (let i = 0; i < count; i++) {
    const res = await h.request('POST', '/api/memory/patterns', { scopeId: scope(`loc-${i % 5}`), patterns: [{ content: `learned pattern number ${i}` }] });
    expect(res.status).toBe(200);
  }
  return h;
}

function signedOffReportDir(): string {
  dir = mkdtempSync(join(tmpdir(), 'backfill-step-'));
  writeFileSync(join(dir, 'report.json'), JSON.stringify({ summary: { stack: 'production', outcome: 'signed_off' } }));
  writeFileSync(join(dir, 'signoff.md'), '## Sign-Off\n\n**Rollback Needed**: NO\n');
  return dir;
}

const step = (h: Harness, reportDir: string, adminToken = TEST_ADMIN_TOKEN) =>
  runBackfillStep({
    baseUrl: h.url,
    adminToken,
    policy,
    http: httpProbe,
    followSeconds: 60,
    pollMs: 50,
    reportDir,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    log: () => undefined,
  });

describe('the backfill after the production sign-off', () => {
  it('starts the full sync, follows it to the end, judges it against 5 % and writes it into report.json and the sign-off', async () => {
    // 80 items: with none failing, a Wilson interval needs 73 to be sure the rate is under 5 %.
    harness = await serviceWithPatterns(80);
    const reportDir = signedOffReportDir();
    const result = await step(harness, reportDir);
    expect(result.started.ok).toBe(true);
    expect(result.judgement).toMatchObject({ verdict: 'pass', status: { state: 'completed', errors: 0 } });
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8'));
    expect(report.summary).toEqual({ stack: 'production', outcome: 'signed_off' });
    expect(report.backfill.verdict).toBe('pass');
    expect(report.backfillRun.when).toBe('after the production sign-off');
    const signoff = readFileSync(join(reportDir, 'signoff.md'), 'utf8');
    expect(signoff).toMatch(/\*\*Backfill\*\* \(runbook Step 4, started after the sign-off, followed [\d.]+ s\): completed: \d+ synced, 0 errors .*: PASS \(0\.0% sync errors/);
    expect(signoff).not.toContain(TEST_ADMIN_TOKEN);
  }, 60_000);

  it('a sync whose errors are significantly above 5 % fails, and the command exits 1', async () => {
    harness = await serviceWithPatterns(40);
    harness.emulator!.setFaults({ errorRate: 1 });
    const reportDir = signedOffReportDir();
    const result = await step(harness, reportDir);
    expect(result.judgement?.verdict).toBe('fail');
    expect(result.exitCode).toBe(1);
    expect(readFileSync(join(reportDir, 'signoff.md'), 'utf8')).toMatch(/\*\*Backfill\*\*.*: FAIL/);
  }, 60_000);

  it('a refused admin token starts nothing, says so in the sign-off, and exits 3', async () => {
    harness = await serviceWithPatterns(0);
    const reportDir = signedOffReportDir();
    const result = await step(harness, reportDir, 'wrong-admin-token-0123456789abcdef');
    expect(result.started.ok).toBe(false);
    expect(result.exitCode).toBe(3);
    expect(readFileSync(join(reportDir, 'signoff.md'), 'utf8')).toMatch(/\*\*Backfill\*\* \(runbook Step 4, after the sign-off\): NOT RUN \(the service did not start the full sync \(HTTP 401\)/);
  }, 60_000);
});

describe('the human checkboxes', () => {
  it('records who confirmed each item, and an item nobody confirmed says so: nothing is made up', () => {
    const entries = readChecklist({ ROLLOUT_CONFIRMED_PHASE_TASKS: ' alice ', ROLLOUT_CONFIRMED_TEAM_BRIEFED: 'bob\nthe lead', ROLLOUT_CONFIRMED_ROLLBACK_REVIEWED: '' });
    expect(entries.map((e) => e.confirmedBy)).toEqual(['alice', 'bob the lead', null, null]);
    const lines = checklistSignoffLines(entries).join('\n');
    expect(lines).toContain('- [x] All Phase 1 & 2 tasks complete: confirmed by alice');
    expect(lines).toContain('- [x] Team briefed on rollout procedure: confirmed by bob the lead');
    expect(lines).toContain('- [ ] Rollback procedure reviewed: NOT CONFIRMED (nobody recorded it)');
    expect(lines).toContain('- [ ] Monitoring dashboards ready: NOT CONFIRMED (nobody recorded it)');
    expect(checklistIssues(entries)[0]).toMatch(/not confirmed: "Rollback procedure reviewed", "Monitoring dashboards ready"/);
    expect(checklistSignoffLines(undefined)).toEqual([]);
  });
});
