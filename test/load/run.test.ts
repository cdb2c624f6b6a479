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
      `printf 'BASE_URL=%s\\nSCENARIO=%s\\nTHRESHOLDS_FILE=%s\\nREPORT_DIR=%s\\nK6_NO_USAGE_REPORT=%s\\nRATE=%s\\nRUN_NONCE=%s\\n' "$BASE_URL" "$SCENARIO" "$THRESHOLDS_FILE" "$REPORT_DIR" "$K6_NO_USAGE_REPORT" "$RATE" "$RUN_NONCE" >> '${record}'`,
      `printf 'LOAD_TEST_TOKEN=%s\\n' "$LOAD_TEST_TOKEN" >> '${record}'`,
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

/** A summary as the k6 script's handleSummary writes it. */
function k6Summary(overrides: Record<string, unknown> = {}) {
  const latencyMs = { avg: 10, min: 1, p50: 9, p90: 15, p95: 20, p99: 30, max: 40 };
  return {
    format: 'memory-load-summary/v1',
    tool: 'k6',
    scenario: 'baseline',
    target: 'http://127.0.0.1:9',
    startedAt: '2026-11-24T10:00:00.000Z',
    durationSeconds: 300,
    requests: 6000,
    errorRate: 0,
    checksPassRate: 1,
    latencyMs,
    throughputRps: 20,
    endpoints: {},
    thresholds: [{ metric: 'http_req_duration', expression: 'avg<200', ok: true, actual: 10 }],
    thresholdsOk: true,
    thresholdsSource: 'canary/policy.yaml (rollout)',
    offered: { model: 'open', ratePerSecond: 20, plannedDurationSeconds: 300 },
    traffic: { seed: 20261123, runNonce: 'abc123xyz0', scopePrefix: 'loadtest-' },
    rateLimited: 0,
    ...overrides,
  };
}

describe('npm run load with k6', () => {
  const baselineSummary = k6Summary();

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
    const breakpoint = (sustainable: number | null, broke: number | null) =>
      k6Summary({ scenario: 'breakpoint', durationSeconds: 400, offered: { model: 'open', ratePerSecond: 1000, profile: '10@0s,1000@1200s', plannedDurationSeconds: 1200 }, breakpoint: { sustainableRatePerSecond: sustainable, brokeAtRatePerSecond: broke, minRequestsPerStep: 20, steps: [] } });
    const found = breakpoint(175, 200);
    const c = capture();
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--report-dir', join(tmp, 'report-bp')], { PATH: fakeK6(99, found) }, c.io);
    expect(code).toBe(0);
    expect(c.out.join('\n')).toContain('breakpoint: sustainable rate 175 req/s, broke at 200 req/s');

    const none = breakpoint(null, 25);
    const code2 = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--report-dir', join(tmp, 'report-bp2')], { PATH: fakeK6(99, none) }, capture().io);
    expect(code2).toBe(99);

    const c3 = capture();
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--report-dir', join(tmp, 'report-bp3')], { PATH: fakeK6(0, breakpoint(1000, null)) }, c3.io);
    expect(c3.out.join('\n')).toContain('breakpoint: sustainable rate 1000 req/s, did not break up to the highest rate tried');
    expect(c3.out.join('\n')).not.toContain('not reached req/s');
  });

  it('records an interrupted run as interrupted (k6 exit 105): never a PASS, whatever handleSummary wrote', async () => {
    const reportDir = join(tmp, 'report-interrupted');
    const c = capture();
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', reportDir], { PATH: fakeK6(105, k6Summary({ durationSeconds: 42 })) }, c.io);
    expect(code).toBe(105);
    const summary = JSON.parse(readFileSync(join(reportDir, 'summary.json'), 'utf8'));
    expect(summary.run).toEqual({ outcome: 'interrupted', exitCode: 105, plannedDurationSeconds: 300, actualDurationSeconds: 42 });
    expect(summary.thresholdsOk).toBe(true);
    const report = readFileSync(join(reportDir, 'report.md'), 'utf8');
    expect(report).toContain('outcome: **interrupted** (k6 exit 105), ran 42.0 s of 300 s planned');
    expect(report).toContain('**INTERRUPTED**');
    expect(report).not.toContain('PASS');
    expect(c.out.join('\n')).toContain('INTERRUPTED: interrupted (k6 exit 105), 42.0 s of 300 s planned');
  });

  it('tells a threshold abort from a completed failing run, and records the machine at start and end', async () => {
    const aborted = join(tmp, 'report-aborted');
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', aborted], { PATH: fakeK6(99, k6Summary({ durationSeconds: 31, thresholdsOk: false })) }, capture().io);
    const summary = JSON.parse(readFileSync(join(aborted, 'summary.json'), 'utf8'));
    expect(summary.run.outcome).toBe('aborted_by_threshold');
    expect(summary.machine).toEqual({ cores: expect.any(Number), loadAverage1mAtStart: expect.any(Number), loadAverage1mAtEnd: expect.any(Number) });

    const failed = join(tmp, 'report-failed');
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', failed], { PATH: fakeK6(99, k6Summary({ thresholdsOk: false })) }, capture().io);
    expect(JSON.parse(readFileSync(join(failed, 'summary.json'), 'utf8')).run.outcome).toBe('completed');
    expect(readFileSync(join(failed, 'report.md'), 'utf8')).toContain('**FAIL**');
  });

  it('says "limited" first when the run got 429s, and hands k6 a fresh run nonce each time', async () => {
    const bin = fakeK6(0, k6Summary({ rateLimited: 120 }));
    const reportDir = join(tmp, 'report-limited');
    const c = capture();
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', reportDir], { PATH: bin }, c.io);
    expect(readFileSync(join(reportDir, 'report.md'), 'utf8').split('\n')[0]).toMatch(/^> limited: 120 × 429/);
    expect(c.out.join('\n')).toContain('limited: 120 × 429');
    const nonceOf = () => readFileSync(join(bin, 'record.txt'), 'utf8').match(/^RUN_NONCE=(\w+)$/m)?.[1];
    const first = nonceOf();
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', join(tmp, 'report-limited2')], { PATH: bin }, capture().io);
    expect(first).toMatch(/^[0-9a-z]{10}$/);
    expect(nonceOf()).not.toBe(first);
  });

  it('refuses --duration on a breakpoint (its length is --ramp-seconds) instead of ignoring it', async () => {
    const c = capture();
    expect(await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--duration', '5m'], { PATH: emptyBin }, c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('--ramp-seconds');
  });

  it('uses K6_BIN when set', async () => {
    const bin = fakeK6(0, baselineSummary);
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'soak', '--report-dir', join(tmp, 'report-k6bin')], { PATH: emptyBin, K6_BIN: join(bin, 'k6') }, capture().io);
    expect(code).toBe(0);
    expect(readFileSync(join(bin, 'record.txt'), 'utf8')).toContain('SCENARIO=soak');
  });
});

describe('npm run load and the load-test token', () => {
  const TOKEN = 'load-test-token-from-env-0123';

  it('hands LOAD_TEST_TOKEN from the environment to k6, never in its arguments, the output, the summary or the report', async () => {
    const bin = fakeK6(0, k6Summary({ environment: { k6Scenario: 'baseline', loadTestToken: 'sent' } }));
    const reportDir = join(tmp, 'report-token');
    const c = capture();
    const code = await runLoad(['--base-url', 'https://staging.example.com', '--scenario', 'baseline', '--report-dir', reportDir], { PATH: bin, LOAD_TEST_TOKEN: TOKEN }, c.io);
    expect(code).toBe(0);
    const record = readFileSync(join(bin, 'record.txt'), 'utf8').trim().split('\n');
    expect(record).toContain(`LOAD_TEST_TOKEN=${TOKEN}`);
    expect(record.filter((line) => !line.startsWith('LOAD_TEST_TOKEN=')).join('\n')).not.toContain(TOKEN);
    expect(c.out.join('\n')).toContain('load-test token: sent');
    for (const text of [...c.out, ...c.err, readFileSync(join(reportDir, 'summary.json'), 'utf8'), readFileSync(join(reportDir, 'report.md'), 'utf8')]) {
      expect(text).not.toContain(TOKEN);
    }
  });

  it('says when there is no token, and gives k6 none', async () => {
    const bin = fakeK6(0, k6Summary());
    const c = capture();
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', join(tmp, 'report-no-token')], { PATH: bin }, c.io);
    expect(readFileSync(join(bin, 'record.txt'), 'utf8')).toContain('LOAD_TEST_TOKEN=\n');
    expect(c.out.join('\n')).toMatch(/no LOAD_TEST_TOKEN: the service's rate limit applies/);
  });

  it('refuses the token on the command line, and a token the service could never have, without echoing either', async () => {
    const onCommandLine = capture();
    expect(await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--load-test-token', TOKEN], { PATH: emptyBin }, onCommandLine.io)).toBe(2);
    expect(onCommandLine.err.join('\n')).toMatch(/LOAD_TEST_TOKEN in the environment, never from the command line/);
    expect(onCommandLine.err.join('\n')).not.toContain(TOKEN);
    for (const bad of ['short-tok', 'has a space in it 0123']) {
      const c = capture();
      expect(await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline'], { PATH: emptyBin, LOAD_TEST_TOKEN: bad }, c.io)).toBe(2);
      expect(c.err.join('\n')).toMatch(/LOAD_TEST_TOKEN/);
      expect(c.err.join('\n')).not.toContain(bad);
    }
  });
});
