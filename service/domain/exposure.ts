/**
 * Progressive exposure: which scopes read from Context7 while the flag is on. Pure: no I/O, no clock.
 *
 * - A scope's bucket is a stable hash of its id (0..9,999). It is exposed when its bucket is below the percentage
 *   times 100, so exposure is monotonic: a scope exposed at 5% stays exposed at 25%, and an agent's memory stays
 *   on one backend while the percentage holds or grows.
 * - Scopes outside the percentage are the control cohort: they read from the local store, measured like any
 *   other read. The canary's probe scopes are always exposed (they exist to exercise Context7).
 * - The flag is the ceiling of everything: with ENABLE_CONTEXT7_MEMORY off nothing is exposed.
 * - Which value wins: the stack's percentage (IaC) is the ceiling and the value a fresh deploy starts from; the
 *   runtime value (admin endpoint, persisted) can be lowered at any time and raised only up to the ceiling; a
 *   redeploy keeps the runtime value, clamped to the new ceiling.
 */
import { hash } from 'node:crypto';
import { isProbeScopeId } from './scope-id';

export const COHORTS = ['treatment', 'control'] as const;
export type Cohort = (typeof COHORTS)[number];

/** Buckets per scope hash: exposure moves in steps of 0.01 %. */
export const EXPOSURE_BUCKETS = 10_000;

/**
 * 0..9,999 from the first 32 bits of sha256(scopeId): the same on every instance, release and restart.
 * Runs on every memory request: the one-shot crypto.hash to hex is the cheapest way to them (no Hash object, no
 * Buffer; issue 29's profile).
 */
export function exposureBucket(scopeId: string): number {
  return Number.parseInt(hash('sha256', scopeId, 'hex').slice(0, 8), 16) % EXPOSURE_BUCKETS;
}

/**
 * The scope's bucket and 32 more bits of the same hash (bytes 4..7, independent of the bucket), from one sha256:
 * written into `into` ([bucket, hash]) so a hot path allocates no result object.
 */
export function exposureHashes(scopeId: string, into: Uint32Array): Uint32Array {
  // The same one-shot hash to hex as exposureBucket (the cheapest way to the bits, issue 29's profile).
  const hex = hash('sha256', scopeId, 'hex');
  into[0] = Number.parseInt(hex.slice(0, 8), 16) % EXPOSURE_BUCKETS;
  into[1] = Number.parseInt(hex.slice(8, 16), 16);
  return into;
}

/** A percentage is 0..100 in steps of 0.01; anything else is refused where it enters (HTTP, config). */
export function isValidExposurePercent(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 100 && Math.abs(value * 100 - Math.round(value * 100)) < 1e-9;
}

/** Whether a scope reads from Context7 at this (effective) percentage. */
export function isExposed(scopeId: string, percent: number): boolean {
  if (isProbeScopeId(scopeId)) return true;
  return exposureBucket(scopeId) < Math.round(percent * 100);
}

export function cohortOf(scopeId: string, percent: number): Cohort {
  return isExposed(scopeId, percent) ? 'treatment' : 'control';
}

/**
 * The percentage in force: 0 with the flag off; otherwise the runtime value (or, on a fresh deploy with none
 * stored, the ceiling), never above the ceiling.
 */
export function effectiveExposurePercent(state: { flagOn: boolean; ceiling: number; runtime: number | null }): number {
  if (!state.flagOn) return 0;
  return Math.min(state.runtime ?? state.ceiling, state.ceiling);
}

export type ExposureChangeCheck = { ok: true } | { ok: false; reason: string };

/** A runtime change is allowed when it lowers exposure, or raises it no higher than the ceiling. */
export function checkExposureChange(requested: number, ceiling: number): ExposureChangeCheck {
  if (!isValidExposurePercent(requested)) return { ok: false, reason: 'percent must be a number from 0 to 100 in steps of 0.01' };
  if (requested > ceiling) {
    return { ok: false, reason: `percent ${requested} is above the ceiling ${ceiling} set by the stack (CONTEXT7_EXPOSURE_PERCENT); raise it there first` };
  }
  return { ok: true };
}
