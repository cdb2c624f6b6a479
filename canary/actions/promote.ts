/**
 * Promotion: a passing staging run pins the commit and turns the flag on in Pulumi.production.yaml
 * (then `pulumi up -s production` applies it, guarded by the staging report); a passing
 * production run is the sign-off.
 */
import { FLAG_KEY, PINNED_COMMIT_KEY, setStackConfig } from './stack-file';

export interface PromotionResult {
  outcome: 'promoted' | 'signed_off';
  detail: string;
  nextCommand?: string;
}

export function promote(stack: 'staging' | 'production', deployId: string, productionStackFile: string, dryRun: boolean): PromotionResult {
  if (stack === 'production') return { outcome: 'signed_off', detail: 'production canary passed: rollout signed off' };
  const entries = { [PINNED_COMMIT_KEY]: deployId, [FLAG_KEY]: true };
  if (dryRun) return { outcome: 'promoted', detail: `dry run: would write ${JSON.stringify(entries)} into ${productionStackFile}`, nextCommand: 'pulumi up -s production' };
  const changed = setStackConfig(productionStackFile, entries);
  return {
    outcome: 'promoted',
    detail: `wrote ${PINNED_COMMIT_KEY}: ${deployId} and ${FLAG_KEY}: true into ${productionStackFile}${changed.length ? '' : ' (already set)'}`,
    nextCommand: 'pulumi up -s production',
  };
}
