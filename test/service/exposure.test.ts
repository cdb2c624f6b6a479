import { describe, expect, it } from 'vitest';
import {
  checkExposureChange,
  cohortOf,
  effectiveExposurePercent,
  EXPOSURE_BUCKETS,
  exposureBucket,
  isExposed,
  isValidExposurePercent,
} from '../../service/domain/exposure';
import { generateScopeIdSync } from '../../service/domain/scope-id';

const scopes = Array.from({ length: 20_000 }, (_, i) =>
  generateScopeIdSync({ locationId: `loc-${i % 37}`, agentId: `agent-${i}`, promptText: `prompt ${i}` }),
);

describe('exposure by scope hash', () => {
  it('is stable: the same bucket for the same scope id, pinned to sha256', () => {
    // Pinned: a change of hash would move agents between backends mid-rollout.
    expect(exposureBucket('scope:loc:agent:0123456789abcdef')).toBe(exposureBucket('scope:loc:agent:0123456789abcdef'));
    expect(exposureBucket('scope:loc:agent:0123456789abcdef')).toBe(317);
    for (const scope of scopes.slice(0, 100)) expect(exposureBucket(scope)).toBeLessThan(EXPOSURE_BUCKETS);
  });

  it('is monotonic: a scope exposed at a percentage stays exposed at every higher one', () => {
    const steps = [0, 1, 5, 25, 50, 99.99, 100];
    for (const scope of scopes) {
      const exposedAt = steps.map((p) => isExposed(scope, p));
      const firstExposed = exposedAt.indexOf(true);
      if (firstExposed >= 0) expect(exposedAt.slice(firstExposed).every(Boolean)).toBe(true);
    }
    expect(scopes.every((scope) => !isExposed(scope, 0))).toBe(true);
    expect(scopes.every((scope) => isExposed(scope, 100))).toBe(true);
  });

  it('exposes about the stated share of scopes', () => {
    for (const percent of [5, 25, 50]) {
      const share = scopes.filter((scope) => cohortOf(scope, percent) === 'treatment').length / scopes.length;
      // 20,000 scopes: the binomial standard deviation is at most 0.35 percentage points.
      expect(Math.abs(share * 100 - percent)).toBeLessThan(1.5);
    }
  });

  it('always exposes the canary probe scopes', () => {
    const probe = generateScopeIdSync({ locationId: 'canaryprobe-staging', agentId: 'probe', promptText: 'p' });
    expect(isExposed(probe, 0)).toBe(true);
  });
});

describe('which percentage wins', () => {
  it('is 0 with the flag off, whatever is stored', () => {
    expect(effectiveExposurePercent({ flagOn: false, ceiling: 100, runtime: 100 })).toBe(0);
  });
  it('starts a fresh deploy (nothing stored) from the ceiling', () => {
    expect(effectiveExposurePercent({ flagOn: true, ceiling: 25, runtime: null })).toBe(25);
  });
  it('keeps the runtime value across a redeploy, clamped to the new ceiling', () => {
    expect(effectiveExposurePercent({ flagOn: true, ceiling: 100, runtime: 5 })).toBe(5);
    expect(effectiveExposurePercent({ flagOn: true, ceiling: 10, runtime: 50 })).toBe(10);
    expect(effectiveExposurePercent({ flagOn: true, ceiling: 100, runtime: 0 })).toBe(0);
  });
  it('lets the runtime value go down any time and up only to the ceiling', () => {
    expect(checkExposureChange(0, 25)).toEqual({ ok: true });
    expect(checkExposureChange(25, 25)).toEqual({ ok: true });
    const above = checkExposureChange(50, 25);
    expect(above.ok).toBe(false);
    expect(!above.ok && above.reason).toMatch(/above the ceiling 25/);
  });
  it('accepts percentages in steps of 0.01 only', () => {
    expect([0, 0.01, 5, 12.5, 100].every(isValidExposurePercent)).toBe(true);
    expect([-1, 100.01, 0.001, Number.NaN, '5', null].some(isValidExposurePercent)).toBe(false);
  });
});
