/**
 * Did the rehearsal behave as expected? Pure: observations in, named checks out. The fault
 * rehearsal expects staging promoted and production rolled back, verified, latched, with no learned
 * pattern lost; the healthy one expects staging promoted and production signed off. With the stepped rollout
 * (the default demo's production), the fault rehearsal also expects the incident caught at the step where it
 * began, the scopes outside that step never exposed, the kill switch within seconds and the control healthy; the
 * healthy one expects every step passed. The fleet rehearsal (fault
 * mode) also expects the infra guard to pass the promoted stack and refuse a tampered staging report, the retry of
 * the pinned commit signed off, every acknowledged pattern in PostgreSQL and in Context7, and no request without
 * answer.
 */

import type { SteppedObservation } from './stepped-outcome';

export type DemoMode = 'fault' | 'healthy';

/** "In seconds" (the issue's kill switch), on a loaded 2-core machine: a generous bound on decision -> 0 % everywhere. */
export const KILL_SWITCH_BOUND_SECONDS = 10;
/** How far below 100 - caught % the share of never-exposed scopes may fall: the hash's spread over ~160 scopes (SD ~3.5 points). */
export const NEVER_EXPOSED_TOLERANCE = 0.1;

export interface CanaryObservation {
  exitCode: number | null;
  /** report.json summary.outcome */
  outcome: string | null;
  deployId: string | null;
  reportsExist: boolean;
  /** the canary's own rollback verification (report actions named "verify") */
  verifyChecks: { ok: boolean; detail: string }[];
  /** the canary recorded a successful latch action */
  latched: boolean;
}

export interface Observations {
  mode: DemoMode;
  validationOk: boolean;
  staging: CanaryObservation | null;
  /** memory-rollout:pinnedCommit / enableContext7Memory in the copy of Pulumi.production.yaml, right after staging */
  promotedStack: StackEntries | null;
  /** the same entries at the end of the rehearsal */
  productionStack: StackEntries | null;
  production: CanaryObservation | null;
  /** ENABLE_CONTEXT7_MEMORY on the production service, read back through the Render API */
  productionRenderFlag: string | null;
  patterns: { acknowledged: number; present: number; missing: number } | null;
  /** the stepped rollout in production (the default demo), with the exposure at which the demo turned the fault on */
  stepped?: (SteppedObservation & { faultBeganAtPercent: number | null }) | null;
  /** only in the fleet rehearsal */
  fleet?: FleetObservations | null;
  processesLeft: number;
}

export interface FleetObservations {
  /** null: not reached */
  guardPassedPromoted: boolean | null;
  guardRefusedTampered: boolean | null;
  guardPassedRetry: boolean | null;
  /** the production canary on the retry (same pinned commit, flag on, Context7 healthy) */
  retry: CanaryObservation | null;
  /** both environments: acknowledged, rows found in PostgreSQL, delivered to the Context7 emulator */
  patterns: { acknowledged: number; foundInPostgres: number; deliveredToContext7: number } | null;
  requestsWithoutAnswer: number | null;
}

export interface StackEntries {
  pinnedCommit: unknown;
  flag: unknown;
}

export interface VerdictCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Verdict {
  ok: boolean;
  checks: VerdictCheck[];
}

export function judgeRehearsal(o: Observations): Verdict {
  const checks: VerdictCheck[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

  add('pre-rollout scope id validation passed', o.validationOk, o.validationOk ? 'scope:<location>:<agent>:<16 hex>' : 'see step 2');
  add(
    'staging canary promoted',
    o.staging?.exitCode === 0 && o.staging.outcome === 'promoted',
    `exit ${o.staging?.exitCode ?? 'n/a'}, outcome ${o.staging?.outcome ?? 'n/a'}`,
  );
  const pinned = o.promotedStack?.pinnedCommit;
  add(
    'promotion pinned the staging commit and turned the flag on in the production stack copy',
    o.staging?.deployId != null && pinned === o.staging.deployId && o.promotedStack?.flag === true,
    `pinnedCommit ${String(pinned ?? 'n/a')}, staging deploy ${o.staging?.deployId ?? 'n/a'}, enableContext7Memory: ${String(o.promotedStack?.flag ?? 'n/a')}`,
  );
  add(
    'staging and production reports exist',
    !!o.staging?.reportsExist && !!o.production?.reportsExist,
    `report.json, signoff.md, report.html: staging ${o.staging?.reportsExist ? 'yes' : 'no'}, production ${o.production?.reportsExist ? 'yes' : 'no'}`,
  );

  if (o.mode === 'fault') {
    add(
      'production canary rolled back',
      o.production?.exitCode === 1 && o.production.outcome === 'rolled_back',
      `exit ${o.production?.exitCode ?? 'n/a'}, outcome ${o.production?.outcome ?? 'n/a'}`,
    );
    const verify = o.production?.verifyChecks ?? [];
    add(
      'rollback verified the runbook way',
      verify.length > 0 && verify.every((c) => c.ok),
      verify.length ? `${verify.filter((c) => c.ok).length}/${verify.length} verification checks passed` : 'no verification recorded',
    );
    add('flag off on the production service (Render API)', o.productionRenderFlag === 'false', `ENABLE_CONTEXT7_MEMORY=${o.productionRenderFlag ?? 'n/a'}`);
    // The promotion turned it on, so a false here can only be the canary's latch.
    add(
      'latch written (enableContext7Memory: true -> false in the production stack copy)',
      o.promotedStack?.flag === true && o.productionStack?.flag === false && !!o.production?.latched,
      `after promotion ${String(o.promotedStack?.flag ?? 'n/a')}, at the end ${String(o.productionStack?.flag ?? 'n/a')}, latch action ${o.production?.latched ? 'recorded' : 'missing'}`,
    );
    add(
      'the pinned commit survives the latch',
      o.productionStack?.pinnedCommit === pinned && pinned !== undefined,
      `pinnedCommit ${String(o.productionStack?.pinnedCommit ?? 'n/a')}`,
    );
  } else {
    add(
      'production canary signed off',
      o.production?.exitCode === 0 && o.production.outcome === 'signed_off',
      `exit ${o.production?.exitCode ?? 'n/a'}, outcome ${o.production?.outcome ?? 'n/a'}`,
    );
    add('flag still on in production (Render API)', o.productionRenderFlag === 'true', `ENABLE_CONTEXT7_MEMORY=${o.productionRenderFlag ?? 'n/a'}`);
    add('production stack copy keeps the flag on', o.productionStack?.flag === true, `enableContext7Memory: ${String(o.productionStack?.flag ?? 'n/a')}`);
  }
  if (o.stepped !== undefined && o.stepped !== null) steppedChecks(o.mode, o.stepped, add);
  else if (o.stepped === null) add('the stepped canary left a report', false, 'no stepped report read');
  const p = o.patterns;
  add(
    'no acknowledged learned pattern lost',
    p !== null && p.acknowledged > 0 && p.missing === 0 && p.present === p.acknowledged,
    p ? `${p.present}/${p.acknowledged} acknowledged patterns in the local store, ${p.missing} missing` : 'not checked',
  );
  if (o.fleet) fleetChecks(o.fleet, add);
  add('no process left behind', o.processesLeft === 0, `${o.processesLeft} process group(s) still alive`);
  return { ok: checks.every((c) => c.ok), checks };
}

function fleetChecks(f: FleetObservations, add: (name: string, ok: boolean, detail: string) => void): void {
  const said = (v: boolean | null, yes: string, no: string) => (v === null ? 'not reached' : v ? yes : no);
  add(
    'the infra guard passed the promoted production stack and refused a tampered staging report',
    f.guardPassedPromoted === true && f.guardRefusedTampered === true,
    `promoted stack: ${said(f.guardPassedPromoted, 'passed', 'refused')}; tampered report: ${said(f.guardRefusedTampered, 'refused', 'passed')}`,
  );
  add(
    'the retry of the pinned commit with the flag on was signed off',
    f.guardPassedRetry === true && f.retry?.exitCode === 0 && f.retry.outcome === 'signed_off',
    `guard ${said(f.guardPassedRetry, 'passed', 'refused')}; canary exit ${f.retry?.exitCode ?? 'n/a'}, outcome ${f.retry?.outcome ?? 'n/a'}`,
  );
  const p = f.patterns;
  add(
    'every acknowledged pattern is in PostgreSQL',
    p !== null && p.acknowledged > 0 && p.foundInPostgres === p.acknowledged,
    p ? `${p.foundInPostgres}/${p.acknowledged} found` : 'not checked',
  );
  add(
    'every acknowledged pattern reached Context7 once it was healthy',
    p !== null && p.acknowledged > 0 && p.deliveredToContext7 === p.acknowledged,
    p ? `${p.deliveredToContext7}/${p.acknowledged} delivered` : 'not checked',
  );
  add('zero-downtime: no request without answer', f.requestsWithoutAnswer === 0, `${f.requestsWithoutAnswer ?? 'n/a'} without answer`);
}

function steppedChecks(mode: DemoMode, r: NonNullable<Observations['stepped']>, add: (name: string, ok: boolean, detail: string) => void): void {
  const last = r.steps.at(-1) ?? null;
  if (mode === 'healthy') {
    add(
      'the stepped rollout passed every step',
      r.exposureReachedPercent === last && r.decision?.kind === 'promote',
      `steps ${r.steps.join(' → ')} %, exposure reached ${r.exposureReachedPercent ?? 'n/a'} %, decision ${r.decision?.kind ?? 'none'}`,
    );
    add('the control cohort stayed healthy', r.controlHealthy, controlDetail(r));
    return;
  }
  const caughtIndex = r.caughtAtPercent === null ? -1 : r.steps.indexOf(r.caughtAtPercent);
  add(
    'the stepped canary caught the incident at the step where it began, the steps before it passed',
    r.caughtAtPercent !== null && r.caughtAtPercent === r.faultBeganAtPercent && r.exposureReachedPercent === (caughtIndex > 0 ? r.steps[caughtIndex - 1] : 0),
    `caught at ${r.caughtAtPercent === null ? 'no step' : `step ${r.caughtAtStep} (${r.caughtAtPercent} %)`}, Context7 degraded from ${r.faultBeganAtPercent ?? 'n/a'} %, exposure reached (judged) ${r.exposureReachedPercent ?? 'n/a'} %`,
  );
  const share = r.scopes.neverExposedShare;
  const expected = r.caughtAtPercent === null ? null : 1 - r.caughtAtPercent / 100;
  add(
    'the scopes outside the caught step were never exposed',
    share !== null && expected !== null && r.highestExposurePercent === r.caughtAtPercent && share >= expected - NEVER_EXPOSED_TOLERANCE,
    `${r.scopes.neverExposed} of ${r.scopes.withTraffic} scopes with traffic (${share === null ? 'n/a' : `${(share * 100).toFixed(1)} %`}) never exposed; highest exposure applied ${r.highestExposurePercent} %`,
  );
  add(
    `the kill switch stopped exposure within ${KILL_SWITCH_BOUND_SECONDS} s`,
    r.killSwitchSeconds !== null && r.killSwitchSeconds <= KILL_SWITCH_BOUND_SECONDS,
    r.killSwitchSeconds === null ? 'no confirmed kill switch' : `0 % on every instance ${r.killSwitchSeconds.toFixed(2)} s after the decision`,
  );
  add(
    'the durable rollback was verified within the runbook\'s budget',
    r.rollbackSeconds !== null && r.rollbackBudgetSeconds !== null && r.rollbackSeconds <= r.rollbackBudgetSeconds,
    r.rollbackSeconds === null ? 'not verified' : `${r.rollbackSeconds.toFixed(2)} s from the decision to verified (budget ${r.rollbackBudgetSeconds} s)`,
  );
  add('the control cohort stayed healthy', r.controlHealthy, controlDetail(r));
}

function controlDetail(r: NonNullable<Observations['stepped']>): string {
  const c = r.control;
  return c ? `control at the ${r.comparedAtPercent} % step: ${c.requests} requests, ${c.serverErrors} 5xx, fallbacks ${(c.fallbackRate * 100).toFixed(1)} %` : 'no control window';
}
