/**
 * The load thresholds, read from the canary policy through the canary's own loader (the policy
 * is parsed once, by one parser), then checked and shaped into the file the k6 script open()s.
 */
import { relative } from 'node:path';
import { loadPolicy } from '../../canary/policy';
import { applyProfile, thresholdSpecs, type LoadThresholdPolicy, type ThresholdProfile, type ThresholdsFile } from '../lib/thresholds';

export const DEFAULT_POLICY_PATH = 'canary/policy.yaml';

export function thresholdsFromPolicy(policyPath: string, profile: ThresholdProfile): ThresholdsFile {
  const policy = loadPolicy(policyPath);
  const thirtyDay = policy.thirtyDayProfile.avgLatencyMs;
  const thirtyDayBelow = thirtyDay && 'below' in thirtyDay ? thirtyDay.below : undefined;
  const load = applyProfile(policy.load as LoadThresholdPolicy, profile, thirtyDayBelow);
  thresholdSpecs(load); // fails here, before any traffic, on a section the scripts cannot honour
  const shown = relative(process.cwd(), policyPath);
  return { source: shown.startsWith('..') ? policyPath : shown, profile, load };
}
