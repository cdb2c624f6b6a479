/**
 * GET /logs and GET /metrics/{http-requests,http-latency,memory} on the local platform: served from the processes'
 * real output, the load balancer's answers and sampled RSS; queries validated and answers matching the spec.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { type RenderEmulator, startRenderEmulator } from '../../render/emulator';
import { RenderSpecValidator } from '../../render/emulator/spec-validator';
import { ingestLogChunk, newLogIngestState, queryLogs, type PlatformLogLine } from '../../render/emulator/platform-metrics';

/** Lines as the emulator receives them, all in one read at `nowMs`. */
function received(text: string, nowMs: number, knownInstances: string[] = []): PlatformLogLine[] {
  const state = newLogIngestState();
  ingestLogChunk(state, `${text}\n`, nowMs, 'srv-a', knownInstances);
  return state.lines;
}
import { waitUntil } from './support/helpers';
import { judgeObservation } from '../../canary/analysis/observations';
import { loadPolicy } from '../../canary/policy';
import { platformObservations } from '../../canary/sources/render-platform';

const API_KEY = 'rnd_logs_metrics_KEY';
const WAIT = { timeoutMs: 30_000, pollIntervalMs: 100 };
const spec = new RenderSpecValidator();

let emulator: RenderEmulator;
let c: RenderClient;
let ownerId: string;
let serviceId: string;
let serviceUrl: string;
let deployStartedAt: string;

async function api(pathAndQuery: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${emulator.url}${pathAndQuery}`, { headers: { authorization: `Bearer ${API_KEY}` } });
  return { status: res.status, body: await res.json() };
}

beforeAll(async () => {
  emulator = await startRenderEmulator({
    apiKey: API_KEY,
    deployStepMs: 5,
    localPlatform: { source: 'working-tree', cwd: path.join(__dirname, 'fixtures'), readyTimeoutMs: 15_000, memorySampleMs: 100, healthChecks: { intervalMs: 200 } },
  });
  c = new RenderClient({ apiKey: API_KEY, baseUrl: emulator.url });
  ownerId = (await c.listOwners())[0]!.id;
  const created = await c.createService({
    type: 'web_service',
    name: 'noisy',
    ownerId,
    serviceDetails: { runtime: 'node', numInstances: 1, healthCheckPath: '/healthz', envSpecificDetails: { buildCommand: 'true', startCommand: 'node noisy-stand-in.js' } },
  } as Parameters<RenderClient['createService']>[0]);
  serviceId = created.service!.id;
  serviceUrl = (created.service!.serviceDetails as { url: string }).url;
  const live = await c.waitForDeploy(serviceId, created.deployId!, WAIT);
  deployStartedAt = live.createdAt!;
  for (let i = 0; i < 6; i++) expect((await fetch(`${serviceUrl}/boom`)).status).toBe(500);
  for (let i = 0; i < 14; i++) expect((await fetch(`${serviceUrl}/ok`)).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await emulator?.close();
});

describe('GET /logs', () => {
  it('serves the processes\' real output, filtered and paged per the spec', async () => {
    const query = `ownerId=${ownerId}&resource=${serviceId}&startTime=${encodeURIComponent(deployStartedAt)}&direction=forward&limit=100`;
    await waitUntil(async () => (await api(`/logs?${query}&text=MEMORY_ERROR`)).body.logs?.length >= 6, 'six [MEMORY_ERROR] lines in the logs', 20_000);
    const all = await api(`/logs?${query}`);
    expect(all.status).toBe(200);
    expect(spec.validateResponse('get', '/logs', 200, all.body)).toEqual({ ok: true, message: '' });
    const errors = await api(`/logs?${query}&level=error`);
    expect(errors.body.logs).toHaveLength(6);
    const first = errors.body.logs[0];
    expect(first.message).toMatch(/\[MEMORY_ERROR\] Context7 request \d+ failed/);
    expect(first.labels).toEqual(expect.arrayContaining([{ name: 'resource', value: serviceId }, { name: 'level', value: 'error' }, expect.objectContaining({ name: 'instance' })]));
    // Paging: two lines a page, forward, until hasMore is false, gives the same six lines in order.
    const paged: string[] = [];
    let range = `startTime=${encodeURIComponent(deployStartedAt)}&endTime=${encodeURIComponent(new Date().toISOString())}`;
    for (let pages = 0; pages < 10; pages++) {
      const page = await api(`/logs?ownerId=${ownerId}&resource=${serviceId}&level=error&direction=forward&limit=2&${range}`);
      expect(spec.validateResponse('get', '/logs', 200, page.body).ok).toBe(true);
      paged.push(...page.body.logs.map((l: { id: string }) => l.id));
      if (!page.body.hasMore) break;
      range = `startTime=${encodeURIComponent(page.body.nextStartTime)}&endTime=${encodeURIComponent(page.body.nextEndTime)}`;
    }
    expect(paged).toEqual(errors.body.logs.map((l: { id: string }) => l.id));
  });

  it('refuses queries the spec does not allow', async () => {
    expect((await api(`/logs?resource=${serviceId}`)).status).toBe(400); // ownerId is required
    expect((await api(`/logs?ownerId=${ownerId}`)).status).toBe(400); // resource is required
    expect((await api(`/logs?ownerId=${ownerId}&resource=${serviceId}&limit=101`)).status).toBe(400);
    expect((await api(`/logs?ownerId=${ownerId}&resource=${serviceId}&startTime=yesterday`)).status).toBe(400);
    expect((await api(`/logs?ownerId=${ownerId}&resource=${serviceId}&deploy=dep-1`)).status).toBe(400);
    expect((await api(`/logs?ownerId=tea-nobody&resource=${serviceId}`)).status).toBe(404);
  });

  it('the client reads a page', async () => {
    const page = await c.listLogs({ ownerId, resource: [serviceId], text: ['[MEMORY_ERROR]'], direction: 'forward', limit: 3, startTime: deployStartedAt });
    expect(page.logs).toHaveLength(3);
    expect(page.hasMore).toBe(true);
  });

  it('pages forward through many lines written in the same millisecond without repeating or skipping one', () => {
    const text = ['[render-emulator 2026-11-20T10:00:00.000Z] starting x', ...Array.from({ length: 250 }, (_, i) => `    at frame ${i}`)].join('\n');
    const lines = received(text, Date.parse('2026-11-20T10:00:00.000Z'));
    const seen: string[] = [];
    let startMs = 0;
    const endMs = Date.parse('2026-11-20T11:00:00.000Z');
    for (let pages = 0; pages < 10; pages++) {
      const page = queryLogs(lines, { startMs, endMs, direction: 'forward', limit: 100, instance: [], level: [], text: [], type: [] });
      seen.push(...page.logs.map((l) => l.id));
      if (!page.hasMore) break;
      startMs = Date.parse(page.nextStartTime);
    }
    expect(seen).toEqual(lines.map((l) => l.id));
  });
});

describe('GET /metrics/*', () => {
  it('http-requests counts the load balancer\'s answers by status code', async () => {
    const series = await c.getMetrics('http-requests', { resource: serviceId, startTime: deployStartedAt, endTime: new Date().toISOString(), resolutionSeconds: 3600, aggregateBy: 'statusCode' });
    expect(spec.validateResponse('get', '/metrics/http-requests', 200, series)).toEqual({ ok: true, message: '' });
    const count = (code: string) => series.filter((s) => s.labels.some((l) => l.value === code)).flatMap((s) => s.values).reduce((sum, v) => sum + v.value, 0);
    expect(count('500')).toBe(6);
    expect(count('200')).toBe(14);
  });

  it('http-latency gives a p95 and memory each instance\'s RSS over time', async () => {
    const latency = await c.getMetrics('http-latency', { resource: serviceId, startTime: deployStartedAt, resolutionSeconds: 3600, quantile: 0.95 });
    expect(spec.validateResponse('get', '/metrics/http-latency', 200, latency)).toEqual({ ok: true, message: '' });
    expect(latency[0]!.values[0]!.value).toBeGreaterThanOrEqual(0);
    await waitUntil(async () => (await c.getMetrics('memory', { resource: serviceId, resolutionSeconds: 30 })).length > 0, 'a memory sample', 20_000);
    const memory = await c.getMetrics('memory', { resource: serviceId, resolutionSeconds: 30 });
    expect(spec.validateResponse('get', '/metrics/memory', 200, memory)).toEqual({ ok: true, message: '' });
    expect(memory[0]!.labels[0]!.field).toBe('instance');
    // A Node process holds megabytes, not bytes: the figure is a real RSS.
    expect(memory[0]!.values.at(-1)!.value).toBeGreaterThan(5 * 1024 * 1024);
    expect((await api(`/metrics/memory?resource=${serviceId}&resolutionSeconds=10`)).status).toBe(400);
    expect((await api(`/metrics/http-requests?startTime=${encodeURIComponent(deployStartedAt)}`)).status).toBe(400);
  });
});

describe('a memory leak', () => {
  it('shows as growth in GET /metrics/memory, which the canary\'s platform source judges a breach', async () => {
    await waitUntil(async () => (await c.getMetrics('memory', { resource: serviceId, resolutionSeconds: 30 })).length > 0, 'a memory sample', 20_000);
    // Buckets start at startTime: one ends just before the leak, so the readings before and after it fall apart.
    const leakAt = Date.now();
    const startTime = new Date(leakAt - 30_000).toISOString();
    expect((await fetch(`${serviceUrl}/leak?mb=96`, { method: 'POST' })).status).toBe(200);
    // The bucket after leakAt also holds readings taken while the POST was in flight, before the leak was resident
    // (most of a second on a loaded machine). Sampling is steady, so waiting ten times that long keeps them under a
    // tenth of the bucket's readings, whatever the machine's speed: its mean then shows at least 90 % of the leak.
    // Past leakAt + 30 s the last bucket starts after the leak was resident, all of its readings after it.
    const leakResidentAt = Date.now();
    const readingsUntil = Math.min(leakResidentAt + Math.max(1_000, 10 * (leakResidentAt - leakAt)), leakAt + 31_000);
    let memory: Awaited<ReturnType<RenderClient['getMetrics']>> = [];
    await waitUntil(async () => {
      if (Date.now() <= readingsUntil) return false;
      memory = await c.getMetrics('memory', { resource: serviceId, startTime, endTime: new Date().toISOString(), resolutionSeconds: 30 });
      return (memory[0]?.values.length ?? 0) >= 2;
    }, 'memory readings after the leak', 45_000);
    expect(spec.validateResponse('get', '/metrics/memory', 200, memory)).toEqual({ ok: true, message: '' });
    const growth = platformObservations([], [], memory).find((o) => o.name === 'memoryGrowthMb')!;
    expect(growth.kind === 'value' && growth.value).toBeGreaterThan(64);
    const policy = loadPolicy(path.join(__dirname, '../../canary/policy.yaml'));
    const strict = { ...policy, platform: { ...policy.platform, minimumMemorySamples: 2 } };
    expect(judgeObservation('render-platform', growth, { above: 64 }, strict).verdict).toBe('fail');
  }, 90_000);
});

describe('log file parsing', () => {
  it('labels pino lines with their level and instance, stamps lines on receipt, strictly increasing, and keeps a partial line', () => {
    const state = newLogIngestState();
    const t0 = Date.parse('2026-11-20T10:00:00.000Z');
    ingestLogChunk(state, '[render-emulator 2026-11-20T09:59:59.000Z] starting srv-a-1a2b3c (deploy dep-1) on port 1\n{"level":"fatal","msg":"[MEMORY_ERROR] Startup failed: boom"}\nError: boom\n    at main', t0, 'srv-a', ['srv-a-1a2b3c']);
    ingestLogChunk(state, ' (/app/service.js:1:1)\n[render-emulator 2026-11-20T10:00:00.500Z] srv-a-1a2b3c exited (code 1, signal none)\n{"level":50,"instanceId":"srv-a-1a2b3c","msg":"[MEMORY_ERROR] x"}\n', t0 + 1000, 'srv-a', ['srv-a-1a2b3c']);
    const lines = state.lines;
    expect(lines.map((l) => l.timestamp)).toEqual([
      '2026-11-20T10:00:00.000Z', '2026-11-20T10:00:00.001Z', '2026-11-20T10:00:00.002Z', '2026-11-20T10:00:01.000Z', '2026-11-20T10:00:01.001Z', '2026-11-20T10:00:01.002Z',
    ]);
    expect(lines[0]!.message).toBe('starting srv-a-1a2b3c (deploy dep-1) on port 1');
    expect(lines[1]!.labels).toContainEqual({ name: 'level', value: 'fatal' });
    expect(lines[3]!.message).toBe('    at main (/app/service.js:1:1)');
    expect(lines[4]!.labels).toContainEqual({ name: 'instance', value: 'srv-a-1a2b3c' });
    expect(lines[5]!.labels).toEqual(expect.arrayContaining([{ name: 'level', value: 'error' }, { name: 'instance', value: 'srv-a-1a2b3c' }]));
    const page = queryLogs(lines, { startMs: 0, endMs: t0 + 1002, direction: 'backward', limit: 2, instance: [], level: [], text: [], type: [] });
    expect(page.logs.map((l) => l.id)).toEqual([lines[4]!.id, lines[3]!.id]);
    expect(page.hasMore).toBe(true);
  });
});
