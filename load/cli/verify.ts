/**
 * npm run load:verify   (K6_BIN=/path/to/k6, or k6 on PATH)
 * Runs `npm run load` under a real k6 against the memory service started on loopback (Context7 emulator, SQLite),
 * a few seconds each, and checks what a k6 user relies on:
 *   1. baseline: exit 0, k6's own end-of-test summary on the console and our report after it, summary.json complete
 *      (k6 tool, dropped iterations, machine), PASS;
 *   2. a threshold failure (a policy whose p95 budget no service meets): k6 exits 99, the run reads FAIL;
 *   3. Ctrl-C (SIGINT to the process group, as a terminal sends it) once traffic flows: exit 130, recorded as
 *      interrupted with k6's 105, `thresholdsOk: false`, and no PASS anywhere in the output;
 *   4. a tiny breakpoint: exit 0, each step with its achieved rate beside the offered one.
 * Exit 0 when every check holds, 1 when one fails, 127 without k6. .ci/checks/k6.sh runs it in CI.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startLocalStack, type LocalStack } from '../bench/local-stack';
import { readSummaryFile } from './summary-schema';
import { findExecutable, K6_INSTALL_HELP } from './run';
import type { LoadSummary } from '../lib/summary';

const ROOT = resolve(__dirname, '..', '..');

interface WrapperRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  reportDir: string;
}

/** Process groups of the wrappers still running, so a stopped load:verify leaves no k6 behind. */
const running = new Set<number>();
/** A whole k6 check (a few seconds of load) gets this long, k6's start and summary included, before it is killed. */
const RUN_DEADLINE_MS = 180_000;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * `npm run load` as a child in its own process group (so Ctrl-C can be sent to the group, like a terminal does),
 * killed with its k6 if it outlives RUN_DEADLINE_MS.
 */
function startWrapper(stack: LocalStack, k6: string, reportDir: string, args: string[]): { done: Promise<WrapperRun>; interrupt: () => void } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'load', 'cli', 'run.ts'), '--base-url', stack.url, '--report-dir', reportDir, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, K6_BIN: k6, MEMORY_API_KEY: stack.memoryApiKey, LOAD_TEST_TOKEN: stack.loadTestToken, NO_COLOR: '1' },
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    process.stdout.write(chunk);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const pid = child.pid!;
  running.add(pid);
  const deadline = setTimeout(() => {
    output += `\nload:verify: the run outlived its ${RUN_DEADLINE_MS / 1000} s deadline and was killed\n`;
    killGroup(pid, 'SIGKILL');
  }, RUN_DEADLINE_MS);
  const done = new Promise<WrapperRun>((resolveRun) => {
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      running.delete(pid);
      resolveRun({ code, signal, output, reportDir });
    });
  });
  return { done, interrupt: () => killGroup(pid, 'SIGINT') };
}

class CheckFailed extends Error {}

function expectThat(condition: boolean, what: string): void {
  if (!condition) throw new CheckFailed(what);
}

function summaryOf(run: WrapperRun): LoadSummary {
  const path = join(run.reportDir, 'summary.json');
  expectThat(existsSync(path), `summary.json written (${path})`);
  return readSummaryFile(path);
}

/** k6's own summary is on the console, and our report comes after it. */
function expectK6SummaryThenOurs(run: WrapperRun): void {
  const k6Summary = run.output.search(/█ TOTAL RESULTS/);
  const ours = run.output.indexOf('# Load report:');
  expectThat(k6Summary >= 0, "k6's own end-of-test summary (TOTAL RESULTS) on the console");
  expectThat(/http_reqs\.*:/.test(run.output) && /█ THRESHOLDS/.test(run.output), "k6's summary lists http_reqs and the thresholds");
  expectThat(ours > k6Summary, 'our report printed after k6 summary');
}

async function waitForTraffic(stack: LocalStack, timeoutMs: number): Promise<void> {
  const before = (await stack.serviceMetrics()).context7Requests ?? 0;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (((await stack.serviceMetrics()).context7Requests ?? 0) >= before + 3) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new CheckFailed(`the run sent traffic within ${timeoutMs / 1000} s`);
}

export async function verify(k6: string, log: (line: string) => void): Promise<number> {
  const scratch = mkdtempSync(join(tmpdir(), 'load-verify-'));
  let stack: LocalStack | undefined;
  // Stopped itself (Ctrl-C, CI timeout): stop the runs (their own process groups) and the service, then leave.
  const onSignal = (signal: NodeJS.Signals) => {
    for (const pid of running) killGroup(pid, 'SIGKILL');
    void (stack?.stop() ?? Promise.resolve()).finally(() => {
      rmSync(scratch, { recursive: true, force: true });
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: Array<{ name: string; ok: boolean; detail: string }> = [];
  const check = async (name: string, body: () => Promise<string>) => {
    log(`\n== k6 check: ${name}`);
    try {
      const detail = await body();
      results.push({ name, ok: true, detail });
    } catch (err) {
      results.push({ name, ok: false, detail: err instanceof CheckFailed ? `expected: ${err.message}` : String(err) });
    }
  };
  try {
    stack = await startLocalStack({ context7LatencyMs: 5, log: (line) => log(`[load:verify] ${line}`) });
    const s = stack;

    await check('baseline (20 req/s for 4 s)', async () => {
      const run = await startWrapper(s, k6, join(scratch, 'baseline'), ['--scenario', 'baseline', '--rate', '20', '--duration', '4s']).done;
      expectThat(run.code === 0, `exit 0, got ${run.code ?? run.signal}`);
      expectK6SummaryThenOurs(run);
      const summary = summaryOf(run);
      expectThat(summary.tool === 'k6' && summary.run?.outcome === 'completed' && summary.run.exitCode === 0, 'a completed k6 run (k6 exit 0)');
      expectThat(summary.thresholdsOk && summary.errorRate === 0 && summary.requests > 0, 'thresholds met, no errors, requests sent');
      expectThat(typeof summary.droppedIterations === 'number' && typeof summary.machine?.loadAverage1mAtStart === 'number', 'dropped iterations and the machine recorded');
      expectThat(/^PASS: completed \(k6 exit 0\)/m.test(run.output), 'the verdict line says PASS');
      return `${summary.requests} requests, ${summary.throughputRps.toFixed(1)} req/s, p95 ${summary.latencyMs.p95.toFixed(1)} ms, dropped ${summary.droppedIterations}`;
    });

    await check('threshold failure exits 99', async () => {
      const policy = join(scratch, 'impossible-policy.yaml');
      const text = readFileSync(join(ROOT, 'canary', 'policy.yaml'), 'utf8');
      const strict = text.replace(/httpP95LatencyMs: \{ below: [0-9.]+ \}/, 'httpP95LatencyMs: { below: 0.001 }');
      expectThat(strict !== text, 'canary/policy.yaml has a load.httpP95LatencyMs to tighten');
      writeFileSync(policy, strict);
      const run = await startWrapper(s, k6, join(scratch, 'threshold'), ['--scenario', 'baseline', '--rate', '10', '--duration', '3s', '--policy', policy]).done;
      expectThat(run.code === 99, `exit 99, got ${run.code ?? run.signal}`);
      expectK6SummaryThenOurs(run);
      const summary = summaryOf(run);
      expectThat(summary.run?.exitCode === 99 && !summary.thresholdsOk, 'summary: k6 exit 99, thresholdsOk false');
      expectThat(summary.thresholds.some((t) => !t.ok && t.expression === 'p(95)<0.001'), 'the failed threshold named');
      expectThat(/^FAIL: completed \(k6 exit 99\)/m.test(run.output), 'the verdict line says FAIL');
      return `exit 99, failed: ${summary.thresholds.filter((t) => !t.ok).length} thresholds`;
    });

    await check('Ctrl-C reads as interrupted', async () => {
      const wrapper = startWrapper(s, k6, join(scratch, 'interrupted'), ['--scenario', 'baseline', '--rate', '20', '--duration', '60s']);
      await waitForTraffic(s, 60_000);
      wrapper.interrupt();
      const run = await wrapper.done;
      expectThat(run.code === 130, `exit 130 (the shell's code for Ctrl-C), got ${run.code ?? run.signal}`);
      const summary = summaryOf(run);
      expectThat(summary.run?.outcome === 'interrupted' && summary.run.exitCode === 105, "recorded as interrupted, with k6's exit 105");
      expectThat(summary.thresholdsOk === false, 'summary.json thresholdsOk false');
      expectThat(/\*\*INTERRUPTED\*\*/.test(readFileSync(join(run.reportDir, 'report.md'), 'utf8')), 'report.md says INTERRUPTED');
      expectThat(/^INTERRUPTED: interrupted \(k6 exit 105\)/m.test(run.output), 'the verdict line says INTERRUPTED');
      expectThat(!/\bPASS\b/.test(run.output) && !/\bPASS\b/.test(readFileSync(join(run.reportDir, 'report.md'), 'utf8')), 'no PASS anywhere');
      return `exit 130 after ${summary.durationSeconds.toFixed(1)} s of 60 s, k6 exit 105`;
    });

    await check('tiny breakpoint (10 to 50 req/s over 8 s)', async () => {
      const run = await startWrapper(s, k6, join(scratch, 'breakpoint'), ['--scenario', 'breakpoint', '--rate', '10', '--max-rate', '50', '--ramp-seconds', '8', '--step-size', '10']).done;
      expectThat(run.code === 0, `exit 0, got ${run.code ?? run.signal}`);
      const summary = summaryOf(run);
      const steps = summary.breakpoint?.steps ?? [];
      const judged = steps.filter((st) => st.requests >= summary.breakpoint!.minRequestsPerStep);
      expectThat(judged.length >= 2 && judged.every((st) => typeof st.achievedRatePerSecond === 'number' && st.achievedRatePerSecond > 0), 'every judged step has its achieved rate');
      expectThat(/\| target rate req\/s \| achieved req\/s \|/.test(run.output), 'the report shows achieved beside offered');
      expectThat(/^breakpoint: sustainable rate /m.test(run.output), 'the wrapper names the sustainable rate');
      return `steps ${steps.map((st) => `${st.rate}→${st.achievedRatePerSecond ?? '-'}`).join(', ')} req/s (offered→achieved); sustainable ${summary.breakpoint?.sustainableRatePerSecond}`;
    });
  } catch (err) {
    results.push({ name: 'local service', ok: false, detail: String(err) });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stack?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  log('\n== k6 checks');
  for (const r of results) log(`${r.ok ? 'ok  ' : 'FAILED'} ${r.name}: ${r.detail}`);
  const failed = results.filter((r) => !r.ok).length;
  log(failed === 0 ? `k6 checks: ${results.length} passed` : `k6 checks: ${failed} of ${results.length} failed`);
  return failed === 0 ? 0 : 1;
}

if (require.main === module) {
  const k6 = process.env.K6_BIN || findExecutable('k6', process.env.PATH);
  if (!k6 || !existsSync(k6)) {
    console.error(k6 ? `load:verify: K6_BIN=${k6} does not exist` : K6_INSTALL_HELP);
    process.exitCode = 127;
  } else {
    void verify(k6, (line) => console.log(line)).then((code) => {
      process.exitCode = code;
    });
  }
}
