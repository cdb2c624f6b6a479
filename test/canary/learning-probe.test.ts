/**
 * The learning probe in a canary run against a real in-process service and the Context7 emulator: it passes while
 * Context7 is healthy (saved to context7, read back from context7/hybrid), fails while Context7 fails (database
 * only), its traffic never reaches the figures the canary judges, and its key never appears in a report.
 */
import { mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InMemoryState } from '../../canary/actions/state-file';
import { runCanary } from '../../canary/controller';
import { parsePolicy } from '../../canary/policy';
import { silentProgress } from '../../canary/progress';
import { httpProbe } from '../../canary/sources/http';
import { createHttpMetricSource } from '../../canary/sources/metrics-poller';
import { createLearningProbe, PROBE_LOCATION, probeScopeId, withLearningProbe } from '../../canary/probe/learning-probe';
import { PROBE_LOCATION_PREFIX } from '../../service/domain/scope-id';
import { startHarness, TEST_CALLER_KEYS, type Harness } from '../service/support/harness';
import { noRenderPlatform } from '../../render/platform';

const REPO = join(__dirname, '../..');
const PROBE_KEY = 'canary-probe-key-5a5a5a5a5a5a5a5a5a5a';
// The test policy with a probe section small enough for a 10-minute analysis (21 measurements).
const policy = parsePolicy(
  readFileSync(join(__dirname, 'fixtures/e2e-policy.yaml'), 'utf8') + '\nprobe:\n  everyMeasurements: 1\n  maxFailureRate: 0.2\n  minimumProbes: 3\n  patternTtlMinutes: 60\n',
);

let harness: Harness | undefined;
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'canary-probe-'));
  for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
});
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function canaryWithProbe(h: Harness) {
  let clock = Date.parse('2026-11-24T10:00:00.000Z');
  const scopeId = probeScopeId('staging', 'test-run');
  // expiresAt is judged by the real service on its own clock: the probe stamps it from the wall clock, not the canary's.
  const probe = createLearningProbe({ baseUrl: h.url, probeKey: PROBE_KEY, scopeId, http: httpProbe, timeoutMs: 2000, patternTtlMs: 3_600_000, now: Date.now });
  return runCanary({
    policy,
    stack: 'staging',
    baseUrl: h.url,
    serviceId: null,
    source: withLearningProbe(createHttpMetricSource({ baseUrl: h.url, policy, probe: httpProbe }), probe, policy.probe.everyMeasurements),
    stateFile: new InMemoryState(),
    stackDir: dir,
    reportDir: join(dir, 'report'),
    timeScale: 60,
    dryRun: true,
    render: undefined,
    measuredOn: noRenderPlatform(h.url),
    notifier: { async notify() {} },
    probe: httpProbe,
    progress: silentProgress,
    operator: 'test',
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
  });
}

function startService(emulatorFaults: Record<string, number> = {}) {
  // The probe key is restricted to the probe location, like production's.
  return startHarness({ emulator: { faults: emulatorFaults }, env: { MEMORY_API_KEYS: `${TEST_CALLER_KEYS};canary-probe:${PROBE_KEY}:${PROBE_LOCATION}` } });
}

function reportFiles(paths: Record<string, string | undefined>): string[] {
  return Object.values(paths).flatMap((file) => (file ? [readFileSync(file, 'utf8')] : []));
}

describe('the learning probe in a canary run', () => {
  it('passes while Context7 is healthy, and its traffic is counted apart from the judged figures', async () => {
    expect(PROBE_LOCATION.startsWith(PROBE_LOCATION_PREFIX)).toBe(true);
    harness = await startService();
    const run = await canaryWithProbe(harness);

    const probe = run.result.probe!;
    expect(probe.runs).toBe(run.state.measurements.length);
    expect(probe).toMatchObject({ verdict: 'pass', notRun: 0, savesToContext7: { verdict: 'pass' }, attestation: { verdict: 'pass' } });
    expect(probe.lastResult).toMatchObject({ outcome: 'ok', patternFound: true, destinations: expect.arrayContaining(['context7']) });
    expect(['context7', 'hybrid']).toContain(probe.lastResult!.source);
    expect(run.result.checkpoints.at(-1)?.probe?.verdict).toBe('pass');

    // Every probe reached Context7, yet the canary measured no memory request and no Context7 call.
    expect(harness.emulator!.stats().requests.upsertPatterns).toBeGreaterThanOrEqual(probe.runs);
    const judged = run.result.steps.at(-1)!.cumulative.counts;
    expect(judged).toMatchObject({ requests: 0, context7Requests: 0, fallbacks: 0, storeRequests: 0 });
    const metrics = await harness.request('GET', '/api/metrics/memory');
    expect(metrics.body.totals.probeRequests).toBe(2 * probe.runs);

    const report = JSON.parse(readFileSync(run.reportPaths.json, 'utf8'));
    expect(report.probe).toMatchObject({ runs: probe.runs, verdict: 'pass', failuresByKind: { not_saved_to_context7: 0, wrong_source: 0, pattern_missing: 0, not_run: 0 } });
    const signoff = readFileSync(run.reportPaths.signoff, 'utf8');
    expect(signoff).toContain('**Post-call learning saves to Context7**: YES');
    expect(signoff).toContain('**Attestation shows correct source**: YES');
    expect(readFileSync(run.reportPaths.html, 'utf8')).toContain('<h2>Learning probe</h2>');
    for (const text of reportFiles(run.reportPaths)) expect(text).not.toContain(PROBE_KEY);
    expect(JSON.stringify(run.state)).not.toContain(PROBE_KEY);
  });

  it('fails while Context7 fails: saved to the database only and read back from the database', async () => {
    harness = await startService({ errorRate: 1 });
    const run = await canaryWithProbe(harness);

    const probe = run.result.probe!;
    expect(probe.judged).toBeGreaterThanOrEqual(policy.probe.minimumProbes);
    expect(probe).toMatchObject({ verdict: 'fail', savesToContext7: { verdict: 'fail' }, attestation: { verdict: 'fail' } });
    expect(probe.failuresByKind.not_saved_to_context7).toBe(probe.judged);
    expect(probe.failuresByKind.wrong_source).toBe(probe.judged);
    expect(probe.lastResult).toMatchObject({ outcome: 'failed', destinations: ['database'], source: 'database', patternFound: true });

    const signoff = readFileSync(run.reportPaths.signoff, 'utf8');
    expect(signoff).toContain('**Post-call learning saves to Context7**: NO');
    expect(signoff).toContain('**Attestation shows correct source**: NO');
    expect(JSON.parse(readFileSync(run.reportPaths.json, 'utf8')).probe).toMatchObject({ verdict: 'fail', lastResult: { source: 'database' } });
    for (const text of reportFiles(run.reportPaths)) expect(text).not.toContain(PROBE_KEY);
  });

  it('a probe key the service refuses is a measurement problem, never a failure', async () => {
    harness = await startHarness({ emulator: {} });
    const run = await canaryWithProbe(harness);
    expect(run.result.probe).toMatchObject({ verdict: 'not_run', judged: 0 });
    // 401 at first; once the wrong key has used up the caller-key failure limit, 429 (still not the probe's failure).
    expect(run.result.probe!.lastResult!.detail).toMatch(/HTTP (401|429)/);
    expect(readFileSync(run.reportPaths.signoff, 'utf8')).toContain('**Post-call learning saves to Context7**: NOT SHOWN (the probe could not run)');
  });
});

describe('the probe\'s requests', () => {
  it('save with the probe key in a probe scope, expire on their own, read back with a matching query, every N measurements', async () => {
    const sent: { path: string; body: any; authorization: string | undefined }[] = [];
    const http: typeof httpProbe = async (url, options) => {
      sent.push({ path: new URL(url).pathname, body: options.body, authorization: options.headers?.authorization });
      return new URL(url).pathname === '/api/memory/patterns'
        ? { status: 200, body: { saved: 1, inserted: 1, patternIds: ['p'], destinations: ['database', 'context7'] } }
        : { status: 200, body: { snippets: [{ id: 'p', content: 'canary learning probe tok1' }], source: 'context7', attestation: { backend: 'context7', scopeId: 's', snippetsApplied: 1 } } };
    };
    const scopeId = probeScopeId('production', 'run-1');
    expect(scopeId.startsWith(`scope:${PROBE_LOCATION_PREFIX}`)).toBe(true);
    const probe = createLearningProbe({ baseUrl: 'http://svc/', probeKey: PROBE_KEY, scopeId, http, timeoutMs: 1000, patternTtlMs: 3_600_000, now: () => Date.parse('2026-01-01T00:00:00.000Z'), uniqueToken: () => 'tok1' });
    let measured = 0;
    const source = withLearningProbe({ measure: async (atSeconds) => ({ atSeconds, samples: [{ status: 200, body: { n: ++measured } }] }) }, probe, 2);
    const measurements = [await source.measure(0), await source.measure(30), await source.measure(60)];
    expect(measurements.map((m) => m.probe?.outcome ?? null)).toEqual(['ok', null, 'ok']);
    expect(sent.map((s) => s.path)).toEqual(['/api/memory/patterns', '/api/memory/snippets', '/api/memory/patterns', '/api/memory/snippets']);
    expect(sent.every((s) => s.authorization === `Bearer ${PROBE_KEY}` && s.body.scopeId === scopeId)).toBe(true);
    expect(sent[0]!.body.patterns).toEqual([{ content: 'canary learning probe tok1', expiresAt: '2026-01-01T01:00:00.000Z', metadata: { canaryProbe: true } }]);
    expect(sent[1]!.body).toMatchObject({ query: 'tok1' });
    expect(JSON.stringify(measurements)).not.toContain(PROBE_KEY);
  });
});
