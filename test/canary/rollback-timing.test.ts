import { describe, expect, it } from 'vitest';
import { describeRollbackDuration, formatDuration, rollbackDuration } from '../../canary/actions/rollback-timing';

const decidedAt = '2026-11-24T10:00:00.000Z';

describe('rollbackDuration', () => {
  it('runs from the decision to the verification that passed, the code rollback one when there was one', () => {
    expect(rollbackDuration({ decidedAt, rollback: { verifiedAt: '2026-11-24T10:02:30.000Z' } }, 5)).toEqual({
      decidedAt,
      verifiedAt: '2026-11-24T10:02:30.000Z',
      seconds: 150,
      budgetSeconds: 300,
      withinBudget: true,
    });
    const code = rollbackDuration(
      { decidedAt, rollback: { verificationFailed: 'errors persist' }, codeRollback: { faultPersistedAt: '2026-11-24T10:03:00.000Z', verifiedAt: '2026-11-24T10:07:01.000Z' } },
      5,
    );
    expect(code).toMatchObject({ seconds: 421, withinBudget: false });
    expect(describeRollbackDuration(code!)).toBe('rollback time 7 min 01 s from decision to verified (runbook: < 5 min 00 s): FAIL');
  });

  it('is not verified, and so not within budget, when no verification passed; absent without a rollback', () => {
    const never = rollbackDuration({ decidedAt, rollback: { verificationFailed: 'still failing' } }, 5)!;
    expect(never).toMatchObject({ verifiedAt: null, seconds: null, withinBudget: null });
    expect(describeRollbackDuration(never)).toBe('rollback not verified (runbook: < 5 min 00 s): FAIL');
    expect(rollbackDuration({ decidedAt }, 5)).toBeNull();
    expect(formatDuration(59.6)).toBe('1 min 00 s');
    expect(formatDuration(42)).toBe('42 s');
  });
});
