/**
 * Writes the timeline corpus (canary/timelines/*.json). Each case states the decision the canary
 * must reach under canary/policy.yaml. Run: npx tsx canary/timelines/generate.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExpectedDecision, Timeline } from '../timeline';
import { simulate, type ScenarioSpec } from './simulate';

const DEPLOY = '3f2a9c1d7e4b';
const steady = (value: number) => () => value;
const healthyInstance = (id: string, requestsPerMinute: number) => ({
  id,
  requestsPerMinute,
  cacheHitRate: 0.45,
  errorRate: steady(0.01),
  latencyMs: steady(120),
});

interface Case {
  spec: ScenarioSpec;
  expected: ExpectedDecision;
  healthy?: boolean;
}

const cases: Case[] = [
  {
    spec: {
      name: 'healthy-high-traffic',
      description: 'Two instances, 150 reads/min each, 1% Context7 errors, 45% cache hits, 120 ms.',
      seed: 1,
      deployId: DEPLOY,
      instances: [healthyInstance('srv-a', 150), healthyInstance('srv-b', 150)],
    },
    expected: { decision: 'promote', trigger: 'end' },
    healthy: true,
  },
  {
    spec: {
      name: 'healthy-low-traffic',
      description: 'One read every three minutes: too few calls to judge any rate, and one early error in 3 calls. Must not roll back.',
      seed: 2,
      deployId: DEPLOY,
      instances: [{ ...healthyInstance('srv-a', 0.35), cacheHitRate: 0.3, errorRate: (m) => (m === 3 ? 1 : 0) }],
    },
    expected: { decision: 'hold', trigger: 'end' },
    healthy: true,
  },
  {
    spec: {
      name: 'step-regression-20min',
      description: 'Healthy, then at minute 20 Context7 starts failing 25% of calls.',
      seed: 3,
      deployId: DEPLOY,
      instances: [
        { ...healthyInstance('srv-a', 120), errorRate: (m) => (m > 20 ? 0.25 : 0.01) },
        { ...healthyInstance('srv-b', 120), errorRate: (m) => (m > 20 ? 0.25 : 0.01) },
      ],
    },
    expected: { decision: 'rollback', trigger: 'breach', breachOnsetMinute: 20, decidedByMinute: 24 },
  },
  {
    spec: {
      name: 'slow-drift',
      description: 'Context7 errors creep up from 1% by 0.25 points a minute (past 5% at minute 17).',
      seed: 4,
      deployId: DEPLOY,
      instances: [{ ...healthyInstance('srv-a', 200), errorRate: (m) => 0.01 + 0.0025 * m }],
    },
    expected: { decision: 'rollback', trigger: 'breach', breachOnsetMinute: 17, decidedByMinute: 34 },
  },
  {
    spec: {
      name: 'latency-regression',
      description: 'Context7 calls slow down to 1.6 s from minute 8.',
      seed: 5,
      deployId: DEPLOY,
      instances: [{ ...healthyInstance('srv-a', 150), latencyMs: (m) => (m > 8 ? 1600 : 120) }],
    },
    expected: { decision: 'rollback', trigger: 'breach', breachOnsetMinute: 8, decidedByMinute: 12 },
  },
  {
    spec: {
      name: 'flaky-metrics-endpoint',
      description: 'Healthy service whose metrics endpoint times out or answers 503 at times (never 6 polls in a row); health stays up.',
      seed: 6,
      deployId: DEPLOY,
      instances: [healthyInstance('srv-a', 200)],
      metricsFault: (m) =>
        [6, 12, 14, 16, 36, 38, 40, 42].includes(m)
          ? m % 4 === 0
            ? { status: null, error: 'timeout', message: 'no answer within 10 s' }
            : { status: 503, body: { error: 'Service Unavailable' } }
          : undefined,
    },
    expected: { decision: 'promote', trigger: 'end' },
    healthy: true,
  },
  {
    spec: {
      name: 'counter-reset-restart',
      description: 'A healthy instance restarts at minute 25 (new startedAt) and its metrics registry resets at minute 41 (same startedAt).',
      seed: 7,
      deployId: DEPLOY,
      instances: [{ ...healthyInstance('srv-a', 200), restartsAt: [25], counterResetsAt: [41] }],
    },
    expected: { decision: 'promote', trigger: 'end' },
    healthy: true,
  },
  {
    spec: {
      name: 'two-instances-disagree',
      description: 'srv-a serves 400 reads/min at 1% errors, srv-b 6 reads/min at 60%: averaging percentages says 30% (roll back), summed counts say 1.8% (promote).',
      seed: 8,
      deployId: DEPLOY,
      instances: [healthyInstance('srv-a', 400), { ...healthyInstance('srv-b', 6), errorRate: steady(0.6) }],
    },
    expected: { decision: 'promote', trigger: 'end' },
    healthy: true,
  },
  {
    spec: {
      name: 'one-bad-instance-of-two',
      description: 'Equal traffic on two instances; srv-b fails 30% of Context7 calls from the start: summed, 15.5% errors.',
      seed: 9,
      deployId: DEPLOY,
      instances: [healthyInstance('srv-a', 150), { ...healthyInstance('srv-b', 150), errorRate: steady(0.3) }],
    },
    expected: { decision: 'rollback', trigger: 'breach', breachOnsetMinute: 0, decidedByMinute: 2 },
  },
  {
    spec: {
      name: 'malformed-payloads',
      description: 'From minute 10 every metrics payload is malformed (missing totals, negative counts, HTML, bad dates) while health is fine: never judged, the canary aborts past the error limit.',
      seed: 10,
      deployId: DEPLOY,
      instances: [healthyInstance('srv-a', 200)],
      metricsFault: (m) => (m >= 10 ? 'corrupt' : undefined),
    },
    expected: { decision: 'abort', trigger: 'measurement_errors', decidedByMinute: 20 },
  },
  {
    spec: {
      name: 'context7-down-from-start',
      description: 'Context7 unreachable from the deploy: every call fails and falls back, health says available:false.',
      seed: 11,
      deployId: DEPLOY,
      instances: [{ ...healthyInstance('srv-a', 150), errorRate: steady(1), latencyMs: steady(2500) }],
      context7Available: () => false,
    },
    expected: { decision: 'rollback', trigger: 'breach', breachOnsetMinute: 0, decidedByMinute: 2 },
  },
  {
    spec: {
      name: 'service-down',
      description: 'Healthy until minute 20, then the whole service stops answering (metrics and health both fail).',
      seed: 12,
      deployId: DEPLOY,
      instances: [healthyInstance('srv-a', 150)],
      metricsFault: (m) => (m > 20 ? { status: null, error: 'network', message: 'connect ECONNREFUSED' } : undefined),
      healthAt: (m) => (m > 20 ? { status: 502, body: '<html>Bad Gateway</html>' } : undefined),
    },
    expected: { decision: 'rollback', trigger: 'service_down', breachOnsetMinute: 20, decidedByMinute: 24 },
  },
  {
    spec: {
      name: 'store-outage',
      description:
        'Healthy, then at minute 20 PostgreSQL stops answering: 95% of store reads miss their deadline and answer 503 (store errors, not fallbacks) while Context7 keeps answering. Turning Context7 off cannot fix it: abort and alert, no rollback.',
      seed: 14,
      deployId: DEPLOY,
      instances: [
        { ...healthyInstance('srv-a', 120), storeErrorRate: (m) => (m > 20 ? 0.95 : 0) },
        { ...healthyInstance('srv-b', 120), storeErrorRate: (m) => (m > 20 ? 0.95 : 0) },
      ],
    },
    expected: { decision: 'abort', trigger: 'store_errors', breachOnsetMinute: 20, decidedByMinute: 24 },
  },
  {
    spec: {
      name: 'store-outage-with-context7-regression',
      description:
        'At minute 20 PostgreSQL stops answering (95% store errors) and Context7 starts failing 25% of calls: both breach at the same poll. The store failure takes precedence: abort and alert, no rollback.',
      seed: 15,
      deployId: DEPLOY,
      instances: [
        { ...healthyInstance('srv-a', 120), errorRate: (m) => (m > 20 ? 0.25 : 0.01), storeErrorRate: (m) => (m > 20 ? 0.95 : 0) },
        { ...healthyInstance('srv-b', 120), errorRate: (m) => (m > 20 ? 0.25 : 0.01), storeErrorRate: (m) => (m > 20 ? 0.95 : 0) },
      ],
    },
    expected: { decision: 'abort', trigger: 'store_errors', breachOnsetMinute: 20, decidedByMinute: 24 },
  },
  {
    spec: {
      name: 'store-errors-below-threshold',
      description: 'Healthy, with 1% of store reads failing throughout (transient PostgreSQL errors): well under the 5% store-error bound, no effect on the decision.',
      seed: 16,
      deployId: DEPLOY,
      instances: [{ ...healthyInstance('srv-a', 200), storeErrorRate: steady(0.01) }],
    },
    expected: { decision: 'promote', trigger: 'end' },
    healthy: true,
  },
  {
    spec: {
      name: 'stale-deploy-instance',
      description: 'An instance of the previous deploy still answers (with 40% errors): its figures are refused, the new deploy is healthy.',
      seed: 13,
      deployId: DEPLOY,
      instances: [
        healthyInstance('srv-a', 200),
        { ...healthyInstance('srv-old', 50), deployId: '0ld0ld0ld0ld', errorRate: steady(0.4) },
      ],
    },
    expected: { decision: 'promote', trigger: 'end' },
    healthy: true,
  },
];

const dir = __dirname;
for (const { spec, expected, healthy } of cases) {
  const timeline: Timeline = {
    name: spec.name,
    description: spec.description,
    deployId: spec.deployId,
    pollIntervalSeconds: spec.pollIntervalSeconds ?? 120,
    ...(healthy ? { healthy } : {}),
    expected,
    measurements: simulate(spec),
  };
  writeFileSync(join(dir, `${spec.name}.json`), JSON.stringify(timeline) + '\n');
  console.log(`wrote ${spec.name}.json (${timeline.measurements.length} measurements)`);
}
