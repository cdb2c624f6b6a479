/**
 * The live canary loop: measure on the policy's schedule, analyse (pure), act once on the decision,
 * record everything in the state file so a crashed run resumes, and write the reports.
 */
import { analyze, STORE_FAILING_MESSAGE, type AnalysisResult, type Decision } from './analysis';
import type { Notifier } from './actions/webhook';
import { promoteRun, rollBackRun, type ActingRun } from './actions/act';
import type { RenderPort } from './actions/rollback';
import type { RenderPlatform } from '../render/platform';
import { newCanaryState, type CanaryState, type StateStore } from './actions/state-file';
import { openBoundState } from './actions/state-binding';
import { rollbackDuration } from './actions/rollback-timing';
import type { CanaryPolicy } from './policy';
import type { Progress } from './progress';
import { buildReport, runFacts, writeReports } from './report/report';
import { WHOLE_FLAG_EXPOSURE_PERCENT, type CanaryOutcome } from './report-summary';
import type { HttpProbe } from './sources/http';
import type { MetricSource } from './sources/metrics-poller';
import { OUTCOME_EXIT_CODES } from './format';
import type { SyntheticPlanFacts } from './report/synthetic';
import type { ChecklistEntry } from './report/checklist';
import type { SyntheticTraffic } from './synthetic/traffic';

export interface CanaryRunOptions {
  policy: CanaryPolicy;
  stack: 'staging' | 'production';
  baseUrl: string;
  serviceId: string | null;
  source: MetricSource;
  /** a StateFile, or InMemoryState for dry runs */
  stateFile: StateStore;
  /** where Pulumi.<stack>.yaml live */
  stackDir: string;
  reportDir: string;
  /** policy seconds per real second */
  timeScale: number;
  dryRun: boolean;
  render: RenderPort | undefined;
  /**
   * What `render` talks to, as the caller knows it: Render, an emulator, or no Render API at all
   * (render/platform.ts). Every report says it, so that an emulator's figures are never read as Render's.
   */
  measuredOn: RenderPlatform;
  notifier: Notifier;
  probe: HttpProbe;
  progress: Progress;
  operator: string;
  /**
   * Runbook Step 4: `start` asks the service for the full sync once the immediate checks pass, then follows it;
   * `follow` only follows one someone else started. The metric source reads its status with the admin token.
   */
  backfill?: { mode: 'start' | 'follow'; adminToken: string };
  /** the live Render deploy being analysed (read from the API by main.ts) */
  analysedDeploy?: { id: string; createdAt: string; commit?: string };
  /** --resume: finish a state file's run although its live deploy cannot be confirmed or changed (canary/actions/state-binding.ts) */
  resume?: boolean;
  /** Caller key for the rollback verification's snippets read (CANARY_MEMORY_API_KEY); never recorded. */
  memoryApiKey?: string;
  /**
   * The canary's own traffic (staging: a quiet service has none to judge). Started with the analysis, stopped when
   * it ends, before any action; the measurements record its counts (the source is wrapped by withSyntheticTraffic).
   */
  synthetic?: { traffic: SyntheticTraffic; facts: SyntheticPlanFacts };
  /** who confirmed the runbook's human checkboxes (the workflow's inputs), carried into the reports */
  checklist?: ChecklistEntry[];
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export interface CanaryRunResult {
  outcome: CanaryOutcome;
  exitCode: number;
  result: AnalysisResult;
  state: CanaryState;
  reportPaths: { json: string; signoff: string; html: string; incident?: string };
}


export async function runCanary(o: CanaryRunOptions): Promise<CanaryRunResult> {
  const { policy, progress } = o;
  const iso = () => new Date(o.now()).toISOString();
  let state = await openBoundState(o, 'whole-flag');
  if (!state) {
    state = newCanaryState(o, o.now());
    o.stateFile.save(state);
  } else if (state.phase === 'done') {
    progress.info(`state file ${o.stateFile.path} says this rollout already finished (${state.outcome}); not acting again. Move it aside to canary a new deploy.`);
  } else {
    progress.info(`resuming from ${o.stateFile.path}: ${state.measurements.length} measurements, phase ${state.phase}`);
  }
  const s = state;
  const save = () => o.stateFile.save(s);
  const record = (action: string, ok: boolean, detail: string) => {
    s.actions.push({ at: iso(), action, ok, detail });
    (ok ? progress.info : progress.warn)(`${action}: ${detail}`);
  };
  const policySeconds = () => ((o.now() - s.startedAtMs) / 1000) * o.timeScale;
  const realMs = (policySecondsSpan: number) => (policySecondsSpan / o.timeScale) * 1000;
  const acting: ActingRun = { ...o, state: s, save, record, realMs };
  const analyse = () =>
    analyze(policy, {
      deployId: s.deployId ?? undefined,
      measurements: s.measurements,
      ...(s.analysedDeploy ? { deployStartedAfter: s.analysedDeploy.createdAt } : {}),
    });

  let result = analyse();
  if (s.phase === 'analysing' && o.synthetic) {
    o.synthetic.traffic.start();
    progress.info(`synthetic traffic: ${o.synthetic.facts.basis}; scopes ${o.synthetic.facts.location}, patterns expire at ${o.synthetic.facts.patternsExpireAt}`);
  }
  try {
    result = await analyseUntilDecided(result);
  } finally {
    if (o.synthetic) {
      const done = await o.synthetic.traffic.stop();
      if (done.sent > 0) progress.info(`synthetic traffic stopped: ${done.sent} sent, ${done.readsAnswered} reads and ${done.writesAnswered} writes answered, ${done.failedChecks} failed checks, ${done.transportErrors} without answer`);
    }
  }

  if (s.phase === 'acting') {
    const decision = s.decision as Decision;
    s.outcome = await act(decision, result);
    s.phase = 'done';
    s.finishedAt = iso();
    save();
  }

  const outcome = s.outcome ?? 'held';
  const reportPaths = writeReports(o.reportDir, buildReport(reportInput(result, outcome, s.finishedAt ?? iso())));
  progress.info(`outcome: ${outcome}; reports in ${o.reportDir}`);
  return { outcome, exitCode: OUTCOME_EXIT_CODES[outcome], result, state: s, reportPaths };

  /** Measures on the policy's schedule until the analysis decides (or the run was already past analysing). */
  async function analyseUntilDecided(first: AnalysisResult): Promise<AnalysisResult> {
    let result = first;
    while (s.phase === 'analysing') {
      if (result.decision) {
        s.decision = result.decision;
        s.decidedAt ??= iso();
        s.phase = 'acting';
        save();
        break;
      }
      // Measurement k is due at k poll intervals (the first right away); a late resume measures at once.
      const dueAt = s.measurements.length * policy.pollIntervalSeconds;
      await waitUntil(dueAt);
      const measurement = await o.source.measure(Math.round(policySeconds() * 1000) / 1000);
      s.measurements.push(measurement);
      result = analyse();
      s.deployId ??= result.deployId;
      save();
      if (o.backfill?.mode === 'start' && !s.backfillRequestedAt && result.immediateChecksPassedAtSeconds !== null && !result.decision) {
        await startBackfill(o.backfill.adminToken);
      }
      const step = result.steps.at(-1);
      if (step) progress.step(step);
      writeProgressReport(result);
    }
    return result;
  }

  async function waitUntil(dueAtPolicySeconds: number): Promise<void> {
    for (;;) {
      const now = policySeconds();
      const remaining = dueAtPolicySeconds - now;
      if (remaining <= 0) return;
      const next = policy.checkpoints.find((c) => c.atMinute * 60 > now);
      progress.countdown({
        policySeconds: now,
        nextPollInSeconds: remaining,
        nextCheckpoint: next ? next.name : 'success criteria',
        checkpointInSeconds: (next ? next.atMinute : policy.durationMinutes) * 60 - now,
      });
      await o.sleep(Math.min(realMs(remaining), 1000));
    }
  }

  async function act(decision: Decision, analysis: AnalysisResult): Promise<CanaryOutcome> {
    const fields = {
      stack: o.stack,
      deploy: s.deployId ?? 'unknown',
      decision: `${decision.kind} (${decision.trigger}) at minute ${(decision.atSeconds / 60).toFixed(1)}`,
      reason: decision.reason,
    };
    progress.info(`DECISION: ${decision.kind} (${decision.trigger}): ${decision.reason}`);
    switch (decision.kind) {
      case 'rollback': {
        if (o.dryRun) {
          record('rollback', true, 'dry run: would set ENABLE_CONTEXT7_MEMORY=false, redeploy, latch and verify (and roll the code back if the fault persists and this deploy changed the commit)');
          return 'would_roll_back';
        }
        const { outcome, summary } = await rollBackRun(acting);
        progress.info(summary);
        await o.notifier.notify(outcome === 'rolled_back' ? 'rollback' : 'rollback_unverified', summary, fields);
        return outcome;
      }
      case 'promote':
        // The whole flag was judged: every scope, so production's ceiling is pinned to 100 %, as a stepped promotion
        // pins the percentage it reached (the guard allows a whole-flag report up to 100). Production's flag flip
        // is then kept from exposing it at once by `canary stepped --prepare`, which stores 0 % first.
        return promoteRun(acting, s.deployId ?? analysis.deployId, fields, WHOLE_FLAG_EXPOSURE_PERCENT);
      case 'hold':
        if (!o.dryRun) await o.notifier.notify('hold', 'held: still inconclusive, no action taken', fields);
        return 'held';
      case 'abort': {
        if (decision.trigger === 'store_errors') {
          // Stop, never promote, leave the flag as it is, and make sure someone hears of it.
          const detail = `${STORE_FAILING_MESSAGE}: stopped without promoting or rolling back; ENABLE_CONTEXT7_MEMORY left as it is. Fix the store, then canary again`;
          record('abort', true, o.dryRun ? `dry run: ${detail}` : detail);
          if (!o.dryRun) await o.notifier.notify('store_failing', `aborted: ${STORE_FAILING_MESSAGE}`, fields);
          return 'aborted_store_failing';
        }
        const summary =
          decision.trigger === 'never_reached'
            ? `aborted: cannot reach ${o.baseUrl} (never answered during this run), no action taken`
            : 'aborted: metrics unreadable, no action taken';
        progress.warn(summary);
        if (!o.dryRun) await o.notifier.notify('abort', summary, fields);
        return 'aborted';
      }
    }
  }

  /** POST /api/admin/sync-context7 once; "already running" is followed as if we had started it. */
  async function startBackfill(adminToken: string): Promise<void> {
    s.backfillRequestedAt = iso();
    save();
    if (o.dryRun) {
      record('backfill-start', true, 'dry run: would POST /api/admin/sync-context7 and follow it');
      return;
    }
    const answer = await o.probe(`${o.baseUrl.replace(/\/+$/, '')}/api/admin/sync-context7`, {
      method: 'POST',
      body: {},
      timeoutMs: policy.measurement.timeoutSeconds * 1000,
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const message = (answer.body as { message?: unknown; error?: unknown } | undefined) ?? {};
    const said = String(message.message ?? message.error ?? answer.message ?? answer.error ?? '').slice(0, 200);
    if (answer.status === 202) record('backfill-start', true, `full sync started: ${said}`);
    else if (answer.status === 409 && /already running/i.test(said)) record('backfill-start', true, 'a full sync was already running: following it');
    else record('backfill-start', false, `the service did not start the full sync (HTTP ${answer.status ?? 'no answer'}): ${said}`);
  }

  function reportInput(analysis: AnalysisResult, outcome: CanaryOutcome, finishedAt: string) {
    return {
      ...runFacts(o, s, outcome, finishedAt),
      measurements: s.measurements,
      result: analysis,
      actions: s.actions,
      rollbackDuration: rollbackDuration(s, policy.rollback.maxDurationMinutes),
      ...(o.synthetic ? { synthetic: o.synthetic.facts } : {}),
    };
  }

  /** Keeps report.json current while running, so a crash still leaves the polls on disk. */
  function writeProgressReport(analysis: AnalysisResult): void {
    try {
      writeReports(o.reportDir, buildReport(reportInput(analysis, 'held', iso())));
    } catch (error) {
      progress.warn(`could not write the interim report: ${(error as Error).message}`);
    }
  }
}
