/**
 * Per-cohort figures through the real HTTP edge: scopes in both cohorts get traffic; a Context7 fault makes the
 * treatment's fallbacks rise while the control's stay 0; a store outage's 503s count as 5xx in whichever cohort
 * they hit; probe scopes and refused requests count in neither.
 */
import fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type RequestHandler } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryMetricsSchema, type CohortFigures } from '../../service/contracts/http';
import type { MemoryStore } from '../../service/data-access/memory-store';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { StoreUnavailableError } from '../../service/data-access/store-errors';
import { currentCohort } from '../../service/domain/cohort-metrics';
import { cohortOf, exposureHashes } from '../../service/domain/exposure';
import { clusterOfBucket } from '../../service/domain/exposure-clusters';
import { PROBE_LOCATION_PREFIX } from '../../service/domain/scope-id';
import { createCohortEdge } from '../../service/http/cohort-edge';
import { TEST_CALLER_KEY, scope, startHarness, tempDataDir, waitFor, type Harness } from './support/harness';

let harness: Harness | undefined;
/** A data dir the test made itself (the harness removes only its own). */
let ownDataDir: string | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  if (ownDataDir) fs.rmSync(ownDataDir, { recursive: true, force: true });
  ownDataDir = undefined;
});

const PERCENT = 50;

function scopeIn(cohort: 'treatment' | 'control', label: string): string {
  for (let i = 0; ; i += 1) {
    const candidate = scope(`loc-${label}`, 'agent', `prompt ${i}`);
    if (cohortOf(candidate, PERCENT) === cohort) return candidate;
  }
}

async function cohorts(h: Harness): Promise<{ treatment: CohortFigures; control: CohortFigures }> {
  const answer = await h.request('GET', '/api/metrics/memory');
  expect(answer.status).toBe(200);
  const metrics = memoryMetricsSchema.parse(answer.body);
  expect(metrics.cohorts).toBeDefined();
  return metrics.cohorts!;
}

/** The real SQLite store, whose searches fail as an outage while `failing.on` holds. */
function storeWithSearchOutage(dataDir: string): { store: MemoryStore; failing: { on: boolean } } {
  const inner = createSqliteStore({ dataDir });
  const failing = { on: false };
  const store: MemoryStore = {
    ...inner,
    searchPatterns: (...args) =>
      failing.on ? Promise.reject(new StoreUnavailableError('sqlite', 'unavailable', 'test', undefined, new Error('disk I/O error'))) : inner.searchPatterns(...args),
  };
  return { store, failing };
}

describe('per-cohort figures at the HTTP edge', () => {
  it('a Context7 fault raises the treatment fallbacks only; requests, reads, latency and 5xx are measured alike', async () => {
    const dataDir = (ownDataDir = tempDataDir('cohorts-http'));
    const { store, failing } = storeWithSearchOutage(dataDir);
    harness = await startHarness({ emulator: {}, dataDir, overrides: { store, exposure: { percent: () => PERCENT } } });
    const treated = [scopeIn('treatment', 'a'), scopeIn('treatment', 'b')];
    const untreated = [scopeIn('control', 'c'), scopeIn('control', 'd')];

    // Healthy: a write and two reads per scope.
    for (const scopeId of [...treated, ...untreated]) {
      expect((await harness.request('POST', '/api/memory/patterns', { scopeId, patterns: [`pattern of ${scopeId}`] })).status).toBe(200);
      for (const query of ['pattern', 'other']) {
        expect((await harness.request('POST', '/api/memory/snippets', { scopeId, query })).status).toBe(200);
      }
    }
    const healthy = await cohorts(harness);
    for (const cohort of [healthy.treatment, healthy.control]) {
      expect(cohort.totals).toMatchObject({ requests: 6, reads: 4, fallbacks: 0, serverErrors: 0, latencyCount: 6 });
      expect(cohort.totals.latencyMsSum).toBeGreaterThan(0);
      expect(Object.values(cohort.latencyBins).reduce((sum, n) => sum + n, 0)).toBe(6);
      expect(cohort.p95LatencyMs).toBeGreaterThanOrEqual(cohort.p50LatencyMs);
      expect(cohort.p50LatencyMs).toBeGreaterThan(0);
    }
    // Each cohort's Context7 calls are its own: two upserts per cohort at least (reads as the exposure decides).
    expect(healthy.treatment.totals.context7Requests).toBeGreaterThanOrEqual(2);
    expect(healthy.treatment.totals.context7Errors).toBe(0);

    // Context7 fails: treatment reads fall back; control reads are never fallbacks.
    harness.emulator!.setFaults({ errorRate: 1 });
    for (const scopeId of [...treated, ...untreated]) {
      const read = await harness.request('POST', '/api/memory/snippets', { scopeId, query: `fresh ${scopeId}` });
      expect(read.status).toBe(200);
    }
    const faulted = await cohorts(harness);
    expect(faulted.treatment.totals.fallbacks).toBe(2);
    expect(faulted.treatment.totals.context7Errors).toBeGreaterThanOrEqual(2);
    expect(faulted.treatment.fallbackRate).toBeCloseTo(2 / 6);
    expect(faulted.control.totals.fallbacks).toBe(0);
    expect(faulted.control.fallbackRate).toBe(0);
    expect(faulted.treatment.totals.reads).toBe(6);
    expect(faulted.control.totals.reads).toBe(6);

    // Context7 and the store both fail: a 503 is a server error of whichever cohort it hits.
    failing.on = true;
    for (const scopeId of [treated[0], untreated[0]]) {
      expect((await harness.request('POST', '/api/memory/snippets', { scopeId, query: `outage ${scopeId}` })).status).toBe(503);
    }
    const outage = await cohorts(harness);
    expect(outage.treatment.totals).toMatchObject({ requests: 9, serverErrors: 1 });
    expect(outage.control.totals).toMatchObject({ requests: 9, serverErrors: 1 });
    expect(outage.control.serverErrorRate).toBeCloseTo(1 / 9);
  });

  it('probe scopes, refused requests and bad scope ids count in no cohort', async () => {
    harness = await startHarness({ emulator: {}, overrides: { exposure: { percent: () => PERCENT } } });
    const before = await cohorts(harness);
    const probe = scope(`${PROBE_LOCATION_PREFIX}canary`, 'probe', 'run-1');
    expect((await harness.request('POST', '/api/memory/snippets', { scopeId: probe, query: 'x' })).status).toBe(200);
    expect((await harness.request('POST', '/api/memory/snippets', { scopeId: 'not-a-scope' })).status).toBe(400);
    const unauthenticated = await harness.request('POST', '/api/memory/snippets', { scopeId: scopeIn('treatment', 'e') }, { authorization: 'Bearer wrong-key-000000000000' });
    expect(unauthenticated.status).toBe(401);
    const ownCredential = await harness.request('POST', '/api/memory/patterns', { scopeId: scopeIn('control', 'e'), patterns: [`key ${TEST_CALLER_KEY}`] });
    expect(ownCredential.status).toBe(400);
    expect(await cohorts(harness)).toEqual(before);
  });

  it('with the flag off nothing is measured', async () => {
    harness = await startHarness({ env: { ENABLE_CONTEXT7_MEMORY: 'false' } });
    expect((await harness.request('POST', '/api/memory/snippets', { scopeId: scopeIn('treatment', 'f') })).status).toBe(200);
    const figures = await cohorts(harness);
    expect(figures.treatment.totals.requests + figures.control.totals.requests).toBe(0);
  });

  it('with CONTEXT7_EXPOSURE_PERCENT unset every non-probe scope is treatment', async () => {
    harness = await startHarness({ emulator: {} });
    for (const label of ['g', 'h', 'i']) {
      expect((await harness.request('POST', '/api/memory/snippets', { scopeId: scope(`loc-${label}`) })).status).toBe(200);
    }
    const figures = await cohorts(harness);
    expect(figures.treatment.totals.requests).toBe(3);
    expect(figures.control.totals.requests).toBe(0);
  });
});

describe('the cohort edge', () => {
  /** A minimal app around the edge, with a clock the test moves: no assertion on the real clock. */
  async function edgeApp(work: () => Promise<unknown>) {
    let clock = 1_000;
    const recorded: { cohort: string; read: boolean; status: number; latencyMs: number }[] = [];
    const state = { handled: 0 };
    const edge = createCohortEdge({
      flagOn: true,
      exposure: { percent: () => PERCENT },
      record: (cohort, outcome) => recorded.push({ cohort, ...outcome }),
      now: () => clock,
    });
    const app = express();
    const scopeId = scopeIn('control', 'edge');
    const authenticateAndParse: RequestHandler = (_req, _res, next) => {
      clock += 30;
      next();
    };
    app.post('/x', edge.arrival, authenticateAndParse, async (_req, res) => {
      const answer = await edge.measure(res, scopeId, 'read', async () => {
        clock += 20;
        return work();
      });
      if (!res.destroyed) res.json(answer);
      state.handled += 1;
    });
    const server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/x`,
      recorded,
      state,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it("measures from the route's first handler, before authentication and body parsing", async () => {
    const edge = await edgeApp(async () => ({ ok: true }));
    try {
      expect((await fetch(edge.url, { method: 'POST' })).status).toBe(200);
      await waitFor('the request to be counted', () => edge.recorded.length === 1);
      expect(edge.recorded).toEqual([{ cohort: 'control', read: true, status: 200, latencyMs: 50, cluster: expect.any(Number), scopeHash: expect.any(Number), snippets: 0 }]);
    } finally {
      await edge.close();
    }
  });

  it('counts a request its client cuts off once, and its late answer not again', async () => {
    let finish: ((value: unknown) => void) | null = null;
    const edge = await edgeApp(() => new Promise((resolve) => (finish = resolve)));
    try {
      const aborter = new AbortController();
      const request = fetch(edge.url, { method: 'POST', signal: aborter.signal }).catch((error: unknown) => error);
      await waitFor('the work to start', () => finish !== null);
      aborter.abort();
      expect(await request).toBeInstanceOf(Error);
      await waitFor('the cut-off request to be counted', () => edge.recorded.length === 1);
      finish!({ late: true });
      await waitFor('the handler to end', () => edge.state.handled === 1);
      expect(edge.recorded).toHaveLength(1);
      expect(edge.recorded[0]).toMatchObject({ cohort: 'control', read: true });
    } finally {
      await edge.close();
    }
  });

  it('measureRead: an answer given at once counts once, with its snippets, and was given inside the cohort; without one the work runs as measure runs it', async () => {
    let clock = 1_000;
    const recorded: { cohort: string; snippets: number; latencyMs: number; cluster?: number; scopeHash?: number }[] = [];
    const edge = createCohortEdge({
      flagOn: true,
      exposure: { percent: () => PERCENT },
      record: (cohort, outcome) =>
        recorded.push({ cohort, snippets: outcome.snippets ?? -1, latencyMs: outcome.latencyMs, cluster: outcome.cluster, scopeHash: outcome.scopeHash }),
      now: () => clock,
    });
    const scopeId = scopeIn('treatment', 'now');
    const seen: (string | null)[] = [];
    let cached: { snippets: string[] } | undefined;
    const app = express();
    app.post('/x', edge.arrival, (_req, res) => {
      clock += 10;
      const answered = edge.measureRead(
        res,
        scopeId,
        () => {
          seen.push(currentCohort());
          return cached;
        },
        async () => {
          seen.push(currentCohort());
          return { snippets: ['loaded'] };
        },
      );
      if (answered instanceof Promise) return answered.then((body) => void res.json({ ...body, at: 'later' }));
      res.json({ ...answered, at: 'now' });
      return undefined;
    });
    const server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
    try {
      expect(await (await fetch(url, { method: 'POST' })).json()).toEqual({ snippets: ['loaded'], at: 'later' });
      await waitFor('the first request to be counted', () => recorded.length === 1);
      cached = { snippets: ['a', 'b'] };
      expect(await (await fetch(url, { method: 'POST' })).json()).toEqual({ snippets: ['a', 'b'], at: 'now' });
      await waitFor('the second request to be counted', () => recorded.length === 2);
      // The second request's bucket and hash are the kept ones of the first: the same as computed afresh.
      const [bucket, scopeHash] = exposureHashes(scopeId, new Uint32Array(2));
      const cluster = clusterOfBucket(bucket!);
      expect(recorded).toEqual([
        { cohort: 'treatment', snippets: 1, latencyMs: 10, cluster, scopeHash },
        { cohort: 'treatment', snippets: 2, latencyMs: 10, cluster, scopeHash },
      ]);
      // The first request asked for an answer at once, then ran its work; the second had its answer at once.
      expect(seen).toEqual(['treatment', 'treatment', 'treatment']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
