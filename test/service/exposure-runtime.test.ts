/**
 * Progressive exposure at runtime, on one instance with the embedded store and the Context7 emulator:
 * the admin API (400/401/409/503), read gating (a control scope never reaches Context7 or the cache; writes still
 * do), monotonic exposure of a real scope across changes, the kill switch, restarts and a lower ceiling at redeploy.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { exposureAuditResponseSchema, exposureStateSchema, memoryMetricsSchema } from '../../service/contracts/http';
import type { MemoryStore } from '../../service/data-access/memory-store';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { StoreUnavailableError } from '../../service/data-access/store-errors';
import { exposureBucket } from '../../service/domain/exposure';
import { PROBE_LOCATION_PREFIX } from '../../service/domain/scope-id';
import { TEST_ADMIN_TOKEN, scope, startHarness, tempDataDir, type Harness, type HarnessOptions } from './support/harness';

const harnesses: Harness[] = [];
const dataDirs: string[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((harness) => harness.close()));
  for (const dir of dataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A data directory shared by several harnesses in turn (a restart), removed after the test. */
function sharedDataDir(label: string): string {
  const dir = tempDataDir(label);
  dataDirs.push(dir);
  return dir;
}

const ADMIN = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const h = await startHarness({ emulator: {}, ...options, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, ...options.env } });
  harnesses.push(h);
  return h;
}

/** A real scope id whose bucket lies in [from, to) (buckets are hundredths of a percent). */
function scopeInBuckets(from: number, to: number, label: string): string {
  for (let i = 0; i < 100_000; i += 1) {
    const id = scope(`loc-${label}`, `agent-${i}`, 'You are a helpful assistant');
    const bucket = exposureBucket(id);
    if (bucket >= from && bucket < to) return id;
  }
  throw new Error(`no scope in buckets [${from}, ${to})`);
}

async function setPercent(h: Harness, percent: number, actor = 'alice', reason?: string) {
  return h.request('PUT', '/api/admin/exposure', { percent, actor, ...(reason ? { reason } : {}) }, ADMIN);
}

async function read(h: Harness, scopeId: string) {
  const response = await h.request('POST', '/api/memory/snippets', { scopeId });
  expect(response.status).toBe(200);
  return response.body as { source: string; attestation?: { backend: string }; snippets: { content: string }[] };
}

const searches = (h: Harness) => h.emulator!.stats().requests.searchSnippets;

describe('exposure admin API', () => {
  it('answers the state; a change is applied at once, audited and reported in the metrics', async () => {
    const h = await harness({ env: { CONTEXT7_EXPOSURE_PERCENT: '50' } });
    const initial = await h.request('GET', '/api/admin/exposure', undefined, ADMIN);
    expect(initial.status).toBe(200);
    expect(exposureStateSchema.parse(initial.body)).toMatchObject({
      flagOn: true,
      percent: 50,
      ceiling: 50,
      runtimePercent: null,
      version: 0,
      updatedAt: null,
      propagation: { via: 'single-instance' },
    });

    const changed = await setPercent(h, 12.5, 'alice', 'step to 12.5');
    expect(changed.status).toBe(200);
    expect(exposureStateSchema.parse(changed.body)).toMatchObject({ percent: 12.5, runtimePercent: 12.5, version: 1, updatedBy: 'alice' });
    expect(h.service.exposure.percent()).toBe(12.5);

    const audit = await h.request('GET', '/api/admin/exposure/audit?limit=10', undefined, ADMIN);
    expect(exposureAuditResponseSchema.parse(audit.body).entries).toEqual([
      expect.objectContaining({ version: 1, actor: 'alice', reason: 'step to 12.5', fromPercent: null, toPercent: 12.5, ceiling: 50, instanceId: 'test-instance' }),
    ]);

    const metrics = memoryMetricsSchema.parse((await h.request('GET', '/api/metrics/memory')).body);
    expect(metrics.exposure).toEqual({ percent: 12.5, ceiling: 50, version: 1 });
    // Prometheus too, so an alert can watch the kill switch land on every instance.
    expect((await setPercent(h, 0, 'alice', 'kill switch')).status).toBe(200);
    const prometheus = (await h.request('GET', '/metrics')).text;
    expect(prometheus).toMatch(/^memory_exposure_percent 0$/m);
    expect(prometheus).toMatch(/^memory_exposure_ceiling_percent 50$/m);
    expect(prometheus).toMatch(/^memory_exposure_version 2$/m);
  });

  it('refuses bad input with 400, a missing token with 401, and a raise above the ceiling with 409, changing nothing', async () => {
    const h = await harness({ env: { CONTEXT7_EXPOSURE_PERCENT: '50' } });
    for (const body of [
      { percent: 10 },
      { percent: 'ten', actor: 'alice' },
      { percent: -1, actor: 'alice' },
      { percent: 101, actor: 'alice' },
      { percent: 0.001, actor: 'alice' },
      { percent: 10, actor: '' },
      { percent: 10, actor: 'alice', extra: true },
    ]) {
      const refused = await h.request('PUT', '/api/admin/exposure', body, ADMIN);
      expect(refused.status, JSON.stringify(body)).toBe(400);
    }
    expect((await h.request('PUT', '/api/admin/exposure', '{"percent":', { ...ADMIN, 'content-type': 'application/json' })).status).toBe(400);
    const credential = await setPercent(h, 10, `alice ${TEST_ADMIN_TOKEN}`);
    expect(credential.status).toBe(400);
    expect(credential.text).not.toContain(TEST_ADMIN_TOKEN);
    for (const limit of ['0', '501', 'abc', '1.5']) {
      expect((await h.request('GET', `/api/admin/exposure/audit?limit=${limit}`, undefined, ADMIN)).status).toBe(400);
    }

    expect((await h.request('GET', '/api/admin/exposure')).status).toBe(401);
    expect((await h.request('PUT', '/api/admin/exposure', { percent: 0, actor: 'mallory' })).status).toBe(401);
    expect((await h.request('GET', '/api/admin/exposure/audit')).status).toBe(401);

    const above = await setPercent(h, 60);
    expect(above.status).toBe(409);
    expect(above.body.error).toMatch(/above the ceiling 50.*CONTEXT7_EXPOSURE_PERCENT/);

    const audit = await h.request('GET', '/api/admin/exposure/audit', undefined, ADMIN);
    expect(audit.body.entries).toEqual([]);
    expect(h.service.exposure.percent()).toBe(50);
  });

  it('answers 503 with Retry-After when the store cannot record a change, and keeps the applied value', async () => {
    const dataDir = sharedDataDir('exposure-503');
    const inner = createSqliteStore({ dataDir });
    const failing = { on: false };
    const store: MemoryStore = {
      ...inner,
      setExposure: (change, now) =>
        failing.on ? Promise.reject(new StoreUnavailableError('sqlite', 'unavailable', 'test', undefined, new Error('disk I/O error'))) : inner.setExposure(change, now),
    };
    const h = await harness({ dataDir, overrides: { store } });
    expect((await setPercent(h, 40)).status).toBe(200);
    failing.on = true;
    const refused = await setPercent(h, 0, 'alice', 'kill switch');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(h.service.exposure.percent()).toBe(40);
    const state = await h.request('GET', '/api/admin/exposure', undefined, ADMIN);
    expect(state.body).toMatchObject({ percent: 40, version: 1 });
    expect((await h.request('GET', '/api/admin/exposure/audit', undefined, ADMIN)).body.entries).toHaveLength(1);
  });
});

describe('read gating', () => {
  it('a control scope reads from the local store only (never Context7 or the cache); its writes still reach Context7', async () => {
    const h = await harness();
    const control = scopeInBuckets(2_500, 10_000, 'control');
    const treatment = scopeInBuckets(0, 2_500, 'treatment');
    expect((await setPercent(h, 25)).status).toBe(200);

    for (const scopeId of [control, treatment]) {
      const write = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [`learned in ${scopeId}`] });
      expect(write.body.destinations).toEqual(['database', 'context7']);
      expect(h.emulator!.patterns(scopeId)).toHaveLength(1);
    }

    const before = await h.request('GET', '/api/metrics/memory');
    const searchesBefore = searches(h);
    for (let i = 0; i < 3; i += 1) {
      const answer = await read(h, control);
      expect(answer.source).toBe('database');
      expect(answer.attestation?.backend).toBe('database');
      expect(answer.snippets.map((s) => s.content)).toEqual([`learned in ${control}`]);
    }
    expect(searches(h)).toBe(searchesBefore);
    const after = await h.request('GET', '/api/metrics/memory');
    // Reads like any other, never fallbacks, and no cache traffic.
    expect(after.body.totals.requests - before.body.totals.requests).toBe(3);
    expect(after.body.totals.fallbacks - before.body.totals.fallbacks).toBe(0);
    expect(after.body.cache.hits + after.body.cache.misses).toBe(before.body.cache.hits + before.body.cache.misses);

    const exposed = await read(h, treatment);
    expect(['context7', 'hybrid']).toContain(exposed.source);
    expect(searches(h)).toBe(searchesBefore + 1);
  });

  it('a scope exposed at 5% stays exposed at 25%; one exposed only from 25% reads locally at 5%; the kill switch stops both', async () => {
    const h = await harness();
    const early = scopeInBuckets(0, 500, 'early');
    const late = scopeInBuckets(500, 2_500, 'late');
    const probe = scope(`${PROBE_LOCATION_PREFIX}test`, 'probe-agent', 'probe');

    expect((await setPercent(h, 5)).status).toBe(200);
    let count = searches(h);
    expect((await read(h, early)).attestation?.backend).not.toBe('database');
    expect(searches(h)).toBe(++count);
    expect((await read(h, late)).source).toBe('database');
    expect(searches(h)).toBe(count);

    expect((await setPercent(h, 25)).status).toBe(200);
    // A cache hit is fine too: only the backend of the answer matters (the write below invalidates nothing here).
    expect((await read(h, early)).attestation?.backend).not.toBe('database');
    expect((await read(h, late)).attestation?.backend).not.toBe('database');
    count = searches(h);

    expect((await setPercent(h, 0, 'canary', 'kill switch')).status).toBe(200);
    expect((await read(h, early)).source).toBe('database');
    expect((await read(h, late)).source).toBe('database');
    expect(searches(h)).toBe(count);
    // Probe scopes are always exposed: the canary's probe still exercises Context7 under the kill switch.
    expect((await read(h, probe)).attestation?.backend).not.toBe('database');
    expect(searches(h)).toBe(count + 1);
  });

  it('with the flag off every scope is disabled, whatever the percentage', async () => {
    const h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    harnesses.push(h);
    const state = await h.request('GET', '/api/admin/exposure', undefined, ADMIN);
    expect(state.body).toMatchObject({ flagOn: false, percent: 0, ceiling: 100 });
    expect((await read(h, scopeInBuckets(0, 100, 'off'))).source).toBe('disabled');
  });
});

describe('which value wins across restarts and redeploys', () => {
  it('a restart keeps the runtime value; a lower ceiling clamps it (audited by deploy); a higher one never re-exposes', async () => {
    const dataDir = sharedDataDir('exposure-redeploy');
    const first = await harness({ dataDir, env: { CONTEXT7_EXPOSURE_PERCENT: '50' } });
    expect((await setPercent(first, 30)).status).toBe(200);
    await first.close();
    harnesses.splice(harnesses.indexOf(first), 1);

    const restarted = await harness({ dataDir, env: { CONTEXT7_EXPOSURE_PERCENT: '50' } });
    expect((await restarted.request('GET', '/api/admin/exposure', undefined, ADMIN)).body).toMatchObject({ percent: 30, runtimePercent: 30, version: 1 });
    await restarted.close();
    harnesses.splice(harnesses.indexOf(restarted), 1);

    const lowered = await harness({ dataDir, env: { CONTEXT7_EXPOSURE_PERCENT: '10' } });
    expect((await lowered.request('GET', '/api/admin/exposure', undefined, ADMIN)).body).toMatchObject({ percent: 10, runtimePercent: 10, ceiling: 10, version: 2 });
    const audit = await lowered.request('GET', '/api/admin/exposure/audit', undefined, ADMIN);
    expect(audit.body.entries[0]).toMatchObject({ version: 2, actor: 'deploy', fromPercent: 30, toPercent: 10, ceiling: 10 });
    expect(audit.body.entries[0].reason).toMatch(/ceiling 10/);
    await lowered.close();
    harnesses.splice(harnesses.indexOf(lowered), 1);

    const raised = await harness({ dataDir, env: { CONTEXT7_EXPOSURE_PERCENT: '100' } });
    expect((await raised.request('GET', '/api/admin/exposure', undefined, ADMIN)).body).toMatchObject({ percent: 10, runtimePercent: 10, ceiling: 100, version: 2 });
    expect((await raised.request('GET', '/api/admin/exposure/audit', undefined, ADMIN)).body.entries).toHaveLength(2);
  });
});
