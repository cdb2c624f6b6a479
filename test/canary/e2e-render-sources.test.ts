/**
 * End to end with Render's second sources: a stand-in service on the local platform that reports healthy figures
 * of its own while half its snippet reads answer 500 through the load balancer and log [MEMORY_ERROR]. The canary
 * CLI (dry run) reads GET /logs and GET /metrics/* from the Render emulator, rolls back on the platform's 5xx rate,
 * and its reports show the disagreement, the logs and the platform figures.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { renderIncident } from '../../canary/report/incident';
import { E2E_POLICY, runCanaryCli } from './support/e2e';

const API_KEY = 'rnd_canary_sources_KEY';
let emulator: RenderEmulator;
let client: RenderClient;
let ownerId: string;
let serviceId: string;
let serviceUrl: string;
let dir: string;

/** A stand-in service with these fixture env vars, live on the local platform. */
async function deployStandIn(name: string, envVars: Record<string, string>): Promise<{ id: string; url: string }> {
  const created = await client.createService({
    type: 'web_service',
    name,
    ownerId,
    serviceDetails: { runtime: 'node', numInstances: 1, healthCheckPath: '/healthz', envSpecificDetails: { buildCommand: 'true', startCommand: 'node commit-dependent-service.js' } },
    envVars: [{ key: 'ENABLE_CONTEXT7_MEMORY', value: 'true' }, ...Object.entries(envVars).map(([key, value]) => ({ key, value }))],
  } as Parameters<RenderClient['createService']>[0]);
  await client.waitForDeploy(created.service!.id, created.deployId!, { timeoutMs: 40_000, pollIntervalMs: 200 });
  return { id: created.service!.id, url: (created.service!.serviceDetails as { url: string }).url };
}

/** Until the service's logs hold its first "Startup failed" line, then until it answers again (restarted). */
async function untilCrashedAndBack(id: string, url: string): Promise<void> {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const deadline = Date.now() + 60_000;
  while ((await client.listLogs({ ownerId, resource: [id], text: ['Startup failed'], limit: 1 })).logs.length === 0) {
    if (Date.now() > deadline) throw new Error(`no "Startup failed" in ${id}'s logs within 60 s`);
    await sleep(100);
  }
  while ((await fetch(`${url}/healthz`).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) throw new Error(`${id} did not answer again within 60 s of its crash`);
    await sleep(50);
  }
}

function canaryArgs(id: string, url: string, reportDir: string, policy = E2E_POLICY): string[] {
  return ['--base-url', url, '--stack', 'staging', '--policy', policy, '--render-api-url', emulator.url, '--render-service-id', id,
    '--report-dir', reportDir, '--stack-dir', dir, '--time-scale', '60', '--dry-run'];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'canary-sources-'));
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 5,
    localPlatform: { source: 'working-tree', cwd: join(__dirname, 'fixtures'), readyTimeoutMs: 20_000, logDir: dir, memorySampleMs: 200 },
  });
  client = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
  ownerId = (await client.listOwners())[0]!.id;
  ({ id: serviceId, url: serviceUrl } = await deployStandIn('misreporting', { FIXTURE_SNIPPETS_5XX_SHARE: '0.5' }));
}, 60_000);

afterAll(async () => {
  await emulator?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('canary with Render logs and platform metrics', () => {
  it('rolls back on the load balancer\'s 5xx while the service reports healthy, and reports the disagreement and the logs', async () => {
    let running = true;
    const traffic = (async () => {
      while (running) {
        await fetch(`${serviceUrl}/api/memory/snippets`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }).then((r) => r.arrayBuffer(), () => undefined);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    // Every failed read is both a 5xx at the load balancer and a [MEMORY_ERROR] line, so with the default limits
    // either source may breach first: the platform at 30 requests, the logs past 50 lines (101 reads), and when both
    // breach at one look the logs win. On a loaded machine the canary's first judged look came after 101 reads, and
    // the logs decided. What this test proves is the platform's own verdict, so the logs' limit is set out of reach:
    // they are still read and reported (below), they just cannot decide.
    const policy = join(dir, 'policy-platform-decides.yaml');
    writeFileSync(policy, stringify({
      ...parse(readFileSync(E2E_POLICY, 'utf8')),
      logs: { maxStartupErrors: 0, maxCrashes: 2, maxMemoryErrors: 1_000_000, maxRepeatsPerSignature: 20, maxPagesPerMeasurement: 5 },
    }));
    const reportDir = join(dir, 'report');
    const canary = runCanaryCli(canaryArgs(serviceId, serviceUrl, reportDir, policy), API_KEY);
    const code = await canary.exit;
    running = false;
    await traffic;
    // A dry run (canaryArgs): it would roll back, and did nothing (would_roll_back, exit 6).
    expect(code, canary.output()).toBe(6);

    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8'));
    expect(report.decision).toMatchObject({ kind: 'rollback', trigger: 'platform' });
    expect(report.decision.reason).toMatch(/http5xxRate/);
    // The service's own figures were fine: the two sources disagree, and the report says so.
    expect(report.secondSources.disagreements).toMatchObject([{ kind: 'service_healthy_platform_5xx' }]);
    expect(report.secondSources.platform.judgements.find((j: { name: string }) => j.name === 'http5xxRate').verdict).toBe('fail');
    // The logs were read through GET /logs: the [MEMORY_ERROR] lines are counted under one signature.
    expect(report.secondSources.logs.readable).toBe(true);
    expect(report.secondSources.logs.memoryErrors).toBeGreaterThan(0);
    expect(report.secondSources.logs.breach).toBeUndefined();
    expect(report.secondSources.logs.signatures[0].signature).toBe('[MEMORY_ERROR] snippet read <n> failed: Context7 answered <n>');
    expect(report.measurements.some((m: { logs?: unknown; sources?: unknown }) => m.logs && m.sources)).toBe(true);

    const signoff = readFileSync(join(reportDir, 'signoff.md'), 'utf8');
    expect(signoff).toMatch(/\*\*Issues Encountered\*\*:.*sources disagree/);
    expect(signoff).toContain('**Render Logs**');
    expect(signoff).toContain('**Render Platform Metrics**');
    const html = readFileSync(join(reportDir, 'report.html'), 'utf8');
    expect(html).toContain('Sources disagree');
    expect(html).toContain('Render platform metrics');
    // A dry run writes no incident.md; the record it would write carries the logs excerpt.
    expect(renderIncident(report)).toMatch(/## Render logs excerpt[\s\S]*\[MEMORY_ERROR\] snippet read/);
  }, 120_000);

  it('fails the immediate check "No startup errors" when the new deploy\'s start-up work fails in the logs', async () => {
    // Its start-up work fails 4 s after each start (a crash loop). The canary starts once the first failure is in the
    // logs and the restarted instance answers: so its first look finds the service up (a canary that never saw it
    // answer aborts, `never_reached`, whatever the logs say) however fast the canary itself starts.
    const crashing = await deployStandIn('crashing', { FIXTURE_CRASH_AFTER_MS: '4000' });
    await untilCrashedAndBack(crashing.id, crashing.url);
    const reportDir = join(dir, 'report-crash');
    const canary = runCanaryCli(canaryArgs(crashing.id, crashing.url, reportDir), API_KEY);
    const code = await canary.exit;
    // A dry run (canaryArgs): it would roll back, and did nothing (would_roll_back, exit 6).
    expect(code, canary.output()).toBe(6);
    const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8'));
    expect(report.decision.kind).toBe('rollback');
    expect(['immediate_checks', 'logs']).toContain(report.decision.trigger);
    expect(report.decision.reason).toMatch(/startup error|crash loop/);
    expect(report.secondSources.logs.startupFailures).toBeGreaterThan(0);
    expect(report.secondSources.logs.excerpt.some((l: { message: string }) => l.message.includes('Startup failed'))).toBe(true);
    expect(readFileSync(join(reportDir, 'signoff.md'), 'utf8')).toMatch(/\*\*Render Logs\*\*: .*[1-9]\d* startup error/);
  }, 120_000);
});
