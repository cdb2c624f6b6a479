/**
 * The canary's Render sources at the edge: GET /logs paged from the deploy's start within a page budget, continuing
 * where the last read stopped; unreadable answers recorded as errors (never thrown); platform answers turned into
 * observations. Against the Render emulator for the rate limit.
 */
import { describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { startRenderEmulator } from '../../render/emulator';
import type { LogsPage, MetricSeries } from '../../render/types';
import { createRenderLogSource, type RenderLogsPort } from '../../canary/sources/render-logs';
import { platformObservations } from '../../canary/sources/render-platform';
import { withSecondSources } from '../../canary/sources/second-sources';

const T0 = Date.parse('2026-11-20T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

/** A fake GET /logs over `n` lines one second apart, every third an error. */
function fakeLogs(n: number, calls: Array<{ startTime?: string; endTime?: string }>): RenderLogsPort {
  const lines = Array.from({ length: n }, (_, i) => ({
    id: `l${i}`,
    timestamp: iso(T0 + i * 1000),
    message: i % 3 === 0 ? `{"level":"error","msg":"[MEMORY_ERROR] call ${i} failed"}` : `{"level":"info","msg":"ok ${i}"}`,
    labels: [{ name: 'resource' as const, value: 'srv-1' }],
  }));
  return {
    async listLogs(q) {
      calls.push({ startTime: q.startTime, endTime: q.endTime });
      expect(q).toMatchObject({ ownerId: 'tea-1', resource: ['srv-1'], direction: 'forward' });
      const inRange = lines.filter((l) => l.timestamp >= q.startTime! && l.timestamp < q.endTime!);
      const page = inRange.slice(0, q.limit);
      const next = inRange[page.length];
      const answer: LogsPage = { hasMore: !!next, nextStartTime: next ? next.timestamp : q.startTime!, nextEndTime: q.endTime!, logs: page };
      return answer;
    },
  };
}

describe('Render log source', () => {
  it('pages forward from the deploy within the page budget, then continues at the next measurement', async () => {
    const calls: Array<{ startTime?: string; endTime?: string }> = [];
    const source = createRenderLogSource({ render: fakeLogs(250, calls), ownerId: 'tea-1', serviceId: 'srv-1', since: iso(T0), maxPages: 2, now: () => T0 + 400_000 });
    const first = await source.read();
    expect(calls).toHaveLength(2);
    expect(first).toMatchObject({ linesRead: 200, truncated: true });
    expect(first.entries.every((e) => e.message.includes('[MEMORY_ERROR]'))).toBe(true);
    const second = await source.read();
    expect(second.from).toBe(iso(T0 + 200_000));
    expect(second).toMatchObject({ linesRead: 50 });
    expect(second.truncated).toBeUndefined();
    expect(first.entries.length + second.entries.length).toBe(84);
  });

  it('records a failed read as an error, keeps its cursor, and reads on at the next measurement', async () => {
    let fail = true;
    const calls: Array<{ startTime?: string }> = [];
    const inner = fakeLogs(10, calls);
    const source = createRenderLogSource({
      render: { listLogs: async (q) => (fail ? Promise.reject(new Error('Render API listLogs failed (HTTP 503)')) : inner.listLogs(q)) },
      ownerId: 'tea-1', serviceId: 'srv-1', since: iso(T0), maxPages: 2, now: () => T0 + 60_000,
    });
    expect((await source.read()).error).toMatch(/HTTP 503/);
    fail = false;
    const next = await source.read();
    expect(next).toMatchObject({ from: iso(T0), linesRead: 10 });
  });

  it('waits out Render\'s rate limit through the client (429 then Retry-After)', async () => {
    const emulator = await startRenderEmulator({ apiKey: 'rnd_rl_KEY' });
    try {
      const client = new RenderClient({ apiKey: 'rnd_rl_KEY', baseUrl: emulator.url });
      const ownerId = (await client.listOwners())[0]!.id;
      emulator.setFaults({ rateLimit: { count: 1, match: '/logs', retryAfterSeconds: 0 } });
      const reading = await createRenderLogSource({ render: client, ownerId, serviceId: 'srv-none', since: iso(Date.now() - 60_000), maxPages: 1 }).read();
      expect(reading.error).toBeUndefined();
      expect(emulator.state().responses['429']).toBe(1);
    } finally {
      await emulator.close();
    }
  });

  it('a source that throws is recorded as a measurement error beside the service\'s own measurement', async () => {
    const measure = withSecondSources(
      { measure: async (atSeconds) => ({ atSeconds, samples: [] }) },
      { logs: { read: () => Promise.reject(new Error('boom')) }, sources: [{ name: 'render-platform', read: () => Promise.reject(new Error('bang')) }] },
    );
    const m = await measure.measure(30);
    expect(m.logs?.error).toBe('boom');
    expect(m.sources).toEqual([{ source: 'render-platform', observations: [], error: 'bang' }]);
  });
});

describe('Render platform observations', () => {
  it('5xx rate by status code, the p95, and the instance that grew most', () => {
    const point = (t: number, value: number, unit = 'count') => ({ timestamp: iso(T0 + t), value, unit });
    const requests: MetricSeries = [
      { labels: [{ field: 'statusCode', value: '200' }], values: [point(0, 90)], unit: 'count' },
      { labels: [{ field: 'statusCode', value: '503' }], values: [point(0, 8)], unit: 'count' },
      { labels: [{ field: 'statusCode', value: '500' }], values: [point(0, 2)], unit: 'count' },
    ];
    const latency: MetricSeries = [{ labels: [], values: [point(0, 420, 'ms')], unit: 'ms' }];
    const mb = 1024 * 1024;
    const memory: MetricSeries = [
      { labels: [{ field: 'instance', value: 'a' }], values: [point(0, 100 * mb), point(30_000, 110 * mb)], unit: 'bytes' },
      { labels: [{ field: 'instance', value: 'b' }], values: [point(0, 100 * mb), point(30_000, 200 * mb), point(60_000, 400 * mb)], unit: 'bytes' },
    ];
    expect(platformObservations(requests, latency, memory)).toEqual([
      { name: 'http5xxRate', kind: 'rate', events: 10, total: 100 },
      { name: 'p95LatencyMs', kind: 'value', value: 420, sample: 100, unit: 'ms' },
      { name: 'memoryGrowthMb', kind: 'value', value: 300, sample: 3, unit: 'MB', detail: 'instance b' },
    ]);
  });
});
