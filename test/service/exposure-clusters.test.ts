/**
 * Per-cluster counters of progressive exposure (service/domain/exposure-clusters.ts): through the real HTTP edge a
 * request counts in its scope's cluster, in the slot `off` while the flag is off and in its cohort's slot while it
 * is on, with snippets, reads with a snippet and new scopes; the tables are compact (only clusters with traffic)
 * and a fleet's tables are the sum of its instances'.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryMetricsSchema } from '../../service/contracts/http';
import { cohortOf, exposureBucket } from '../../service/domain/exposure';
import {
  CLUSTER_COUNT,
  ClusterCounters,
  clusterOfBucket,
  packSighting,
  sketchBin,
  SKETCH_BINS,
  SKETCH_EDGES_MS,
  sumClusterTables,
  type ClusterTables,
} from '../../service/domain/exposure-clusters';
import { PROBE_LOCATION_PREFIX } from '../../service/domain/scope-id';
import { scope, startHarness, tempDataDir, type Harness } from './support/harness';

let harness: Harness | undefined;
const dataDirs: string[] = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const dir of dataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function clusterTables(h: Harness): Promise<ClusterTables> {
  const answer = await h.request('GET', '/api/metrics/memory');
  expect(answer.status).toBe(200);
  const metrics = memoryMetricsSchema.parse(answer.body);
  expect(metrics.clusters).toBeDefined();
  return metrics.clusters!;
}

function row(tables: ClusterTables, slot: 'treatment' | 'control' | 'off', cluster: number) {
  const table = tables[slot];
  const at = table.index.indexOf(cluster);
  if (at < 0) return undefined;
  return {
    requests: table.requests[at]!,
    reads: table.reads[at]!,
    snippets: table.snippets[at]!,
    readsWithSnippets: table.readsWithSnippets[at]!,
    serverErrors: table.serverErrors[at]!,
    context7Calls: table.context7Calls[at]!,
    sketchTotal: table.sketch.slice(at * SKETCH_BINS, (at + 1) * SKETCH_BINS).reduce((a, b) => a + b, 0),
  };
}

describe('exposure clusters', () => {
  it('the sketch bins grow by sqrt(2) from 4 ms and the last one is open', () => {
    expect(sketchBin(0)).toBe(0);
    expect(sketchBin(3.9)).toBe(0);
    expect(sketchBin(4)).toBe(1);
    expect(sketchBin(5.7)).toBe(2);
    expect(sketchBin(1e9)).toBe(SKETCH_BINS - 1);
    expect(SKETCH_EDGES_MS.length).toBe(SKETCH_BINS - 1);
    for (let b = 1; b < SKETCH_BINS - 1; b++) expect(sketchBin(SKETCH_EDGES_MS[b - 1]! + 0.01)).toBe(b);
  });

  it('counts a request once per slot and cluster, a scope once as new, and sums tables cluster by cluster', () => {
    const a = new ClusterCounters();
    a.recordRequest('treatment', 3, 12345, true, 200, 50, 2);
    a.recordRequest('treatment', 3, 12345, true, 503, 70, 0);
    a.recordRequest('off', 999, 777, false, 200, 10, 0);
    a.recordFallback(3);
    a.recordContext7Call('treatment', 3, false);
    const b = new ClusterCounters();
    b.recordRequest('treatment', 3, 999, true, 200, 30, 1);
    const tables = a.tables();
    expect(tables.treatment.index).toEqual([3]);
    expect(tables.off.index).toEqual([999]);
    expect(tables.control.index).toEqual([]);
    expect(tables.newScopes).toEqual({ treatment: 1, control: 0, off: 1 });
    expect(tables.treatment).toMatchObject({ requests: [2], reads: [2], serverErrors: [1], fallbacks: [1], latencyMsSum: [120], snippets: [2], readsWithSnippets: [1], context7Calls: [1], context7Errors: [1] });
    const sum = sumClusterTables([tables, b.tables()]);
    expect(sum.treatment).toMatchObject({ index: [3], requests: [3], readsWithSnippets: [2], snippets: [3] });
    expect(sum.newScopes.treatment).toBe(2);
    expect(sum.treatment.sketch.reduce((x, y) => x + y, 0)).toBe(3);
  });

  it('queues each first sighting once for the fleet\'s distinct count, only when tracked, and takes back an undelivered batch', () => {
    const lone = new ClusterCounters();
    lone.recordRequest('treatment', 3, 1, true, 200, 5, 0);
    expect(lone.takeFirstSightings()).toEqual([]); // nobody drains it: nothing kept
    const c = new ClusterCounters();
    c.trackFirstSightings();
    c.recordRequest('treatment', 3, 12345, true, 200, 5, 0);
    c.recordRequest('treatment', 3, 12345, true, 200, 5, 0); // seen: not again
    c.recordRequest('control', 900, 2 ** 20 + 7, false, 200, 5, 0); // only the low 20 bits key the map
    const batch = c.takeFirstSightings();
    expect(batch).toEqual([packSighting(0, 12345), packSighting(1, 7)]);
    expect(c.takeFirstSightings()).toEqual([]);
    c.recordRequest('off', 500, 99, false, 200, 5, 0);
    c.returnFirstSightings(batch); // a failed write: delivered with the next one, oldest first
    expect(c.takeFirstSightings()).toEqual([...batch, packSighting(2, 99)]);
    expect(c.tables().newScopes).toEqual({ treatment: 1, control: 1, off: 1 });
  });

  it('through the HTTP edge: the flag off counts in `off`, the flag on in each scope\'s cohort and cluster; probes count nowhere', async () => {
    const dataDir = tempDataDir('clusters-http');
    const dataDirOn = tempDataDir('clusters-http-on');
    dataDirs.push(dataDir, dataDirOn);
    // Flag off: no Context7, requests still counted per cluster (the pre-exposure figures).
    harness = await startHarness({ dataDir });
    const scopes = Array.from({ length: 6 }, (_, i) => scope(`loc-cl-${i}`, 'agent', 'prompt'));
    for (const scopeId of scopes) {
      expect((await harness.request('POST', '/api/memory/patterns', { scopeId, patterns: [`pattern of ${scopeId}`] })).status).toBe(200);
      expect((await harness.request('POST', '/api/memory/snippets', { scopeId, query: 'pattern' })).status).toBe(200);
    }
    const off = await clusterTables(harness);
    expect(off.treatment.index).toEqual([]);
    expect(off.control.index).toEqual([]);
    expect(off.newScopes.off).toBe(scopes.length);
    const clusters = new Map<number, number>();
    for (const scopeId of scopes) clusters.set(clusterOfBucket(exposureBucket(scopeId)), (clusters.get(clusterOfBucket(exposureBucket(scopeId))) ?? 0) + 1);
    for (const [cluster, n] of clusters) expect(row(off, 'off', cluster)).toMatchObject({ requests: 2 * n, reads: n, sketchTotal: 2 * n });
    await harness.close();

    // Flag on at 50 %: each scope in its cohort's slot; the emulator answers reads with the pattern written.
    harness = await startHarness({ emulator: {}, dataDir: dataDirOn, overrides: { exposure: { percent: () => 50 } } });
    const probe = scope(`${PROBE_LOCATION_PREFIX}canary`, 'probe', 'p');
    for (const scopeId of [...scopes, probe]) {
      expect((await harness.request('POST', '/api/memory/patterns', { scopeId, patterns: [`pattern of ${scopeId}`] })).status).toBe(200);
      expect((await harness.request('POST', '/api/memory/snippets', { scopeId, query: 'pattern' })).status).toBe(200);
    }
    const on = await clusterTables(harness);
    expect(on.off.index).toEqual([]);
    let snippets = 0;
    for (const scopeId of scopes) {
      const cluster = clusterOfBucket(exposureBucket(scopeId));
      const slot = cohortOf(scopeId, 50);
      const figures = row(on, slot, cluster)!;
      expect(figures.requests).toBeGreaterThanOrEqual(2);
      expect(row(on, slot === 'treatment' ? 'control' : 'treatment', cluster)).toBeUndefined();
      snippets += figures.snippets;
    }
    expect(on.newScopes.treatment + on.newScopes.control).toBe(scopes.length);
    const total = (slot: 'treatment' | 'control') => on[slot].requests.reduce((a, b) => a + b, 0);
    expect(total('treatment') + total('control')).toBe(2 * scopes.length);
    // Each scope's read finds the pattern it wrote: snippets applied and reads with a snippet are counted.
    expect(snippets).toBeGreaterThanOrEqual(scopes.length);
    expect(on.treatment.readsWithSnippets.reduce((a, b) => a + b, 0) + on.control.readsWithSnippets.reduce((a, b) => a + b, 0)).toBe(scopes.length);
    expect(on.treatment.index.every((c) => c < CLUSTER_COUNT / 2)).toBe(true);
    expect(on.control.index.every((c) => c >= CLUSTER_COUNT / 2)).toBe(true);
  });
});
