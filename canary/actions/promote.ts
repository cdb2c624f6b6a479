/**
 * Promotion: a passing staging run pins the commit, turns the flag on and (stepped canary) pins the exposure
 * percentage it reached in Pulumi.production.yaml (then `pulumi up -s production` applies it, guarded by the
 * staging report); a passing production run is the sign-off.
 */
import { isValidExposurePercent } from '../../service/domain/exposure';
import { EXPOSURE_PERCENT_KEY, FLAG_KEY, PINNED_COMMIT_KEY, setStackConfig } from './stack-file';

export interface PromotionResult {
  outcome: 'promoted' | 'signed_off';
  detail: string;
  nextCommand?: string;
}

/**
 * What a staging promotion writes into Pulumi.production.yaml. With the percentage the stepped canary reached and
 * judged, production's exposure ceiling is pinned to it, like the commit: it is the most the staging report lets
 * production's guard accept, and it lowers production's ceiling when staging judged less than production had.
 * Without one (a run that judged the flag as a whole) the ceiling is left as the file has it.
 */
export function promotionEntries(deployId: string, exposureReachedPercent?: number): Record<string, string | boolean | number> {
  if (exposureReachedPercent !== undefined && !isValidExposurePercent(exposureReachedPercent)) {
    throw new Error(`cannot promote: exposure reached ${exposureReachedPercent} is not a percentage from 0 to 100 in steps of 0.01`);
  }
  return {
    [PINNED_COMMIT_KEY]: deployId,
    [FLAG_KEY]: true,
    ...(exposureReachedPercent !== undefined ? { [EXPOSURE_PERCENT_KEY]: exposureReachedPercent } : {}),
  };
}

/**
 * `exposureReachedPercent`: the stepped canary's highest judged step (the same value its report summary carries as
 * `exposureReachedPercent`, which production's guard checks the pinned percentage against).
 */
export function promote(
  stack: 'staging' | 'production',
  deployId: string,
  productionStackFile: string,
  dryRun: boolean,
  exposureReachedPercent?: number,
): PromotionResult {
  if (stack === 'production') {
    // The stepped rollout's sign-off pins the percentage it reached as production's ceiling, as a promotion pins
    // staging's: the next `pulumi up` keeps what the canary judged, and never more.
    if (exposureReachedPercent === undefined) return { outcome: 'signed_off', detail: 'production canary passed: rollout signed off' };
    const entries = { [EXPOSURE_PERCENT_KEY]: exposureReachedPercent };
    if (!isValidExposurePercent(exposureReachedPercent)) throw new Error(`cannot sign off: exposure reached ${exposureReachedPercent} is not a percentage from 0 to 100 in steps of 0.01`);
    if (dryRun) return { outcome: 'signed_off', detail: `production canary passed: rollout signed off (dry run: would write ${JSON.stringify(entries)} into ${productionStackFile})` };
    const changed = setStackConfig(productionStackFile, entries);
    return {
      outcome: 'signed_off',
      detail: `production canary passed: rollout signed off; wrote ${EXPOSURE_PERCENT_KEY}: ${exposureReachedPercent} into ${productionStackFile}${changed.length ? '' : ' (already set)'}`,
    };
  }
  const entries = promotionEntries(deployId, exposureReachedPercent);
  if (dryRun) return { outcome: 'promoted', detail: `dry run: would write ${JSON.stringify(entries)} into ${productionStackFile}`, nextCommand: 'pulumi up -s production' };
  const changed = setStackConfig(productionStackFile, entries);
  const written = Object.entries(entries).map(([key, value]) => `${key}: ${String(value)}`);
  return {
    outcome: 'promoted',
    detail: `wrote ${written.join(', ')} into ${productionStackFile}${changed.length ? '' : ' (already set)'}`,
    nextCommand: 'pulumi up -s production',
  };
}
