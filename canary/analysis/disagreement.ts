/**
 * Two independent sources telling different stories is itself a finding: a service that reports healthy while
 * Render's load balancer sees it answer 5xx (or answer slowly) is misreporting, crashing between polls, or
 * wedged on routes its own counters do not cover. Pure: the figures of one step in, the findings out.
 */
import type { MetricJudgement } from './judge';
import type { HealthState } from './measurement';
import type { ObservationJudgement } from './observations';

export type DisagreementKind = 'service_healthy_platform_5xx' | 'service_fast_platform_slow';

export interface Disagreement {
  kind: DisagreementKind;
  detail: string;
}

export interface DisagreementInput {
  /** the service's own health answer */
  health: HealthState;
  /** the service's own figures judged against the thresholds in force */
  breachChecks: MetricJudgement[];
  /** the platform source's figures judged against policy.platform.rollbackIf */
  platform: ObservationJudgement[];
}

export function findDisagreements(input: DisagreementInput): Disagreement[] {
  const found: Disagreement[] = [];
  const serviceAnswers = input.health === 'available' || input.health === 'unavailable';
  const serviceBreached = input.breachChecks.some((check) => check.verdict === 'fail');
  const fivexx = input.platform.find((j) => j.name === 'http5xxRate' && j.verdict === 'fail');
  if (fivexx && serviceAnswers && !serviceBreached) {
    found.push({
      kind: 'service_healthy_platform_5xx',
      detail:
        `the service reports healthy (health ${input.health}, no breach in its own metrics) while Render's load balancer ` +
        `sees ${(fivexx.value * 100).toFixed(1)}% 5xx (${fivexx.reason})`,
    });
  }
  const p95 = input.platform.find((j) => j.name === 'p95LatencyMs' && j.verdict === 'fail');
  const ownLatency = input.breachChecks.find((check) => check.metric === 'avgLatencyMs');
  if (p95 && ownLatency?.verdict === 'pass') {
    found.push({
      kind: 'service_fast_platform_slow',
      detail: `the service reports an average latency of ${ownLatency.value.toFixed(0)} ms while Render's load balancer sees a p95 of ${p95.value.toFixed(0)} ms`,
    });
  }
  return found;
}
