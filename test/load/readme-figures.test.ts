/** load/README.md's figures are the committed baseline's, not numbers typed in by hand. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readSummaryFile } from '../../load/cli/summary-schema';
import type { EndpointStats } from '../../load/lib/summary';
import { runCompare } from '../../load/cli/compare';

const BASELINE = 'load/baselines/local-node.json';

function section(heading: string): string {
  const readme = readFileSync('load/README.md', 'utf8');
  const start = readme.indexOf(heading);
  expect(start, `README section ${heading}`).toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}
const figuresSection = () => section(`## Figures on this machine (\`${BASELINE}\`)`);

/** The rows of the first endpoint table in `text`, by name. */
function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length === 8 && !/^-/.test(cells[1]!) && cells[0] !== 'endpoint' && !rows.has(cells[0]!)) rows.set(cells[0]!, cells.slice(1));
  }
  return rows;
}

const pct = (rate: number) => `${(rate * 100).toFixed(2)}%`;
const ms = (n: number) => n.toFixed(2);

describe('README load figures', () => {
  it('match load/baselines/local-node.json row by row', () => {
    const baseline = readSummaryFile(BASELINE);
    const section = figuresSection();
    const rows = new Map<string, string[]>();
    for (const line of section.split('\n')) {
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      if (cells.length === 8 && !/^-/.test(cells[1]!) && cells[0] !== 'endpoint') rows.set(cells[0]!, cells.slice(1));
    }
    const expected = (e: EndpointStats) => [String(e.requests), pct(e.errorRate), pct(e.checksPassRate), ms(e.latencyMs.avg), ms(e.latencyMs.p50), ms(e.latencyMs.p95), ms(e.latencyMs.p99)];
    expect(rows.get(`**all** (${baseline.throughputRps.toFixed(1)} req/s)`), 'the **all** row with the throughput').toEqual(expected(baseline));
    const endpoints = Object.entries(baseline.endpoints);
    expect(endpoints.length).toBeGreaterThan(0);
    for (const [name, stats] of endpoints) expect(rows.get(name), name).toEqual(expected(stats!));
    expect(rows.size).toBe(endpoints.length + 1);
  });

  it('state the cache hit rate, fallbacks, errors and load average the baseline recorded', () => {
    const baseline = readSummaryFile(BASELINE);
    const env = baseline.environment ?? {};
    const section = figuresSection();
    expect(section).toContain(`cache hit rate over the run was ${Math.round(Number(env['service.cacheHitRate']) * 100)}%`);
    expect(section).toContain(`1-minute load average ${Number(baseline.machine?.loadAverage1mAtStart).toFixed(1)} at the start`);
    expect(section).toContain(`Node ${baseline.machine?.node?.slice(1)}`);
    expect(section).toContain(`${env.connections} connections`);
    if (section.includes('no fallbacks or Context7 errors')) expect([env['service.fallbackRate'], env['service.errorRate']]).toEqual([0, 0]);
  });
});

describe('README breakpoint figures', () => {
  it('match load/baselines/local-node-breakpoint.json', () => {
    const run = readSummaryFile('load/baselines/local-node-breakpoint.json');
    const b = run.breakpoint!;
    expect(run.scenario).toBe('breakpoint');
    const section = figuresSection();
    const held = b.steps.filter((s) => s.thresholdsOk);
    const claim = /every step from (\d+) to (\d+)\s+req\/s held \(p95 (\d+) to (\d+) ms, no errors\); at (\d+) req\/s[\s\S]*?sustainable rate was (\d+) req\/s/.exec(section);
    expect(claim, 'the breakpoint sentence').not.toBeNull();
    const [from, to, p95Low, p95High, brokeAt, sustainable] = claim!.slice(1).map(Number);
    expect([from, to]).toEqual([held[0]!.rate, held.at(-1)!.rate]);
    expect([brokeAt, sustainable]).toEqual([b.brokeAtRatePerSecond, b.sustainableRatePerSecond]);
    const p95s = held.map((s) => s.latencyMs.p95);
    expect([p95Low, p95High]).toEqual([Math.floor(Math.min(...p95s)), Math.ceil(Math.max(...p95s))]);
    expect(held.every((s) => s.errorRate === 0)).toBe(true);
  });
});

describe('README k6 figures', () => {
  const k6Section = () => section('## Figures under k6 (`load/baselines/local-k6.json`)');
  const pct2 = (rate: number) => `${(rate * 100).toFixed(2)}%`;
  const row = (e: EndpointStats) => [String(e.requests), pct2(e.errorRate), pct2(e.checksPassRate), ...[e.latencyMs.avg, e.latencyMs.p50, e.latencyMs.p95, e.latencyMs.p99].map((n) => n.toFixed(2))];

  it('the k6 baseline table is load/baselines/local-k6.json, row by row, with its load and drops', () => {
    const k6 = readSummaryFile('load/baselines/local-k6.json');
    const text = k6Section();
    const rows = tableRows(text);
    expect(rows.get(`**all** (${k6.throughputRps.toFixed(1)} req/s)`)).toEqual(row(k6));
    for (const [name, stats] of Object.entries(k6.endpoints)) expect(rows.get(name), name).toEqual(row(stats!));
    expect(text).toContain(`load ${k6.machine?.loadAverage1mAtStart} at the start`);
    expect(text).toContain(`${k6.iterations} iterations started, ${k6.droppedIterations} dropped`);
  });

  it('the overload run quoted is load/examples/k6-overload-600rps.json, dropped iterations included', () => {
    const run = readSummaryFile('load/examples/k6-overload-600rps.json');
    const text = k6Section();
    const offered = run.droppedIterations! + run.iterations!;
    expect(run.droppedIterations).toBeGreaterThan(0);
    expect(text).toContain(`> dropped: ${run.droppedIterations} of ${offered} offered iterations (${((run.droppedIterations! / offered) * 100).toFixed(1)}%)`);
    expect(text).toContain(`- duration: ${run.durationSeconds.toFixed(1)} s, ${run.requests} requests, ${run.throughputRps.toFixed(1)} req/s`);
    expect(text).toContain(`- offered: open model, ${run.offered?.ratePerSecond} req/s`);
  });

  it('the compare quoted is what load:compare prints for the committed files', () => {
    const out: string[] = [];
    const code = runCompare(['--baseline', 'load/baselines/local-k6.json', '--current', 'load/examples/k6-baseline-rerun.json'], { out: (l) => out.push(l), err: (l) => out.push(l) });
    expect(code).toBe(0);
    expect(k6Section()).toContain(out.join('\n'));
  });
});
