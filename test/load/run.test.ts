import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../canary/policy';
import { EXIT_K6_MISSING, findExecutable, K6_SCRIPT, runLoad, validateBaseUrl } from '../../load/cli/run';

const tmp = mkdtempSync(join(tmpdir(), 'load-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const emptyBin = join(tmp, 'empty-bin');
mkdirSync(emptyBin);

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

/** A stand-in k6 that records how it was called and writes a summary, like the real script. */
function fakeK6(exitCode: number, summary: unknown): string {
  const bin = mkdtempSync(join(tmp, 'bin-'));
  const record = join(bin, 'record.txt');
  writeFileSync(
    join(bin, 'k6'),
    [
      '#!/bin/sh',
      `printf '%s\\n' "$@" > '${record}'`,
      `printf 'BASE_URL=%s\\nSCENARIO=%s\\nTHRESHOLDS_FILE=%s\\nREPORT_DIR=%s\\nK6_NO_USAGE_REPORT=%s\\nRATE=%s\\n' "$BASE_URL" "$SCENARIO" "$THRESHOLDS_FILE" "$REPORT_DIR" "$K6_NO_USAGE_REPORT" "$RATE" >> '${record}'`,
      `printf '%s' '${JSON.stringify(summary)}' > "$REPORT_DIR/summary.json"`,
      `exit ${exitCode}`,
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'k6'), 0o755);
  return bin;
}

describe('npm run load without k6', () => {
  it('says how to install k6 and exits non-zero, creating nothing', async () => {
    const c = capture();
    const reportDir = join(tmp, 'never-created');
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', reportDir], { PATH: emptyBin }, c.io);
    expect(code).toBe(EXIT_K6_MISSING);
    expect(code).not.toBe(0);
    const text = c.err.join('\n');
    expect(text).toContain('k6 is not installed');
    expect(text).toContain('https://grafana.com/docs/k6/latest/set-up/install-k6/');
    expect(text).toMatch(/brew install k6/);
    expect(text).toMatch(/apt-get install k6/);
    expect(existsSync(reportDir)).toBe(false);
  });

  it('does the same as a command', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'load/cli/run.ts', '--base-url', 'http://127.0.0.1:9', '--scenario', 'spike'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: dirname(process.execPath), HOME: tmp },
    });
    expect(res.status).toBe(EXIT_K6_MISSING);
    expect(res.stderr).toContain('Install it: https://grafana.com/docs/k6/latest/set-up/install-k6/');
  }, 90_000);

  it('rejects bad usage with exit 2 before looking for k6', async () => {
    for (const args of [
      ['--scenario', 'baseline'],
      ['--base-url', 'http://127.0.0.1:9', '--scenario', 'stress'],
      ['--base-url', 'ftp://127.0.0.1', '--scenario', 'baseline'],
      ['--base-url', 'https://user:secret@example.com', '--scenario', 'baseline'],
      ['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--rate', '-3'],
      ['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--profile', 'lenient'],
      ['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--unknown'],
    ]) {
      const c = capture();
      expect(await runLoad(args, { PATH: emptyBin }, c.io), args.join(' ')).toBe(2);
      expect(c.err.join('\n')).not.toContain('secret');
    }
  });

  it('normalises the base URL and refuses credentials or queries', () => {
    expect(validateBaseUrl('https://staging.example.com/')).toBe('https://staging.example.com');
    expect(validateBaseUrl('http://127.0.0.1:3000/prefix/')).toBe('http://127.0.0.1:3000/prefix');
    expect(() => validateBaseUrl('http://127.0.0.1/?x=1')).toThrow(/query/);
    expect(() => validateBaseUrl('not a url')).toThrow(/not a URL: "not a url"/);
    // An unparseable URL is echoed without its credentials.
    expect(() => validateBaseUrl('http://user:secret@[bad/')).toThrow('not a URL: "http://***@[bad/"');
    expect(() => validateBaseUrl('user:secret@host')).toThrow(/http or https, got user:$/);
    expect(findExecutable('k6', emptyBin)).toBeUndefined();
  });
});

describe('npm run load with k6', () => {
  const baselineSummary = { format: 'memory-load-summary/v1', scenario: 'baseline' };

  it('runs the k6 script against the given URL only, with the policy thresholds in a file', async () => {
    const bin = fakeK6(0, baselineSummary);
    const reportDir = join(tmp, 'report-baseline');
    const c = capture();
    const code = await runLoad(['--base-url', 'https://staging.example.com/', '--scenario', 'baseline', '--report-dir', reportDir, '--rate', '35'], { PATH: bin }, c.io);
    expect(code).toBe(0);
    const record = readFileSync(join(bin, 'record.txt'), 'utf8').trim().split('\n');
    expect(record.slice(0, 3)).toEqual(['run', '--no-usage-report', K6_SCRIPT]);
    expect(record).toContain('BASE_URL=https://staging.example.com');
    expect(record).toContain('SCENARIO=baseline');
    expect(record).toContain(`REPORT_DIR=${reportDir}`);
    expect(record).toContain('K6_NO_USAGE_REPORT=true');
    expect(record).toContain('RATE=35');
    const thresholds = JSON.parse(readFileSync(join(reportDir, 'thresholds.json'), 'utf8'));
    expect(thresholds).toEqual({ source: 'canary/policy.yaml', profile: 'rollout', load: loadPolicy('canary/policy.yaml').load });
    expect(c.out.join('\n')).toContain(join(reportDir, 'summary.json'));
  });

  it('fails the run when k6 reports a failed threshold', async () => {
    const bin = fakeK6(99, baselineSummary);
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', join(tmp, 'report-fail')], { PATH: bin }, capture().io);
    expect(code).toBe(99);
  });

  it('treats a breakpoint that found its sustainable rate as a success, and reports the rate', async () => {
    const found = { breakpoint: { sustainableRatePerSecond: 175, brokeAtRatePerSecond: 200, steps: [] } };
    const c = capture();
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--report-dir', join(tmp, 'report-bp')], { PATH: fakeK6(99, found) }, c.io);
    expect(code).toBe(0);
    expect(c.out.join('\n')).toContain('breakpoint: sustainable rate 175 req/s, broke at 200 req/s');

    const none = { breakpoint: { sustainableRatePerSecond: null, brokeAtRatePerSecond: 25, steps: [] } };
    const code2 = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--report-dir', join(tmp, 'report-bp2')], { PATH: fakeK6(99, none) }, capture().io);
    expect(code2).toBe(99);
  });

  it('uses K6_BIN when set', async () => {
    const bin = fakeK6(0, baselineSummary);
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'soak', '--report-dir', join(tmp, 'report-k6bin')], { PATH: emptyBin, K6_BIN: join(bin, 'k6') }, capture().io);
    expect(code).toBe(0);
    expect(readFileSync(join(bin, 'record.txt'), 'utf8')).toContain('SCENARIO=soak');
  });
});
