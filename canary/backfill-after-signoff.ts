/**
 * `canary backfill`: the runbook's Step 4 ("Run Backfill (Optional)") after production signed off, as the workflow's
 * optional input asks. Starts the full sync once (POST /api/admin/sync-context7; one already running is followed),
 * follows its status for a bounded window ("Do not wait for completion"), judges what it did against the policy's
 * 5 % sync errors (judgeBackfill: Wilson interval, minimum items), and adds the result to the production report
 * (report.json `backfill`, `backfillRun`) and its sign-off. The admin token travels in the Authorization header only.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { judgeBackfill, type BackfillJudgement } from './analysis';
import { classifyBackfill, type BackfillStatus } from './analysis/measurement';
import type { CanaryPolicy } from './policy';
import type { HttpProbe } from './sources/http';
import { escapeMarkdown as md } from './report/markdown';

export interface BackfillStepOptions {
  baseUrl: string;
  adminToken: string;
  policy: CanaryPolicy;
  http: HttpProbe;
  /** real seconds to follow the sync before judging what it did so far */
  followSeconds: number;
  pollMs: number;
  reportDir: string;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  log: (line: string) => void;
}

export interface BackfillStepResult {
  started: { ok: boolean; detail: string };
  judgement: BackfillJudgement | null;
  followedSeconds: number;
  exitCode: number;
}

export async function runBackfillStep(o: BackfillStepOptions): Promise<BackfillStepResult> {
  const base = o.baseUrl.replace(/\/+$/, '');
  const timeoutMs = o.policy.measurement.timeoutSeconds * 1000;
  const headers = { authorization: `Bearer ${o.adminToken}` };
  const begun = o.now();
  const answer = await o.http(`${base}/api/admin/sync-context7`, { method: 'POST', body: {}, timeoutMs, headers });
  const said = String((answer.body as { message?: unknown; error?: unknown } | undefined)?.message ?? (answer.body as { error?: unknown } | undefined)?.error ?? answer.message ?? '').slice(0, 200);
  const started =
    answer.status === 202
      ? { ok: true, detail: `full sync started: ${said}` }
      : answer.status === 409 && /already running/i.test(said)
        ? { ok: true, detail: 'a full sync was already running: following it' }
        : { ok: false, detail: `the service did not start the full sync (HTTP ${answer.status ?? 'no answer'}): ${said}` };
  o.log(`backfill: ${started.detail}`);
  let status: BackfillStatus | null = null;
  if (started.ok) {
    const deadline = begun + o.followSeconds * 1000;
    for (;;) {
      status = classifyBackfill(await o.http(`${base}/api/admin/sync-context7/status`, { timeoutMs, headers }));
      o.log(`backfill: ${status.detail}`);
      if (status.state === 'completed' || status.state === 'failed' || o.now() >= deadline) break;
      await o.sleep(Math.min(o.pollMs, Math.max(1, deadline - o.now())));
    }
  }
  const judgement = status ? judgeBackfill(o.policy, status) : null;
  const followedSeconds = (o.now() - begun) / 1000;
  if (judgement) o.log(`backfill: ${judgement.verdict.replace('_', ' ')}: ${judgement.reason}`);
  recordInReports(o.reportDir, started, judgement, followedSeconds, new Date(begun).toISOString());
  const exitCode = !started.ok ? 3 : judgement?.verdict === 'fail' ? 1 : 0;
  return { started, judgement, followedSeconds, exitCode };
}

/** Adds the backfill to the production report and sign-off (or writes backfill.json alone when there is none). */
function recordInReports(reportDir: string, started: { ok: boolean; detail: string }, judgement: BackfillJudgement | null, followedSeconds: number, requestedAt: string): void {
  const run = { requestedAt, started, followedSeconds: Math.round(followedSeconds * 10) / 10, when: 'after the production sign-off' };
  const reportPath = join(reportDir, 'report.json');
  if (existsSync(reportPath)) {
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(reportPath, `${JSON.stringify({ ...report, backfill: judgement, backfillRun: run }, null, 2)}\n`);
  } else {
    writeFileSync(join(reportDir, 'backfill.json'), `${JSON.stringify({ backfill: judgement, backfillRun: run }, null, 2)}\n`);
  }
  const signoffPath = join(reportDir, 'signoff.md');
  if (existsSync(signoffPath)) {
    const verdict = judgement ? (judgement.verdict === 'not_judged' ? 'not judged' : judgement.verdict.toUpperCase()) : 'NOT RUN';
    const line = judgement
      ? `**Backfill** (runbook Step 4, started after the sign-off, followed ${run.followedSeconds} s): ${md(judgement.status.detail)}: ${verdict} (${md(judgement.reason)})`
      : `**Backfill** (runbook Step 4, after the sign-off): NOT RUN (${md(started.detail)})`;
    writeFileSync(signoffPath, `${readFileSync(signoffPath, 'utf8').replace(/\n*$/, '')}\n\n${line}\n`);
  }
}
