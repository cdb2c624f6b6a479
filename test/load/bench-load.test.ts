import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSummarySchema } from '../../load/cli/summary-schema';

const tmp = mkdtempSync(join(tmpdir(), 'load-bench-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('bench:load against the real service and Context7 emulator', () => {
  it('drives the mix, every response passes its shape checks, and the summary compares', () => {
    // One second of traffic: this proves the runner and the contract, never speed.
    const res = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'load/bench/node-runner.ts', '--duration', '1', '--warmup', '0', '--connections', '4', '--context7-latency-ms', '0', '--report-dir', tmp],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(res.stderr).toContain('service ready at http://127.0.0.1:');
    const summary = loadSummarySchema.parse(JSON.parse(readFileSync(join(tmp, 'summary.json'), 'utf8')));
    expect(summary.requests).toBeGreaterThan(0);
    expect(summary.errorRate).toBe(0);
    expect(summary.checksPassRate).toBe(1);
    expect(summary.endpoints.snippets?.requests).toBeGreaterThan(0);
    expect(summary.target).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(existsSync(join(tmp, 'report.md'))).toBe(true);
    expect(res.status, res.stderr).toBe(summary.thresholdsOk ? 0 : 1);

    const compare = spawnSync(process.execPath, ['--import', 'tsx', 'load/cli/compare.ts', '--baseline', join(tmp, 'summary.json'), '--current', join(tmp, 'summary.json')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(compare.status).toBe(0);
  }, 180_000);
});
