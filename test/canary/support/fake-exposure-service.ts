/**
 * An in-test memory service with the exposure admin API and per-cohort metrics, answering in the contract's
 * shapes (service/contracts/http.ts: exposureStateSchema, exposureChangeRequestSchema, memoryMetricsSchema with
 * `exposure` and fleet-wide `cohorts`) and following service/domain/exposure.ts for which value wins. Counters
 * grow with the test's clock; Context7 can degrade from a given exposure upward. Served two ways: as an
 * HttpProbe (in process, on a fake clock) and over loopback HTTP (for deadline tests through a stall proxy).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpProbe, HttpRequestOptions } from '../../../canary/sources/http';
import type { Probe } from '../../../canary/analysis';
import { latencyBin } from '../../../service/fleet/fleet-metrics';
import { checkExposureChange, effectiveExposurePercent } from '../../../service/domain/exposure';
import {
  emptyTotals,
  exposureChangeRequestSchema,
  exposureStateSchema,
  memoryMetricsSchema,
  type CohortFigures,
  type CohortTotals,
  type ExposureState,
} from '../../../service/contracts/http';

export const FAKE_COMMIT = 'c0ffee1234567';

interface CohortCounts {
  totals: CohortTotals;
  bins: Map<number, number>;
}

function emptyCohort(): CohortCounts {
  return {
    totals: { requests: 0, reads: 0, fallbacks: 0, serverErrors: 0, latencyMsSum: 0, latencyCount: 0, context7Requests: 0, context7Errors: 0 },
    bins: new Map(),
  };
}

export interface FakeExposureOptions {
  adminToken: string;
  instances?: string[];
  ceiling?: number;
  /** wall-clock ms, the test's clock */
  now: () => number;
  /** how long an instance takes to apply a change, ms (per instance: index * this) */
  applyDelayMs?: number;
  /** false: answer like a service without Redis (propagation by polling, no per-instance list) */
  listInstances?: boolean;
}

export class FakeExposureService {
  flagOn = true;
  /** memory requests per second across all scopes */
  requestsPerSecond = 40;
  /** Context7 degrades (fallbacks, slow reads) for the treatment once exposure is at least this; Infinity: never */
  degradeFromPercent = Number.POSITIVE_INFINITY;
  /** while degraded: share of treatment reads that fall back, and their latency */
  degradedFallbackShare = 0.3;
  degradedLatencyMs = 900;
  healthyLatencyMs = 60;
  /** every exposure change accepted, for the test to inspect */
  readonly changes: { percent: number; actor: string; reason: string | null; at: number }[] = [];
  /** the highest percentage ever applied by any instance, and when the treatment first saw a degraded read */
  maxApplied = 0;
  /** the stack's ceiling; a test may lower it mid-run, as a redeploy with a lower one would */
  ceiling: number;
  private runtime: number | null = null;
  private version = 0;
  private updatedAt: string | null = null;
  private updatedBy: string | null = null;
  private readonly applied = new Map<string, { version: number; percent: number; appliedAtMs: number }>();
  private readonly pending: { version: number; percent: number; at: number }[] = [];
  private readonly cohorts = { treatment: emptyCohort(), control: emptyCohort() };
  private lastMs: number;
  private readonly instances: string[];

  constructor(private readonly options: FakeExposureOptions) {
    this.instances = options.instances ?? ['srv-a', 'srv-b'];
    this.ceiling = options.ceiling ?? 100;
    this.lastMs = options.now();
    for (const id of this.instances) this.applied.set(id, { version: 0, percent: this.effective(), appliedAtMs: this.lastMs });
  }

  private effective(): number {
    return effectiveExposurePercent({ flagOn: this.flagOn, ceiling: this.ceiling, runtime: this.runtime });
  }

  /** What instance i applies now; changes reach instance i after i+1 delays. */
  private settle(nowMs: number): void {
    const delay = this.options.applyDelayMs ?? 0;
    for (const [index, id] of this.instances.entries()) {
      for (const change of this.pending) {
        const current = this.applied.get(id)!;
        if (change.version > current.version && nowMs >= change.at + delay * (index + 1)) {
          this.applied.set(id, { version: change.version, percent: change.percent, appliedAtMs: nowMs });
          this.maxApplied = Math.max(this.maxApplied, change.percent);
        }
      }
    }
  }

  /** Traffic since the last call, split by the exposure the (first) instance applies: a fair approximation. */
  private advance(nowMs: number): void {
    this.settle(nowMs);
    const seconds = (nowMs - this.lastMs) / 1000;
    this.lastMs = nowMs;
    if (seconds <= 0 || !this.flagOn) return;
    const percent = Math.min(...[...this.applied.values()].map((a) => a.percent));
    const total = Math.round(seconds * this.requestsPerSecond);
    const treated = Math.round((total * percent) / 100);
    const degraded = percent >= this.degradeFromPercent;
    this.add(this.cohorts.treatment, treated, degraded, true);
    this.add(this.cohorts.control, total - treated, false, false);
  }

  private add(cohort: CohortCounts, requests: number, degraded: boolean, exposed: boolean): void {
    if (requests <= 0) return;
    const reads = Math.round(requests * 0.9);
    const fallbacks = degraded ? Math.round(reads * this.degradedFallbackShare) : 0;
    const t = cohort.totals;
    t.requests += requests;
    t.reads += reads;
    t.fallbacks += fallbacks;
    // Healthy latencies spread over a few bins (same spread in both cohorts); degraded reads are slow.
    for (let i = 0; i < requests; i++) {
      const ms = i < fallbacks ? this.degradedLatencyMs : this.healthyLatencyMs + (i % 7) * 5;
      t.latencyMsSum += ms;
      t.latencyCount += 1;
      const bin = latencyBin(ms);
      cohort.bins.set(bin, (cohort.bins.get(bin) ?? 0) + 1);
    }
    if (exposed) {
      t.context7Requests += reads;
      t.context7Errors += fallbacks;
    }
  }

  state(nowMs: number): ExposureState {
    this.settle(nowMs);
    return exposureStateSchema.parse({
      flagOn: this.flagOn,
      percent: this.applied.get(this.instances[0]!)!.percent,
      ceiling: this.ceiling,
      runtimePercent: this.runtime,
      version: this.version,
      updatedAt: this.updatedAt,
      updatedBy: this.updatedBy,
      propagation: this.options.listInstances === false ? { via: 'polling', boundMs: 2500 } : { via: 'redis', boundMs: 2000 },
      ...(this.options.listInstances === false
        ? {}
        : {
            instances: this.instances.map((id) => {
              const a = this.applied.get(id)!;
              return { instanceId: id, version: a.version, percent: a.percent, appliedAt: new Date(a.appliedAtMs).toISOString() };
            }),
          }),
    });
  }

  private figures(cohort: CohortCounts): CohortFigures {
    const t = cohort.totals;
    const rate = (k: number, n: number) => (n ? k / n : 0);
    const sorted = [...cohort.bins.entries()].sort((a, b) => a[0] - b[0]);
    const pct = (p: number) => {
      const n = t.latencyCount;
      if (!n) return 0;
      let seen = 0;
      for (const [bin, count] of sorted) {
        seen += count;
        if (seen >= Math.ceil((p / 100) * n)) return Math.expm1((bin + 1) * Math.log(1.05));
      }
      return 0;
    };
    return {
      totals: { ...t },
      latencyBins: Object.fromEntries(sorted.map(([bin, count]) => [String(bin), count])),
      fallbackRate: rate(t.fallbacks, t.reads),
      serverErrorRate: rate(t.serverErrors, t.requests),
      errorRate: rate(t.context7Errors, t.context7Requests),
      p50LatencyMs: pct(50),
      p95LatencyMs: pct(95),
    };
  }

  metrics(nowMs: number): unknown {
    this.advance(nowMs);
    const tr = this.cohorts.treatment.totals;
    const co = this.cohorts.control.totals;
    const totals = {
      ...emptyTotals(),
      requests: tr.reads + co.reads,
      fallbacks: tr.fallbacks,
      context7Requests: tr.context7Requests,
      context7Errors: tr.context7Errors,
      cacheHits: Math.round((tr.reads + co.reads) / 2),
      cacheMisses: Math.round((tr.reads + co.reads) / 2),
      latencyMsSum: tr.latencyMsSum,
      latencyCount: tr.latencyCount,
      storeRequests: co.reads,
    };
    const r = (k: number, n: number) => (n ? k / n : 0);
    return memoryMetricsSchema.parse({
      errorRate: r(totals.context7Errors, totals.context7Requests),
      errorRatePercent: 100 * r(totals.context7Errors, totals.context7Requests),
      fallbackRate: r(totals.fallbacks, totals.requests),
      fallbackRatePercent: 100 * r(totals.fallbacks, totals.requests),
      avgLatency: r(totals.latencyMsSum, totals.latencyCount),
      p95Latency: 0,
      cacheHitRate: 0.5,
      cacheHitRatePercent: 50,
      context7Requests: totals.context7Requests,
      errorsByType: { network: 0, timeout: 0, api_error: totals.context7Errors, rate_limited: 0 },
      cache: { hits: totals.cacheHits, misses: totals.cacheMisses, size: 1, ttlMs: 1000 },
      instanceId: 'fleet',
      deployId: FAKE_COMMIT,
      startedAt: new Date(this.options.now() - 3_600_000).toISOString(),
      totals,
      scope: 'fleet',
      instancesSeen: this.instances,
      exposure: { percent: Math.min(...[...this.applied.values()].map((a) => a.percent)), ceiling: this.ceiling, version: Math.min(...[...this.applied.values()].map((a) => a.version)) },
      cohorts: { treatment: this.figures(this.cohorts.treatment), control: this.figures(this.cohorts.control) },
    });
  }

  /** One request, as the HTTP server or the in-process probe receives it. */
  handle(method: string, path: string, authorization: string | undefined, body: unknown): Probe {
    const nowMs = this.options.now();
    if (path === '/api/metrics/memory') return { status: 200, body: this.metrics(nowMs) };
    if (path === '/api/config') return { status: 200, body: { enableContext7Memory: this.flagOn, context7Available: this.flagOn } };
    if (path === '/api/memory/health') {
      return { status: 200, body: this.flagOn ? { available: true, provider: 'context7' } : { available: false, reason: 'Context7 disabled in environment' } };
    }
    if (path === '/api/memory/snippets' && method === 'POST') return { status: 200, body: { snippets: [], source: 'disabled' } };
    if (path === '/api/admin/exposure') {
      if (authorization !== `Bearer ${this.options.adminToken}`) return { status: 401, body: { error: 'admin token required' } };
      if (method === 'GET') return { status: 200, body: this.state(nowMs) };
      if (method === 'PUT') {
        const parsed = exposureChangeRequestSchema.safeParse(body);
        if (!parsed.success) return { status: 400, body: { error: 'invalid exposure change' } };
        const check = checkExposureChange(parsed.data.percent, this.ceiling);
        if (!check.ok) return { status: 409, body: { error: check.reason } };
        this.runtime = parsed.data.percent;
        this.version += 1;
        this.updatedAt = new Date(nowMs).toISOString();
        this.updatedBy = parsed.data.actor;
        this.changes.push({ percent: parsed.data.percent, actor: parsed.data.actor, reason: parsed.data.reason ?? null, at: nowMs });
        this.pending.push({ version: this.version, percent: this.effective(), at: nowMs });
        return { status: 200, body: this.state(nowMs) };
      }
    }
    return { status: 404, body: { error: 'not found' } };
  }

  readonly probe: HttpProbe = async (url: string, options: HttpRequestOptions) =>
    structuredClone(this.handle(options.method ?? 'GET', new URL(url).pathname, options.headers?.authorization, options.body));

  /** Serves the same over loopback HTTP. */
  async listen(): Promise<{ url: string; server: Server }> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        const answer = this.handle(req.method ?? 'GET', new URL(req.url ?? '/', 'http://x').pathname, req.headers.authorization, body);
        res.writeHead(answer.status ?? 500, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body ?? {}));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
  }
}
