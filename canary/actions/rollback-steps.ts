/** The rollback's steps as the reports show them: flag rollback, then code rollback when there was one. */
import type { ActionRecord } from './state-file';

/** Action names recorded once per step, with the step's verdict (code-rollback.ts). */
export const ROLLBACK_STEP_ACTIONS = ['flag-rollback', 'code-rollback'] as const;

export function rollbackSteps(actions: readonly ActionRecord[]): ActionRecord[] {
  return actions.filter((a) => (ROLLBACK_STEP_ACTIONS as readonly string[]).includes(a.action));
}

/** "flag-rollback: ...; code-rollback: ..." or undefined when no rollback step was recorded. */
export function describeRollbackSteps(actions: readonly ActionRecord[]): string | undefined {
  const steps = rollbackSteps(actions);
  return steps.length ? steps.map((s) => `${s.action} (${s.ok ? 'ok' : 'not ok'}): ${s.detail}`).join('; ') : undefined;
}
