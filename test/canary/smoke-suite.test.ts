/**
 * The named smoke suite against the real service and the Context7 emulator: every check passes on a healthy
 * service, the runbook's curls without a credential get 401, and a failing Context7 fails the suite (so the
 * workflow stops before any customer scope is exposed). Its load touches only the probe scopes, which the service
 * counts apart: the canary's judged figures do not move.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../canary/policy';
import { PROBE_LOCATION } from '../../canary/probe/learning-probe';
import { renderSmokeMarkdown, runSmokeSuite } from '../../canary/smoke/suite';
import { httpProbe } from '../../canary/sources/http';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from '../service/support/harness';

const PROBE_KEY = 'smoke-probe-key-0123456789abcdef0123';
const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function smoke(h: Harness, loadSeconds = 1) {
  return runSmokeSuite({
    stack: 'staging',
    baseUrl: h.url,
    probeKey: PROBE_KEY,
    policy,
    http: httpProbe,
    loadSeconds,
    loadRatePerSecond: 20,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  });
}

const start = () =>
  startHarness({
    emulator: {},
    env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, MEMORY_API_KEYS: `canary-probe:${PROBE_KEY}:${PROBE_LOCATION}`, OUTBOX_DRAIN_INTERVAL_MS: '3600000' },
  });

describe('the smoke suite', () => {
  it('passes every check on a healthy service, and its traffic stays out of the judged figures', async () => {
    harness = await start();
    const result = await smoke(harness);
    expect(result.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.checks.map((c) => c.name)).toEqual([
      'health: Context7 available',
      'config: flag on, Context7 available',
      "metrics: the contract's shape",
      'snippets without a credential: refused',
      'backfill without a credential: refused',
      'scope id validation: a placeholder is refused',
      'post-call learning: saved to Context7 and read back',
      'load smoke: 1 s at 20 req/s in probe scopes',
    ]);
    const metrics = (await harness.request('GET', '/api/metrics/memory')).body;
    expect(metrics.totals.probeRequests).toBeGreaterThan(10);
    expect(metrics.totals.requests).toBe(0);
    expect(metrics.totals.context7Requests).toBe(0);
    const markdown = renderSmokeMarkdown(result);
    expect(markdown).toMatch(/^# Smoke suite \(staging\): PASS/);
    expect(markdown).not.toContain(PROBE_KEY);
    expect(JSON.stringify(result)).not.toContain(PROBE_KEY);
  }, 60_000);

  it('fails when Context7 fails: the learning probe save does not reach it', async () => {
    harness = await start();
    harness.emulator!.setFaults({ errorRate: 1 });
    const result = await smoke(harness, 0);
    expect(result.ok).toBe(false);
    const failed = result.checks.filter((c) => !c.ok).map((c) => c.name);
    expect(failed).toContain('post-call learning: saved to Context7 and read back');
    expect(renderSmokeMarkdown(result)).toMatch(/FAIL.*no customer scope was exposed/s);
  }, 60_000);
});
