/**
 * Canary detection benchmark over the timeline corpus (npm run bench:canary [-- --policy FILE] [--stepped-runs N]),
 * then the stepped canary's false-positive rate and power by simulation (bench/canary-stepped.ts).
 * For each regression: the delay from breach onset to the rollback decision, and from the first
 * window whose counts show a significant breach (found here independently of the analysis, from
 * raw counter deltas) to the decision. Target: <= 1 poll interval after such a window. Healthy
 * timelines must never roll back.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { analyze } from '../canary/analysis';
import { wilsonInterval } from '../canary/analysis/stats';
import { activeCheckpoint, loadPolicy, type CanaryPolicy } from '../canary/policy';
import { loadTimeline, type Timeline } from '../canary/timeline';
import { memoryMetricsSchema, type MetricTotals } from '../service/contracts/http';
import { benchClustered, benchStepped } from './canary-stepped';

const { values } = parseArgs({ options: { policy: { type: 'string' }, timelines: { type: 'string' }, 'stepped-runs': { type: 'string' }, 'clustered-runs': { type: 'string' }, 'clustered-only': { type: 'boolean' } } });
const policy = loadPolicy(values.policy ?? join(__dirname, '../canary/policy.yaml'));
const dir = values.timelines ?? join(__dirname, '../canary/timelines');
const poll = policy.pollIntervalSeconds;

/** Minute of the first poll window whose summed counter deltas significantly breach the thresholds in force. */
function firstSignificantWindow(timeline: Timeline, p: CanaryPolicy): number | undefined {
  let previous = new Map<string, MetricTotals>();
  for (const m of timeline.measurements) {
    const current = new Map<string, MetricTotals>();
    for (const s of m.samples) {
      const parsed = memoryMetricsSchema.safeParse(s.body);
      if (s.status === 200 && parsed.success && (!timeline.deployId || parsed.data.deployId === timeline.deployId)) {
        current.set(`${parsed.data.instanceId}@${parsed.data.startedAt}`, parsed.data.totals);
      }
    }
    if (current.size === 0) continue;
    let calls = 0, errors = 0, reads = 0, fallbacks = 0, latencySum = 0, latencyCount = 0;
    for (const [key, t] of current) {
      const before = previous.get(key) ?? (previous.size === 0 ? undefined : t);
      const b = before ?? { context7Requests: 0, context7Errors: 0, requests: 0, fallbacks: 0, latencyMsSum: 0, latencyCount: 0 };
      calls += t.context7Requests - b.context7Requests;
      errors += t.context7Errors - b.context7Errors;
      reads += t.requests - b.requests;
      fallbacks += t.fallbacks - b.fallbacks;
      latencySum += t.latencyMsSum - b.latencyMsSum;
      latencyCount += t.latencyCount - b.latencyCount;
    }
    previous = current;
    const limits = activeCheckpoint(p, m.atSeconds / 60).rollbackIf;
    const significant =
      (limits.errorRate && 'above' in limits.errorRate && calls >= p.minimumSample.context7Requests &&
        wilsonInterval(errors, calls, p.confidence).lower > limits.errorRate.above) ||
      (limits.fallbackRate && 'above' in limits.fallbackRate && reads >= p.minimumSample.memoryRequests &&
        wilsonInterval(fallbacks, reads, p.confidence).lower > limits.fallbackRate.above) ||
      (limits.avgLatencyMs && 'above' in limits.avgLatencyMs && latencyCount >= p.minimumSample.context7Requests &&
        latencySum / latencyCount > limits.avgLatencyMs.above);
    if (significant) return m.atSeconds / 60;
  }
  return undefined;
}

/** `--clustered-only`: the scope-clustered section alone (minutes), skipping the timeline corpus and the per-request tables. */
const clusteredOnly = values['clustered-only'] === true;
const files = clusteredOnly ? [] : readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
let failures = 0;
let falseRollbacks = 0;
let healthyCount = 0;
console.log(`policy: poll every ${poll}s; ${files.length} timelines in ${dir}\n`);
if (!clusteredOnly) console.log('regression timeline               onset  evidence  decided  onset->decision  evidence->decision  verdict');
for (const file of files) {
  const timeline = loadTimeline(join(dir, file));
  const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
  const decided = result.decision;
  if (timeline.healthy) {
    healthyCount++;
    if (decided?.kind === 'rollback') falseRollbacks++;
    continue;
  }
  const onset = timeline.expected?.breachOnsetMinute;
  if (timeline.expected?.decision !== 'rollback' || onset === undefined) continue;
  const evidence = firstSignificantWindow(timeline, policy);
  const decidedMinute = decided?.kind === 'rollback' ? decided.atSeconds / 60 : undefined;
  const toIntervals = (minutes: number) => (minutes * 60) / poll;
  const afterEvidence = decidedMinute !== undefined && evidence !== undefined ? toIntervals(decidedMinute - evidence) : undefined;
  const ok = decidedMinute !== undefined && (evidence === undefined || (afterEvidence ?? Infinity) <= 1);
  if (!ok) failures++;
  console.log(
    [
      timeline.name.padEnd(33),
      String(onset).padStart(5),
      (evidence === undefined ? '-' : String(evidence)).padStart(9),
      (decidedMinute === undefined ? 'never' : String(decidedMinute)).padStart(8),
      (decidedMinute === undefined ? '-' : `${toIntervals(decidedMinute - onset).toFixed(1)} polls`).padStart(16),
      (afterEvidence === undefined ? '-' : `${afterEvidence.toFixed(1)} polls`).padStart(19),
      ok ? ' PASS' : ' FAIL',
    ].join(' '),
  );
}
if (!clusteredOnly) console.log(`\nfalse rollbacks over ${healthyCount} healthy timelines: ${falseRollbacks} (target 0) ${falseRollbacks === 0 ? 'PASS' : 'FAIL'}`);
if (!clusteredOnly) console.log(`detection: ${failures} regression(s) decided later than 1 poll after significant evidence (target 0) ${failures === 0 ? 'PASS' : 'FAIL'}`);
const steppedPass = clusteredOnly || benchStepped(policy, Number(values['stepped-runs'] ?? 1000));
const clusteredPass = benchClustered(policy, Number(values['clustered-runs'] ?? 200));
const pass = failures === 0 && falseRollbacks === 0 && steppedPass && clusteredPass;
console.log(`\nbench:canary ${pass ? 'PASS' : 'FAIL'}`);
process.exitCode = pass ? 0 : 1;
