import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSummarySchema } from '../../load/cli/summary-schema';
import { DEFAULT_SCOPE_POOL } from '../../load/lib/scope';
import { startHarness } from '../service/support/harness';

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

describe('bench:load --base-url: the Node twin drives a service it did not start', () => {
  it('sends the mix to that URL with the caller key from MEMORY_API_KEY, and starts nothing of its own', async () => {
    // A key restricted to the load-test locations the mix uses, as a load-test key on a real stack would be.
    const key = 'bench-base-url-key-0123456789abcdef';
    const locations = Array.from({ length: DEFAULT_SCOPE_POOL.locations }, (_, i) => `loadtest-${String(i + 1).padStart(2, '0')}`);
    const harness = await startHarness({ emulator: {}, env: { MEMORY_API_KEYS: `bench-load:${key}:${locations.join(',')}` } });
    const dir = mkdtempSync(join(tmp, 'base-url-'));
    try {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'load/bench/node-runner.ts', '--base-url', harness.url, '--duration', '1', '--warmup', '0', '--connections', '2', '--report-dir', dir],
        { env: { ...process.env, MEMORY_API_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout.resume();
      const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
      expect(stderr).toContain(`driving ${harness.url}`);
      expect(stderr).not.toContain('starting the memory service');
      expect(stderr).not.toContain(key);
      const summary = loadSummarySchema.parse(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')));
      expect(summary.target).toBe(harness.url);
      expect(summary.endpoints.snippets?.requests).toBeGreaterThan(0);
      // Every memory request was let in by the key (a 401 would fail its status check).
      expect(summary.checksPassRate).toBe(1);
      expect(readFileSync(join(dir, 'summary.json'), 'utf8')).not.toContain(key);
      expect(code, stderr).toBe(summary.thresholdsOk ? 0 : 1);
      const metrics = await harness.request('GET', '/api/metrics/memory');
      expect(metrics.body.totals.requests).toBeGreaterThan(0);
    } finally {
      await harness.close();
    }
  }, 180_000);
});
