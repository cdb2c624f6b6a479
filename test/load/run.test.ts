import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../canary/policy';
import { EXIT_K6_MISSING, findExecutable, interpretExit, K6_SCRIPT, runLoad, validateBaseUrl, type RunPlan } from '../../load/cli/run';

const tmp = mkdtempSync(join(tmpdir(), 'load-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const emptyBin = join(tmp, 'empty-bin');
mkdirSync(emptyBin);

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

/** A stand-in k6 that records how it was called and writes a --summary-export file in k6's layout, like the real binary. */
function fakeK6(exitCode: number, summary: unknown): string {
  const bin = mkdtempSync(join(tmp, 'bin-'));
  const record = join(bin, 'record.txt');
  writeFileSync(
    join(bin, 'k6'),
    [
      '#!/bin/sh',
      'if [ "$1" = version ]; then echo "k6 v0.0.0-stand-in"; exit 0; fi',
      `printf '%s\\n' "$@" > '${record}'`,
      `printf 'BASE_URL=%s\\nSCENARIO=%s\\nTHRESHOLDS_FILE=%s\\nREPORT_DIR=%s\\nK6_NO_USAGE_REPORT=%s\\nRATE=%s\\nRUN_NONCE=%s\\n' "$BASE_URL" "$SCENARIO" "$THRESHOLDS_FILE" "$REPORT_DIR" "$K6_NO_USAGE_REPORT" "$RATE" "$RUN_NONCE" >> '${record}'`,
      `printf 'LOAD_TEST_TOKEN=%s\\n' "$LOAD_TEST_TOKEN" >> '${record}'`,
      // the argument after --summary-export
      'while [ "$#" -gt 0 ]; do if [ "$1" = "--summary-export" ]; then out="$2"; fi; shift; done',
      `printf '%s' '${JSON.stringify(summary)}' > "$out"`,
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

/**
 * What `k6 run --summary-export` writes (k6 v1.3's legacy layout: values flattened, a rate's `rate` as `value`,
 * thresholds as {expression: failed}), for a run of `seconds` at 20 req/s.
 */
function k6Summary(o: { seconds?: number; failed?: boolean; rateLimited?: number; dropped?: number; extra?: Record<string, unknown> } = {}) {
  const seconds = o.seconds ?? 300;
  const requests = seconds * 20;
  return {
    metrics: {
      http_reqs: { count: requests, rate: 20 },
      iterations: { count: requests, rate: 20 },
      http_req_duration: { avg: 10, min: 1, med: 9, max: 40, 'p(90)': 15, 'p(95)': 20, 'p(99)': 30, count: requests, thresholds: { 'avg<200': false, 'p(95)<500': o.failed === true } },
      http_req_failed: { passes: 0, fails: requests, value: 0, thresholds: { 'rate<0.05': false } },
      checks: { passes: requests * 3, fails: 0, value: 1, thresholds: { 'rate>0.99': false } },
      ...(o.rateLimited ? { rate_limited: { count: o.rateLimited, rate: 1 } } : {}),
      ...(o.dropped ? { dropped_iterations: { count: o.dropped, rate: o.dropped / seconds } } : {}),
      ...o.extra,
    },
    setup_data: { runNonce: 'from-setup' },
    root_group: { name: '', path: '', id: 'x', groups: {}, checks: {} },
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
    expect(record.slice(0, 5)).toEqual(['run', '--no-usage-report', '--summary-export', join(reportDir, 'k6-summary-export.json'), K6_SCRIPT]);
    expect(record).toContain('BASE_URL=https://staging.example.com');
    expect(record).toContain('SCENARIO=baseline');
    // No REPORT_DIR for the script: its handleSummary then returns nothing and k6 prints its own summary.
    expect(record).toContain('REPORT_DIR=');
    expect(record).toContain('K6_NO_USAGE_REPORT=true');
    expect(record).toContain('RATE=35');
    const thresholds = JSON.parse(readFileSync(join(reportDir, 'thresholds.json'), 'utf8'));
    expect(thresholds).toEqual({ source: 'canary/policy.yaml', profile: 'rollout', load: loadPolicy('canary/policy.yaml').load });
    expect(c.out.join('\n')).toContain(join(reportDir, 'summary.json'));
    // Our report follows k6's output, then the verdict; summary.json is built from k6's export.
    expect(c.out.join('\n')).toMatch(/# Load report: baseline \(k6\)[\s\S]*PASS: completed \(k6 exit 0\)/);
    const summary = JSON.parse(readFileSync(join(reportDir, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ tool: 'k6', requests: 6000, thresholdsOk: true, droppedIterations: 0, run: { outcome: 'completed', exitCode: 0 } });
    // labelled with the tool that measured it and the machine it ran on
    expect(summary.environment.k6).toBe('k6 v0.0.0-stand-in');
    expect(summary.machine).toMatchObject({ cores: expect.any(Number), loadAverage1mAtStart: expect.any(Number) });
    expect(summary.traffic.runNonce).toBe(record.find((l) => l.startsWith('RUN_NONCE='))!.slice('RUN_NONCE='.length));
  });

  it('puts dropped iterations in summary.json, on the report\'s first lines and in the verdict', async () => {
    const reportDir = join(tmp, 'report-dropped');
    const c = capture();
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--rate', '20', '--report-dir', reportDir], { PATH: fakeK6(0, k6Summary({ dropped: 3230 })) }, c.io);
    expect(JSON.parse(readFileSync(join(reportDir, 'summary.json'), 'utf8'))).toMatchObject({ iterations: 6000, droppedIterations: 3230 });
    expect(readFileSync(join(reportDir, 'report.md'), 'utf8').split('\n')[0]).toMatch(/^> dropped: 3230 of 9230 offered iterations \(35\.0%\)/);
    expect(c.out.join('\n')).toMatch(/PASS: completed .*; dropped: 3230 iterations/);
  });

  it('fails the run when k6 reports a failed threshold', async () => {
    const bin = fakeK6(99, baselineSummary);
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', join(tmp, 'report-fail')], { PATH: bin }, capture().io);
    expect(code).toBe(99);
  });

  it('treats a breakpoint that found its sustainable rate as a success, and reports the rate', async () => {
    // 10 to 110 req/s over 100 s in steps of 20: each step's requests as offered, p95 past 500 ms from `brokeAt` on.
    const breakpoint = (seconds: number, brokeAt: number | null) => {
      const extra: Record<string, unknown> = {};
      for (const [rate, requests] of [[10, 150], [20, 600], [40, 1000], [60, 1400], [80, 1800], [100, 1050]] as const) {
        const p95 = brokeAt !== null && rate >= brokeAt ? 900 : 30;
        extra[`http_req_duration{rate_step:${rate}}`] = { avg: p95 / 2, min: 1, med: p95 / 2, max: p95, 'p(90)': p95, 'p(95)': p95, 'p(99)': p95, count: requests, thresholds: { 'avg<200': false, 'p(95)<500': p95 > 500 } };
      }
      return k6Summary({ seconds, failed: brokeAt !== null, extra });
    };
    const bp = ['--base-url', 'http://127.0.0.1:9', '--scenario', 'breakpoint', '--rate', '10', '--max-rate', '110', '--ramp-seconds', '100', '--step-size', '20'];
    const c = capture();
    const code = await runLoad([...bp, '--report-dir', join(tmp, 'report-bp')], { PATH: fakeK6(99, breakpoint(70, 60)) }, c.io);
    expect(code).toBe(0);
    expect(c.out.join('\n')).toContain('breakpoint: sustainable rate 40 req/s, broke at 60 req/s');

    const code2 = await runLoad([...bp, '--report-dir', join(tmp, 'report-bp2')], { PATH: fakeK6(99, breakpoint(12, 10)) }, capture().io);
    expect(code2).toBe(99);

    const c3 = capture();
    await runLoad([...bp, '--report-dir', join(tmp, 'report-bp3')], { PATH: fakeK6(0, breakpoint(100, null)) }, c3.io);
    expect(c3.out.join('\n')).toContain('breakpoint: sustainable rate 100 req/s, did not break up to the highest rate tried');
  });

  it('records an interrupted run as interrupted (k6 exit 105) and exits 130: never a PASS, in the output, summary.json or report', async () => {
    const reportDir = join(tmp, 'report-interrupted');
    const c = capture();
    const code = await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', reportDir], { PATH: fakeK6(105, k6Summary({ seconds: 42 })) }, c.io);
    expect(code).toBe(130);
    const summary = JSON.parse(readFileSync(join(reportDir, 'summary.json'), 'utf8'));
    expect(summary.run).toEqual({ outcome: 'interrupted', exitCode: 105, plannedDurationSeconds: 300, actualDurationSeconds: 42 });
    // Every threshold it judged so far held, and still: not ok.
    expect(summary.thresholds.every((t: { ok: boolean }) => t.ok)).toBe(true);
    expect(summary.thresholdsOk).toBe(false);
    expect(c.out.join('\n')).not.toMatch(/\bPASS\b/);
    const report = readFileSync(join(reportDir, 'report.md'), 'utf8');
    expect(report).toContain('outcome: **interrupted** (k6 exit 105), ran 42.0 s of 300 s planned');
    expect(report).toContain('**INTERRUPTED**');
    expect(report).not.toContain('PASS');
    expect(c.out.join('\n')).toContain('INTERRUPTED: interrupted (k6 exit 105), 42.0 s of 300 s planned');
  });

  it('exits 130 for Ctrl-C and 143 for SIGTERM, whatever k6 itself exited with', () => {
    const plan = { reportDir: join(tmp, 'no-such-report'), scenario: 'baseline' } as RunPlan;
    const io = capture().io;
    expect(interpretExit(plan, 105, io, 'SIGINT')).toBe(130);
    expect(interpretExit(plan, 105, io)).toBe(130);
    expect(interpretExit(plan, 105, io, 'SIGTERM')).toBe(143);
    expect(interpretExit(plan, 99, io)).toBe(99);
    expect(interpretExit(plan, 0, io)).toBe(0);
  });

  it('tells a threshold abort from a completed failing run, and records the machine at start and end', async () => {
    const aborted = join(tmp, 'report-aborted');
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', aborted], { PATH: fakeK6(99, k6Summary({ seconds: 31, failed: true })) }, capture().io);
    const summary = JSON.parse(readFileSync(join(aborted, 'summary.json'), 'utf8'));
    expect(summary.run.outcome).toBe('aborted_by_threshold');
    expect(summary.machine).toMatchObject({ cores: expect.any(Number), loadAverage1mAtStart: expect.any(Number), loadAverage1mAtEnd: expect.any(Number) });

    const failed = join(tmp, 'report-failed');
    await runLoad(['--base-url', 'http://127.0.0.1:9', '--scenario', 'baseline', '--report-dir', failed], { PATH: fakeK6(99, k6Summary({ failed: true })) }, capture().io);
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
    const bin = fakeK6(0, k6Summary());
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
    expect(JSON.parse(readFileSync(join(reportDir, 'summary.json'), 'utf8')).environment.loadTestToken).toBe('sent');
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
