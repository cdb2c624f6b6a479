/**
 * "Rollback Time: < 5 minutes", measured: from the decision (wall clock) to the verification that passed, the
 * code rollback's when the flag alone did not fix it. Pure over the state file.
 */
import type { CanaryState } from './state-file';

export interface RollbackDuration {
  decidedAt: string;
  /** when verification passed; null when it never did */
  verifiedAt: string | null;
  /** decision to verification; null when it was never verified */
  seconds: number | null;
  budgetSeconds: number;
  /** null: not verified, so not within anything */
  withinBudget: boolean | null;
}

export function rollbackDuration(state: Pick<CanaryState, 'decidedAt' | 'rollback' | 'codeRollback'>, maxDurationMinutes: number): RollbackDuration | null {
  if (!state.decidedAt || !state.rollback) return null;
  const verifiedAt = state.codeRollback?.verifiedAt ?? state.rollback.verifiedAt ?? null;
  const seconds = verifiedAt === null ? null : Math.max(0, (Date.parse(verifiedAt) - Date.parse(state.decidedAt)) / 1000);
  const budgetSeconds = maxDurationMinutes * 60;
  return { decidedAt: state.decidedAt, verifiedAt, seconds, budgetSeconds, withinBudget: seconds === null ? null : seconds <= budgetSeconds };
}

export function formatDuration(seconds: number): string {
  const whole = Math.round(seconds);
  return whole < 60 ? `${whole} s` : `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
}

/** One line for the webhook, the sign-off and the incident record. */
export function describeRollbackDuration(duration: RollbackDuration): string {
  const budget = `runbook: < ${formatDuration(duration.budgetSeconds)}`;
  if (duration.seconds === null) return `rollback not verified (${budget}): FAIL`;
  return `rollback time ${formatDuration(duration.seconds)} from decision to verified (${budget}): ${duration.withinBudget ? 'PASS' : 'FAIL'}`;
}
