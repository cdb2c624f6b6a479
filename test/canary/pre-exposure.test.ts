/**
 * CUPED's covariate from the persisted metrics history (canary/exposure/pre-exposure.ts): one request to
 * GET /api/metrics/memory/history?include=clusters over the last `comparison.preExposureDays` complete UTC days,
 * with a total deadline, body included. A loopback server inside the test answers it, refuses it, or trickles its
 * answer past the deadline; whatever fails, the step falls back to the counters since the instances started and
 * the plan's covariate note says so. The pure analysis reads the history as an observation input.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { windowBaseline } from '../../canary/exposure/analyze-step';
import { replayClustered } from '../../canary/exposure/clustered-step';
import { readPreExposure, withPreExposure } from '../../canary/exposure/pre-exposure';
import { clusteredScopes, cohortWorld, SimulatedFleet, stepTimeline, withScopes } from '../../canary/exposure/simulate';
import { loadPolicy, policySchema } from '../../canary/policy';
import { httpProbe } from '../../canary/sources/http';
import { emptyTotals } from '../../service/contracts/http';
import { ClusterCounters, addClusterTables, emptyDenseClusters, type ClusterTables } from '../../service/domain/exposure-clusters';
import { startLoopbackServer, type LoopbackServer } from '../support/loopback-server';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const NOW = new Date('2026-03-10T09:30:00Z');

/** A day's tables: `n` control requests in cluster 3 with `errors` 5xx, and one treatment request in cluster 0. */
function dayTables(n: number, errors: number): ClusterTables {
  const counters = new ClusterCounters();
  for (let i = 0; i < n; i++) counters.recordRequest('control', 3, i, true, i < errors ? 503 : 200, 20, 0);
  counters.recordRequest('treatment', 0, 99, true, 200, 20, 0);
  return counters.tables({ sketch: false });
}

function historyBody(from: string, days: number, clusters: (index: number) => ClusterTables | undefined) {
  return {
    bucket: 'day',
    from,
    to: new Date(Date.parse(`${from}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10),
    intervalMs: 60_000,
    retentionDays: 35,
    days: Array.from({ length: days }, (_, i) => {
      const tables = clusters(i);
      return { day: new Date(Date.parse(`${from}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10), instances: 1, incarnations: 1, totals: emptyTotals(), ...(tables ? { clusters: tables } : {}) };
    }),
  };
}

let server: LoopbackServer;
let base: string;
const asked: string[] = [];

beforeAll(async () => {
  server = await startLoopbackServer((req, res, self) => {
    const url = new URL(req.url ?? '/', 'http://x');
    asked.push(req.url ?? '');
    const from = url.searchParams.get('from') ?? '';
    const days = (Date.parse(`${url.searchParams.get('to')}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000;
    if (url.pathname === '/ok/api/metrics/memory/history') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(historyBody(from, days, (i) => (i === 0 ? undefined : dayTables(100, 2)))));
    } else if (url.pathname === '/bare/api/metrics/memory/history') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(historyBody(from, days, () => undefined)));
    } else if (url.pathname === '/old/api/metrics/memory/history') {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'include must be "clusters"' }));
    } else if (url.pathname === '/trickle/api/metrics/memory/history') {
      // A valid answer, a few bytes at a time: it would take far longer than the deadline to arrive.
      const body = JSON.stringify(historyBody(from, days, () => dayTables(100, 2)));
      res.writeHead(200, { 'content-type': 'application/json' });
      let at = 0;
      self.trickle(req, res, 20, () => (at >= body.length ? null : body.slice(at, (at += 8))));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  base = server.base;
});
afterAll(() => server.close());

describe('reading the pre-exposure history', () => {
  it('asks for the last N complete UTC days with include=clusters and sums the days that carry tables', async () => {
    const pre = await readPreExposure(httpProbe, { baseUrl: `${base}/ok/`, days: 7, now: NOW, deadlineMs: 5_000 });
    expect(asked.at(-1)).toBe('/ok/api/metrics/memory/history?from=2026-03-03&to=2026-03-10&bucket=day&include=clusters');
    expect(pre).toMatchObject({ source: 'history', from: '2026-03-03', to: '2026-03-10' });
    expect(pre.note).toMatch(/^6 of 7 day\(s\) with per-cluster tables/);
    const dense = emptyDenseClusters();
    addClusterTables(dense, pre.clusters!);
    // Cluster 3's control: 6 days x 100 requests, 6 x 2 errors.
    expect(dense.control.values[3 * 9 + 0]).toBe(600);
    expect(dense.control.values[3 * 9 + 2]).toBe(12);
  });

  it('a history trickling past the deadline falls back to the counters since start, and says so', async () => {
    const pre = await readPreExposure(httpProbe, { baseUrl: `${base}/trickle`, days: 7, now: NOW, deadlineMs: 300 });
    expect(pre.source).toBe('counters');
    expect(pre.clusters).toBeUndefined();
    expect(pre.note).toBe('fell back to the counters since the instances started: the metrics history (2026-03-03 to 2026-03-10) did not arrive within its 300 ms deadline');
  });

  it('an older service (400), no history route (404), days without tables, or 0 days: the counters, with the reason', async () => {
    const read = (path: string, days = 7) => readPreExposure(httpProbe, { baseUrl: `${base}/${path}`, days, now: NOW, deadlineMs: 5_000 });
    expect((await read('old')).note).toMatch(/answered HTTP 400$/);
    expect((await read('none')).note).toMatch(/answered HTTP 404$/);
    expect((await read('bare')).note).toMatch(/no day from 2026-03-03 to 2026-03-10 carries per-cluster tables$/);
    const before = asked.length;
    expect(await read('ok', 0)).toEqual({ source: 'counters', note: 'fell back to the counters since the instances started: comparison.preExposureDays is 0' });
    expect(asked.length).toBe(before);
  });

  it('comparison.preExposureDays is validated: whole days from 0 to 92, 7 by default', () => {
    const raw = structuredClone(policySchema.parse(policy)) as Record<string, unknown> & { exposure: { comparison: Record<string, unknown> } };
    delete raw.exposure.comparison.preExposureDays;
    expect(policySchema.parse(raw).exposure.comparison.preExposureDays).toBe(7);
    for (const bad of [-1, 2.5, 93]) {
      raw.exposure.comparison.preExposureDays = bad;
      expect(policySchema.safeParse(raw).success).toBe(false);
    }
  });
});

describe('the analysis reads the covariate as an observation input', () => {
  it('with history, CUPED adjusts on each cluster\'s history and the plan says so; without, it says it fell back', () => {
    // Scopes with their own latency: a cluster's history predicts its latency in the step.
    const world = { ...withScopes(cohortWorld(), clusteredScopes(1), 300), historySeconds: 7 * 86_400 };
    const step = policy.exposure.steps[1]!;
    const observations = stepTimeline(policy, 1, world, 4_242, 8);
    const replay = (obs: typeof observations) => replayClustered(policy, step, obs, (i) => windowBaseline(obs, i, step))!;
    const withHistory = replay(observations);
    expect(withHistory.plan.covariate).toMatch(/^CUPED covariate: each cluster's unexposed figures from the metrics history, 7\.0 simulated days/);
    const latency = withHistory.latest.find((c) => c.figure === 'latency')!;
    expect(latency.reason).toMatch(/CUPED -\d+% variance/);

    const fallback = { source: 'counters' as const, note: 'fell back to the counters since the instances started: the metrics history did not arrive within its 5000 ms deadline' };
    const plain = replay(withPreExposure(observations, fallback));
    expect(plain.plan.covariate).toBe(`CUPED covariate: the counters since the instances started (${fallback.note})`);
    // Different covariates, different adjusted statistics on the same window.
    expect(plain.latest.find((c) => c.figure === 'latency')!.reason).not.toBe(latency.reason);
  });

  it('the history holds only unexposed figures: a cluster\'s treatment days are never its covariate', () => {
    const fleet = new SimulatedFleet(cohortWorld(), 7);
    const history = fleet.history(86_400);
    const dense = emptyDenseClusters();
    addClusterTables(dense, history.clusters!);
    expect(dense.treatment.values.every((v) => v === 0)).toBe(true);
    expect(dense.control.values.some((v) => v > 0)).toBe(true);
  });
});
