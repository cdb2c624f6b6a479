/**
 * The end of ./scripts/test (scripts/test-summary.cjs): the time each test file took, longest first, so the suite's
 * total stays watched (issue 23), then the plain counts line CI reads last.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'test-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, startTime: number, endTime: number, status: string, assertions: string[]) => ({
  name: join(process.cwd(), name),
  startTime,
  endTime,
  status,
  message: status === 'failed' ? 'Error: cannot import\nstack' : '',
  assertionResults: assertions.map((s) => ({ status: s })),
});

describe('scripts/test-summary.cjs', () => {
  it('prints each file\'s time, longest first, then the counts line last (a file broken outside its tests counts once)', () => {
    const results = {
      startTime: 1_000,
      numPassedTests: 3,
      numFailedTests: 1,
      numPendingTests: 0,
      testResults: [
        file('test/a.test.ts', 1_000, 3_500, 'passed', ['passed', 'passed']),
        file('test/b.test.ts', 1_200, 61_200, 'failed', ['passed', 'failed']),
        file('test/c.test.ts', 2_000, 2_100, 'failed', []),
      ],
    };
    const path = join(dir, 'results.json');
    writeFileSync(path, JSON.stringify(results));
    const run = spawnSync(process.execPath, ['scripts/test-summary.cjs', path], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('tests: 3 passed, 2 failed');
    expect(run.stdout).toContain('== time per test file (3 files: 63 s summed over the workers, 60 s wall from the first file\'s start)');
    const timed = lines.filter((line) => / s .* test\//.test(line));
    expect(timed).toEqual(['   60.0 s ! test/b.test.ts', '    2.5 s   test/a.test.ts', '    0.1 s ! test/c.test.ts']);
    expect(run.stderr).toContain('file failed outside its tests: ');
  });
});
