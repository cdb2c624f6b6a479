/**
 * Runs one job of a GitHub Actions workflow the way a runner would, as far as this repository's example needs:
 * `run:` steps in `bash --noprofile --norc -eo pipefail`, `uses:` steps skipped (or run as the shell command
 * `options.uses` maps them to, e.g. `pulumi/actions` with `command: up` as `pulumi up`), step outputs through
 * $GITHUB_OUTPUT, `env:` with `${{ steps.<id>.outputs.<name> }}` / `${{ secrets.<name> }}` / `${{ inputs.<name> }}`,
 * and `if:` built from always(), success(), failure(), `steps.<id>.outputs.<name> != ''`,
 * `steps.<id>.outputs.<name> == '<text>'` and `inputs.<name>` (true when the input is true) joined by && (without a
 * status function, success() is implied, as on GitHub). Anything else throws, so a workflow change this runner
 * cannot follow fails the test instead of being half-simulated. `runJobAsync` is the same runner for tests whose
 * emulators live in the test's own process (spawnSync would block them).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WorkflowStep {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  env?: Record<string, string>;
  'continue-on-error'?: boolean;
  with?: Record<string, unknown>;
}

export interface StepResult {
  label: string;
  status: 'success' | 'failure' | 'skipped';
  exitCode?: number;
  output?: string;
  /** wall seconds the step ran (runJobAsync): where a job's time goes */
  seconds?: number;
}

export interface JobResult {
  status: 'success' | 'failure';
  steps: StepResult[];
}

type Outputs = Record<string, Record<string, string>>;

type Inputs = Record<string, string | boolean>;

function expand(value: string, outputs: Outputs, secrets: Record<string, string>, inputs: Inputs = {}): string {
  return value.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_match, expression: string) => {
    const output = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expression);
    if (output) return outputs[output[1]!]?.[output[2]!] ?? '';
    const secret = /^secrets\.(\w+)$/.exec(expression);
    if (secret) return secrets[secret[1]!] ?? '';
    const input = /^inputs\.(\w+)$/.exec(expression);
    if (input) return String(inputs[input[1]!] ?? '');
    throw new Error(`workflow runner: unsupported expression \${{ ${expression} }}`);
  });
}

function condition(expression: string | undefined, jobFailed: boolean, outputs: Outputs, inputs: Inputs = {}): boolean {
  if (expression === undefined) return !jobFailed;
  // As on GitHub: an expression without a status function (always/success/failure) implies success().
  const hasStatus = /\b(always|success|failure)\(\)/.test(expression);
  if (!hasStatus && jobFailed) return false;
  return expression.split('&&').every((raw) => {
    const term = raw.trim();
    if (term === 'always()') return true;
    if (term === 'success()') return !jobFailed;
    if (term === 'failure()') return jobFailed;
    const notEmpty = /^steps\.([\w-]+)\.outputs\.([\w-]+)\s*!=\s*''$/.exec(term);
    if (notEmpty) return (outputs[notEmpty[1]!]?.[notEmpty[2]!] ?? '') !== '';
    const equals = /^steps\.([\w-]+)\.outputs\.([\w-]+)\s*==\s*'([^']*)'$/.exec(term);
    if (equals) return (outputs[equals[1]!]?.[equals[2]!] ?? '') === equals[3];
    const input = /^inputs\.(\w+)$/.exec(term);
    if (input) return inputs[input[1]!] === true || inputs[input[1]!] === 'true';
    throw new Error(`workflow runner: unsupported condition "${term}"`);
  });
}

function readOutputs(file: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) values[line.slice(0, at)] = line.slice(at + 1);
  }
  return values;
}

export function runJob(
  steps: WorkflowStep[],
  options: { cwd: string; env: Record<string, string>; secrets?: Record<string, string>; inputs?: Inputs; timeoutMs?: number },
): JobResult {
  const inputs = options.inputs ?? {};
  const scratch = mkdtempSync(join(tmpdir(), 'workflow-job-'));
  const outputs: Outputs = {};
  const results: StepResult[] = [];
  let failed = false;
  try {
    steps.forEach((step, index) => {
      const label = step.name ?? step.id ?? step.uses ?? `step ${index + 1}`;
      if (!condition(step.if, failed, outputs, inputs) || step.run === undefined) {
        results.push({ label, status: 'skipped' });
        return;
      }
      const outputFile = join(scratch, `output-${index}`);
      writeFileSync(outputFile, '');
      const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([key, value]) => [key, expand(String(value), outputs, options.secrets ?? {}, inputs)]));
      const ran = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', expand(step.run, outputs, options.secrets ?? {}, inputs)], {
        cwd: options.cwd,
        env: { ...options.env, ...stepEnv, GITHUB_OUTPUT: outputFile },
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 30_000,
      });
      if (step.id) outputs[step.id] = readOutputs(outputFile);
      const exitCode = ran.status ?? 1;
      const status = exitCode === 0 ? 'success' : 'failure';
      if (status === 'failure' && !step['continue-on-error']) failed = true;
      results.push({ label, status, exitCode, output: `${ran.stdout}${ran.stderr}` });
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { status: failed ? 'failure' : 'success', steps: results };
}

export interface JobOptions {
  cwd: string;
  env: Record<string, string>;
  secrets?: Record<string, string>;
  /** workflow_dispatch inputs */
  inputs?: Inputs;
  timeoutMs?: number;
  /** a `uses:` step as a shell command to run instead (undefined: skipped, as by default) */
  uses?: (step: WorkflowStep) => string | undefined;
  /** each step's output as it arrives (long jobs show progress) */
  onOutput?: (label: string, chunk: string) => void;
}

/** As runJob, without blocking the event loop: for tests whose emulators run in the test process. */
export async function runJobAsync(steps: WorkflowStep[], options: JobOptions): Promise<JobResult> {
  const scratch = mkdtempSync(join(tmpdir(), 'workflow-job-'));
  const outputs: Outputs = {};
  const results: StepResult[] = [];
  const inputs = options.inputs ?? {};
  let failed = false;
  try {
    for (const [index, step] of steps.entries()) {
      const label = step.name ?? step.id ?? step.uses ?? `step ${index + 1}`;
      const script = step.run ?? (step.uses ? options.uses?.(step) : undefined);
      if (!condition(step.if, failed, outputs, inputs) || script === undefined) {
        results.push({ label, status: 'skipped' });
        continue;
      }
      const outputFile = join(scratch, `output-${index}`);
      writeFileSync(outputFile, '');
      const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([key, value]) => [key, expand(String(value), outputs, options.secrets ?? {}, inputs)]));
      const child = spawn('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', expand(script, outputs, options.secrets ?? {}, inputs)], {
        cwd: options.cwd,
        env: { ...options.env, ...stepEnv, GITHUB_OUTPUT: outputFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const stepStarted = Date.now();
      const collect = (chunk: Buffer) => {
        const text = chunk.toString();
        output += text;
        options.onOutput?.(label, text);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      const exitCode = await new Promise<number>((done) => child.on('close', (code) => done(code ?? 1)));
      clearTimeout(timer);
      if (step.id) outputs[step.id] = readOutputs(outputFile);
      const status = exitCode === 0 ? 'success' : 'failure';
      if (status === 'failure' && !step['continue-on-error']) failed = true;
      results.push({ label, status, exitCode, output, seconds: (Date.now() - stepStarted) / 1000 });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { status: failed ? 'failure' : 'success', steps: results };
}
