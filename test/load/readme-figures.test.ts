/** load/README.md's figures are the committed baseline's, not numbers typed in by hand. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readSummaryFile } from '../../load/cli/summary-schema';
import type { EndpointStats } from '../../load/lib/summary';

const BASELINE = 'load/baselines/local-node.json';

function figuresSection(): string {
  const readme = readFileSync('load/README.md', 'utf8');
  const start = readme.indexOf(`## Figures on this machine (\`${BASELINE}\`)`);
  expect(start, 'README section "Figures on this machine"').toBeGreaterThan(0);
  const end = readme.indexOf('\n#', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
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
    const env = readSummaryFile(BASELINE).environment ?? {};
    const section = figuresSection();
    expect(section).toContain(`cache hit rate over the run was ${Math.round(Number(env['service.cacheHitRate']) * 100)}%`);
    expect(section).toContain(`1-minute load average ${Number(env.loadAverage1mAtStart).toFixed(1)}`);
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
