import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runTsx } from '../support/tsx-cli';
import { runCompare } from '../../load/cli/compare';
import { readSummaryFile } from '../../load/cli/summary-schema';
import { comparabilityProblems, compareSummaries, DEFAULT_MARGINS, offeredLoadOfSummary } from '../../load/lib/compare';
import { SUMMARY_FORMAT, type EndpointStats, type LoadSummary } from '../../load/lib/summary';

const tmp = mkdtempSync(join(tmpdir(), 'load-compare-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function stats(p95: number, errorRate: number, requests: number): EndpointStats {
  return { requests, errorRate, checksPassRate: 1, latencyMs: { avg: p95 / 2, min: 1, p50: p95 / 2, p90: p95 * 0.9, p95, p99: p95 * 1.2, max: p95 * 2 } };
}
function summary(over: { p95?: number; errorRate?: number; rps?: number; snippetsP95?: number } = {}): LoadSummary {
  return {
    format: SUMMARY_FORMAT,
    tool: 'autocannon',
    scenario: 'baseline',
    target: 'http://127.0.0.1:1',
    startedAt: null,
    durationSeconds: 15,
    throughputRps: over.rps ?? 400,
    ...stats(over.p95 ?? 20, over.errorRate ?? 0, 6000),
    endpoints: { snippets: stats(over.snippetsP95 ?? 18, 0, 5000), metrics: stats(30, 0, 60) },
    thresholds: [],
    thresholdsOk: true,
    thresholdsSource: 'canary/policy.yaml (rollout)',
    offered: { model: 'closed', connections: 10, plannedDurationSeconds: 15 },
  };
}
const write = (name: string, s: unknown) => {
  const path = join(tmp, name);
  writeFileSync(path, JSON.stringify(s));
  return path;
};
const io = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
};

describe('compareSummaries', () => {
  const base = summary();

  it('does not flag a run within the margins', () => {
    // p95 limit = 20 * 1.25 + 5 = 30 ms; throughput floor = 340 req/s; error ceiling = 1%
    const r = compareSummaries(base, summary({ p95: 29.9, errorRate: 0.009, rps: 341, snippetsP95: 27 }));
    expect(r.regressions).toEqual([]);
    expect(r.comparisons.find((c) => c.scope === 'all' && c.measure === 'p95 latency ms')?.limit).toBeCloseTo(30);
  });

  it('flags each measure beyond its margin', () => {
    expect(compareSummaries(base, summary({ p95: 30.1 })).regressions.map((c) => c.measure)).toEqual(['p95 latency ms']);
    expect(compareSummaries(base, summary({ errorRate: 0.011 })).regressions.map((c) => c.measure)).toEqual(['error rate']);
    expect(compareSummaries(base, summary({ rps: 339 })).regressions.map((c) => c.measure)).toEqual(['throughput req/s']);
    const endpoint = compareSummaries(base, summary({ snippetsP95: 40 })).regressions;
    expect(endpoint.map((c) => `${c.scope} ${c.measure}`)).toEqual(['snippets p95 latency ms']);
  });

  it('does not judge endpoints with too little traffic, and says so', () => {
    const r = compareSummaries(base, summary());
    expect(r.comparisons.some((c) => c.scope === 'metrics')).toBe(false);
    expect(r.notes.join('\n')).toMatch(/metrics: too few requests/);
  });

  it('notes a scenario or tool mismatch', () => {
    const r = compareSummaries(base, { ...summary(), tool: 'k6', scenario: 'spike' });
    expect(r.notes.join('\n')).toMatch(/scenario differs[\s\S]*tool differs/);
  });

  it('warns of a busy machine from `machine`, which k6 runs and the Node runner both write', () => {
    const busy = { ...summary(), tool: 'k6' as const, machine: { cores: 2, loadAverage1mAtStart: 9.1 } };
    const calm = { ...summary(), tool: 'k6' as const, machine: { cores: 2, loadAverage1mAtStart: 0.3 } };
    expect(compareSummaries(calm, busy).notes.join('\n')).toMatch(/machine was busy.*baseline 0.3, current 9.1, on 2 cores/);
    expect(compareSummaries(calm, calm).notes.join('\n')).not.toMatch(/busy/);
  });

  it('compares breakpoints by their sustainable rate too', () => {
    const bp = (sustainable: number | null) => ({ ...summary(), scenario: 'breakpoint', breakpoint: { sustainableRatePerSecond: sustainable, brokeAtRatePerSecond: null, minRequestsPerStep: 20, steps: [] } });
    const held = compareSummaries(bp(1000), bp(900));
    expect(held.comparisons.find((c) => c.measure === 'sustainable req/s')).toMatchObject({ baseline: 1000, current: 900, limit: 850, regression: false });
    expect(compareSummaries(bp(1000), bp(700)).regressions.map((c) => c.measure)).toEqual(['sustainable req/s']);
    expect(compareSummaries(bp(1000), bp(null)).regressions.map((c) => c.measure)).toEqual(['sustainable req/s']);
  });

  it('warns when either run started on a busy machine', () => {
    const busy = { ...summary(), environment: { cpus: 2, loadAverage1mAtStart: 7.5 } };
    const calm = { ...summary(), environment: { cpus: 2, loadAverage1mAtStart: 0.4 } };
    expect(compareSummaries(calm, busy).notes.join('\n')).toMatch(/machine was busy.*baseline 0.4, current 7.5, on 2 cores/);
    expect(compareSummaries(calm, calm).notes.join('\n')).not.toMatch(/busy/);
  });

  it('honours custom margins and rejects nonsense ones', () => {
    expect(compareSummaries(base, summary({ p95: 40 }), { ...DEFAULT_MARGINS, p95Relative: 1 }).regressions).toEqual([]);
    expect(() => compareSummaries(base, base, { ...DEFAULT_MARGINS, throughputRelative: 1.5 })).toThrow(/throughputRelative/);
  });
});

describe('load:compare command', () => {
  const baseline = write('baseline.json', summary());

  it('exits 0 within the margins', () => {
    const c = io();
    expect(runCompare(['--baseline', baseline, '--current', write('ok.json', summary({ p95: 25 }))], c.io)).toBe(0);
    expect(c.out.join('\n')).toContain('no regression beyond the margins');
  });

  it('exits 1 on a regression and names it', () => {
    const c = io();
    expect(runCompare(['--baseline', baseline, '--current', write('slow.json', summary({ p95: 80 }))], c.io)).toBe(1);
    expect(c.out.join('\n')).toMatch(/all\s+p95 latency ms.*REGRESSION/);
  });

  it('applies margin flags', () => {
    const c = io();
    expect(runCompare(['--baseline', baseline, '--current', write('slow2.json', summary({ p95: 80 })), '--p95-margin', '4'], c.io)).toBe(0);
    expect(runCompare(['--baseline', baseline, '--current', baseline, '--p95-margin', 'lots'], io().io)).toBe(2);
  });

  it('exits 2 on missing flags, unreadable or malformed summaries', () => {
    const c = io();
    expect(runCompare(['--baseline', baseline], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/--current are required/);
    expect(runCompare(['--baseline', baseline, '--current', join(tmp, 'nope.json')], io().io)).toBe(2);
    const bad = io();
    expect(runCompare(['--baseline', baseline, '--current', write('bad.json', { ...summary(), errorRate: 7 })], bad.io)).toBe(2);
    expect(bad.err.join('\n')).toMatch(/errorRate/);
    expect(runCompare(['--bogus'], io().io)).toBe(2);
  });

  it('works as a command with those exit codes', async () => {
    // Both runs at once: their tsx start-up overlaps (test/support/tsx-cli.ts).
    const run = (current: string) => runTsx('load/cli/compare.ts', ['--baseline', baseline, '--current', current]);
    const [same, slow] = await Promise.all([run(baseline), run(write('slow3.json', summary({ rps: 100 })))]);
    expect(same.status).toBe(0);
    expect(slow.status).toBe(1);
    expect(slow.stdout).toMatch(/throughput req\/s.*REGRESSION/);
  }, 180_000);
});

describe('what load:compare refuses to compare', () => {
  const completed = { outcome: 'completed' as const, exitCode: 0, plannedDurationSeconds: 300, actualDurationSeconds: 300 };
  const interrupted = { outcome: 'interrupted' as const, exitCode: 105, plannedDurationSeconds: 300, actualDurationSeconds: 42 };
  const open20 = { model: 'open' as const, ratePerSecond: 20, plannedDurationSeconds: 300 };

  it('an interrupted run, as baseline or as current (exit 2, naming it)', () => {
    expect(comparabilityProblems({ ...summary(), run: interrupted }, summary())).toEqual([
      'the baseline run was interrupted (k6 exit 105) after 42.0 s of 300 s planned: it is not a run to compare',
    ]);
    const c = io();
    const code = runCompare(['--baseline', write('b-ok.json', summary()), '--current', write('c-int.json', { ...summary(), run: interrupted })], c.io);
    expect(code).toBe(2);
    expect(c.err.join('\n')).toMatch(/refusing to compare: the current run was interrupted/);
    // --allow-different-load does not make an interrupted run comparable.
    expect(runCompare(['--baseline', write('b-ok2.json', summary()), '--current', write('c-int2.json', { ...summary(), run: interrupted }), '--allow-different-load'], io().io)).toBe(2);
  });

  it('a breakpoint that its thresholds ended is a complete breakpoint', () => {
    const breakpoint = { ...summary(), scenario: 'breakpoint', run: { ...completed, outcome: 'aborted_by_threshold' as const, actualDurationSeconds: 200 } };
    expect(comparabilityProblems(breakpoint, breakpoint)).toEqual([]);
    expect(comparabilityProblems({ ...breakpoint, scenario: 'baseline' }, summary())[0]).toMatch(/aborted by threshold/);
  });

  it('runs that offered different load, unless asked to', () => {
    const open = { ...summary(), tool: 'k6' as const, offered: open20, run: completed };
    expect(comparabilityProblems(summary(), open)).toEqual([
      'the runs offered different load (baseline: a closed loop of 10 connections; current: an open model at 20 req/s): pass --allow-different-load to compare anyway',
    ]);
    expect(comparabilityProblems(summary(), open, { allowDifferentLoad: true })).toEqual([]);
    expect(comparabilityProblems(open, { ...open, offered: { ...open20, ratePerSecond: 40 } })).toHaveLength(1);
    expect(comparabilityProblems(open, { ...open, offered: { ...open20, plannedDurationSeconds: 60 } })).toEqual([]);
    const c = io();
    expect(runCompare(['--baseline', write('closed.json', summary()), '--current', write('open.json', open)], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('pass --allow-different-load');
    expect(runCompare(['--baseline', write('closed2.json', summary()), '--current', write('open2.json', open), '--allow-different-load'], io().io)).not.toBe(2);
  });

  it('reads the offer of summaries written before it was recorded, and refuses when it cannot tell', () => {
    const legacy = { ...summary(), offered: undefined, environment: { connections: 10, offeredRatePerSecond: 'closed loop' } };
    expect(offeredLoadOfSummary(legacy)).toEqual({ model: 'closed', connections: 10, plannedDurationSeconds: 15 });
    expect(comparabilityProblems(legacy, summary())).toEqual([]);
    const unknown = { ...summary(), offered: undefined, environment: { k6Scenario: 'baseline', seed: 1 } };
    expect(comparabilityProblems(summary(), unknown)[0]).toMatch(/current summary does not record the load it offered/);
  });

  it('the committed local baseline is comparable with a fresh bench:load baseline run', () => {
    const committed = readSummaryFile('load/baselines/local-node.json');
    expect(offeredLoadOfSummary(committed)).toMatchObject({ model: 'closed', connections: 10 });
  });

  it('every committed baseline is comparable (records its offer, ran to its end), the breakpoint one by its sustainable rate too', () => {
    for (const file of ['local-node.json', 'local-node-breakpoint.json', 'local-k6.json']) {
      const committed = readSummaryFile(`load/baselines/${file}`);
      expect(comparabilityProblems(committed, committed), file).toEqual([]);
      // labelled with its tool, machine and load
      expect(committed.machine, file).toMatchObject({ cores: expect.any(Number), loadAverage1mAtStart: expect.any(Number) });
      expect(committed.offered, file).toBeDefined();
    }
    const bp = readSummaryFile('load/baselines/local-node-breakpoint.json');
    expect(compareSummaries(bp, bp).comparisons.some((c) => c.measure === 'sustainable req/s')).toBe(true);
    expect(readSummaryFile('load/baselines/local-k6.json')).toMatchObject({ tool: 'k6', environment: { k6: expect.stringMatching(/^k6 v/) } });
    expect(readSummaryFile('load/baselines/local-node.json').machine?.node).toMatch(/^v24\./);
  });
});
