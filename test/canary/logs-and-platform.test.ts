/**
 * The second sources' pure parts: log line classification and signature grouping, the log checks, platform
 * observations judged with the service's statistics, and the disagreement between the two sources.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze, type Measurement } from '../../canary/analysis';
import { zeroCounts, type Counts } from '../../canary/analysis/counters';
import { findDisagreements } from '../../canary/analysis/disagreement';
import { judgeObservation, RENDER_PLATFORM_SOURCE, type SourceReading } from '../../canary/analysis/observations';
import { classifyLogLine, errorSignature, type LogLine } from '../../canary/logs/classify';
import { judgeLogs, type LogReading } from '../../canary/logs/judge-logs';
import { loadPolicy, parsePolicy } from '../../canary/policy';
import { readFileSync } from 'node:fs';
import { renderHtmlReport } from '../../canary/report/html';
import { renderIncident } from '../../canary/report/incident';
import { buildReport } from '../../canary/report/report';
import { noRenderPlatform } from '../../render/platform';

const policy = loadPolicy(join(__dirname, '../../canary/policy.yaml'));
const DEPLOY = 'abc123';
const STARTED = '2026-11-20T10:00:00.000Z';

let nextId = 0;
function line(message: string, extra: Partial<LogLine> = {}): LogLine {
  nextId++;
  return { id: `log-${nextId}`, timestamp: `2026-11-20T10:00:${String(nextId % 60).padStart(2, '0')}.000Z`, message, ...extra };
}
function reading(entries: LogLine[], extra: Partial<LogReading> = {}): LogReading {
  return { from: STARTED, to: '2026-11-20T10:10:00.000Z', linesRead: entries.length + 100, entries, ...extra };
}

describe('log lines', () => {
  it('classifies the service\'s pino lines, startup failures and crashes', () => {
    const fatal = JSON.stringify({ level: 'fatal', tag: '[MEMORY_ERROR]', msg: '[MEMORY_ERROR] Startup failed: DATABASE_URL is not set' });
    expect(classifyLogLine(line(fatal)).kinds).toEqual(['memory_error', 'startup_failure']);
    expect(classifyLogLine(line('[render-emulator 2026-11-20T10:00:01Z] srv-abc-1 exited (code 1, signal none)')).kinds).toEqual(['crash']);
    expect(classifyLogLine(line('[render-emulator 2026-11-20T10:00:01Z] srv-abc-1 exited (code none, signal SIGTERM)')).kinds).toEqual([]);
    expect(classifyLogLine(line(JSON.stringify({ level: 'info', msg: '[MEMORY] saved 3 patterns' }))).signature).toBeUndefined();
    expect(classifyLogLine(line(JSON.stringify({ level: 50, msg: 'store query failed' }))).kinds).toEqual(['error']);
  });

  it('groups the same error from different requests, ids and times under one signature', () => {
    const a = errorSignature('[MEMORY_ERROR] Context7 request 4f1c2b3a-1111-4222-8333-444455556666 failed after 1503 ms (HTTP 502) at 2026-11-20T10:00:01.123Z');
    const b = errorSignature('[MEMORY_ERROR] Context7 request 9a9a9a9a-1111-4222-8333-444455556666 failed after 12 ms (HTTP 503) at 2026-11-20T11:07:00.000Z');
    expect(a).toBe(b);
    expect(errorSignature('deploy dep-d1e2f3a4b5c6d7e8f9a0 failed on srv-0123456789abcdef')).toBe('deploy <id> failed on <id>');
    expect(errorSignature('Invalid scopeId format')).not.toBe(errorSignature('Context7 timeout'));
  });
});

describe('judging the logs', () => {
  it('counts since the deploy, once per log id, and finds repeated errors', () => {
    const repeated = Array.from({ length: 25 }, (_, i) => line(`[MEMORY_ERROR] Context7 timeout after ${1000 + i} ms`));
    const first = reading(repeated.slice(0, 10));
    // A resumed run reads the first range again: the same ids count once.
    const logs = judgeLogs(policy, [first, first, reading(repeated.slice(10))]);
    expect(logs.memoryErrors).toBe(25);
    expect(logs.repeated).toHaveLength(1);
    expect(logs.repeated[0]!.count).toBe(25);
    expect(logs.clean).toBe('fail');
    expect(logs.breach).toBeUndefined(); // 25 <= maxMemoryErrors: reported, not a rollback
  });

  it('a startup failure or a crash loop is a breach; unreadable logs are never one', () => {
    expect(judgeLogs(policy, [reading([line('{"level":"fatal","msg":"[MEMORY_ERROR] Startup failed: boom"}')])]).breach?.check).toBe('startup_errors');
    const crashes = Array.from({ length: 3 }, () => line('[render-emulator x] srv-a-1 exited (code 1, signal none)'));
    expect(judgeLogs(policy, [reading(crashes)]).breach?.check).toBe('crash_loop');
    const unread = judgeLogs(policy, [{ from: STARTED, to: STARTED, linesRead: 0, entries: [], error: 'HTTP 503' }]);
    expect(unread).toMatchObject({ readable: false, clean: 'inconclusive', breach: undefined });
  });

  it('loads older policies without logs or platform sections, with the defaults', () => {
    const text = readFileSync(join(__dirname, '../../canary/policy.yaml'), 'utf8')
      .replace(/^logs:\n(?: {2}.*\n)+/m, '')
      .replace(/^platform:\n(?: {2,}.*\n)+/m, '');
    expect(text).not.toMatch(/^logs:|^platform:/m);
    const old = parsePolicy(text);
    expect(old.logs.maxStartupErrors).toBe(0);
    expect(old.platform.rollbackIf.http5xxRate).toEqual({ above: 0.05 });
  });
});

describe('platform observations', () => {
  it('are judged with Wilson intervals and minimum samples', () => {
    const bound = { above: 0.05 };
    expect(judgeObservation('p', { name: 'http5xxRate', kind: 'rate', events: 2, total: 10 }, bound, policy).verdict).toBe('inconclusive');
    expect(judgeObservation('p', { name: 'http5xxRate', kind: 'rate', events: 1, total: 40 }, bound, policy).verdict).toBe('inconclusive');
    expect(judgeObservation('p', { name: 'http5xxRate', kind: 'rate', events: 20, total: 100 }, bound, policy).verdict).toBe('fail');
    expect(judgeObservation('p', { name: 'http5xxRate', kind: 'rate', events: 0, total: 200 }, bound, policy).verdict).toBe('pass');
    const growth = { name: 'memoryGrowthMb', kind: 'value' as const, value: 400, unit: 'MB', sample: 2 };
    expect(judgeObservation('p', growth, { above: 256 }, policy).verdict).toBe('inconclusive');
    expect(judgeObservation('p', { ...growth, sample: 5 }, { above: 256 }, policy).verdict).toBe('fail');
  });

  it('a healthy service while the load balancer sees 5xx is a disagreement', () => {
    const fivexx = judgeObservation('p', { name: 'http5xxRate', kind: 'rate', events: 30, total: 100 }, { above: 0.05 }, policy);
    expect(findDisagreements({ health: 'available', breachChecks: [], platform: [fivexx] })).toMatchObject([{ kind: 'service_healthy_platform_5xx' }]);
    expect(findDisagreements({ health: 'down', breachChecks: [], platform: [fivexx] })).toEqual([]);
    const ok = judgeObservation('p', { name: 'http5xxRate', kind: 'rate', events: 0, total: 100 }, { above: 0.05 }, policy);
    expect(findDisagreements({ health: 'available', breachChecks: [], platform: [ok] })).toEqual([]);
  });
});

function totals(calls: number): Counts {
  return { ...zeroCounts(), requests: calls * 2, context7Requests: calls, cacheHits: calls, cacheMisses: calls, latencyMsSum: calls * 100, latencyCount: calls };
}
function sample(t: Counts) {
  return {
    status: 200,
    body: {
      errorRate: 0, errorRatePercent: 0, fallbackRate: 0, fallbackRatePercent: 0, avgLatency: 100, p95Latency: 0, cacheHitRate: 0.5, cacheHitRatePercent: 50,
      context7Requests: t.context7Requests, errorsByType: { network: 0, timeout: 0, api_error: 0, rate_limited: 0 },
      cache: { hits: t.cacheHits, misses: t.cacheMisses, size: 1, ttlMs: 300000 }, instanceId: 'srv-a', deployId: DEPLOY, startedAt: STARTED, totals: t,
    },
  };
}
const healthy = { status: 200, body: { available: true, provider: 'context7' } };
const config = { status: 200, body: { enableContext7Memory: true, context7Available: true } };
function at(minute: number, extra: Partial<Measurement> = {}): Measurement {
  return { atSeconds: minute * 60, samples: [sample(totals(minute * 20))], health: healthy, config, ...extra };
}
const platform = (events: number, total: number): SourceReading => ({
  source: RENDER_PLATFORM_SOURCE,
  observations: [{ name: 'http5xxRate', kind: 'rate', events, total }],
});

describe('the analysis with second sources', () => {
  it('rolls back on the load balancer\'s 5xx while the service reports healthy, and records the disagreement', () => {
    const result = analyze(policy, { deployId: DEPLOY, measurements: [at(0, { sources: [platform(0, 0)] }), at(2, { sources: [platform(40, 100)] })] });
    expect(result.decision).toMatchObject({ kind: 'rollback', trigger: 'platform' });
    expect(result.disagreements).toMatchObject([{ kind: 'service_healthy_platform_5xx', atSeconds: 120 }]);
  });

  it('fails the immediate check on a startup error in the logs', () => {
    const fatal = line('{"level":"fatal","msg":"[MEMORY_ERROR] Startup failed: listen EADDRINUSE"}');
    const result = analyze(policy, { deployId: DEPLOY, measurements: [at(0, { logs: reading([fatal]) })] });
    expect(result.immediateChecksPassedAtSeconds).toBeNull();
    expect(result.decision).toMatchObject({ kind: 'rollback', trigger: 'immediate_checks' });
    expect(result.logs?.excerpt.map((l) => l.id)).toEqual([fatal.id]);
  });

  it('unreadable logs and platform metrics hold: never a breach', () => {
    const unreadable: Partial<Measurement> = {
      logs: { from: STARTED, to: STARTED, linesRead: 0, entries: [], error: 'HTTP 429 after retries' },
      sources: [{ source: RENDER_PLATFORM_SOURCE, observations: [], error: 'HTTP 500' }],
    };
    const result = analyze(policy, { deployId: DEPLOY, measurements: [at(0, unreadable), at(2, unreadable)] });
    expect(result.decision).toBeUndefined();
    expect(result.immediateChecksPassedAtSeconds).toBe(0);
    expect(result.steps[1]!.notes.join(' ')).toMatch(/Render logs unreadable/);
  });
});

describe('levels', () => {
  it('a warning that mentions an error is a warning; a plain line that says Error is an error', () => {
    expect(classifyLogLine(line(JSON.stringify({ level: 'warn', msg: '[MEMORY] fallback after a Context7 error' }))).signature).toBeUndefined();
    expect(classifyLogLine(line('TypeError: cannot read properties of undefined')).kinds).toEqual(['error']);
  });
});

describe('reports', () => {
  it('the incident record carries the logs excerpt, and log text cannot break out of it', () => {
    const hostile = line('{"level":"fatal","msg":"[MEMORY_ERROR] Startup failed: ``` <script>alert(1)</script>"}');
    const result = analyze(policy, { deployId: DEPLOY, measurements: [at(0, { logs: reading([hostile]) })] });
    const report = buildReport({
      stack: 'staging', serviceId: 'srv-1', outcome: 'rolled_back', startedAt: STARTED, finishedAt: STARTED, dryRun: false, baseUrl: 'http://x',
      measuredOn: noRenderPlatform('http://x'),
      operator: 't', timeScale: 1, policy, measurements: [], result, actions: [],
    });
    const incident = renderIncident(report);
    expect(incident).toContain('## Render logs excerpt');
    expect(incident.match(/```/g)).toHaveLength(2);
    expect(renderHtmlReport(report)).not.toContain('<script>alert(1)');
  });
});
