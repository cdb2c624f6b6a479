/**
 * Runs one job of a GitHub Actions workflow the way a runner would, as far as this repository's example needs:
 * `run:` steps in `bash --noprofile --norc -eo pipefail`, `uses:` steps skipped, step outputs through
 * $GITHUB_OUTPUT, `env:` with `${{ steps.<id>.outputs.<name> }}` / `${{ secrets.<name> }}`, and `if:` built from
 * always(), success(), failure() and `steps.<id>.outputs.<name> != ''` joined by && (without a status function,
 * success() is implied, as on GitHub). Anything else throws, so a
 * workflow change this runner cannot follow fails the test instead of being half-simulated.
 */
import { spawnSync } from 'node:child_process';
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
}

export interface StepResult {
  label: string;
  status: 'success' | 'failure' | 'skipped';
  exitCode?: number;
  output?: string;
}

export interface JobResult {
  status: 'success' | 'failure';
  steps: StepResult[];
}

type Outputs = Record<string, Record<string, string>>;

function expand(value: string, outputs: Outputs, secrets: Record<string, string>): string {
  return value.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_match, expression: string) => {
    const output = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expression);
    if (output) return outputs[output[1]!]?.[output[2]!] ?? '';
    const secret = /^secrets\.(\w+)$/.exec(expression);
    if (secret) return secrets[secret[1]!] ?? '';
    throw new Error(`workflow runner: unsupported expression \${{ ${expression} }}`);
  });
}

function condition(expression: string | undefined, jobFailed: boolean, outputs: Outputs): boolean {
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
  options: { cwd: string; env: Record<string, string>; secrets?: Record<string, string>; timeoutMs?: number },
): JobResult {
  const scratch = mkdtempSync(join(tmpdir(), 'workflow-job-'));
  const outputs: Outputs = {};
  const results: StepResult[] = [];
  let failed = false;
  try {
    steps.forEach((step, index) => {
      const label = step.name ?? step.id ?? step.uses ?? `step ${index + 1}`;
      if (!condition(step.if, failed, outputs) || step.run === undefined) {
        results.push({ label, status: 'skipped' });
        return;
      }
      const outputFile = join(scratch, `output-${index}`);
      writeFileSync(outputFile, '');
      const stepEnv = Object.fromEntries(Object.entries(step.env ?? {}).map(([key, value]) => [key, expand(String(value), outputs, options.secrets ?? {})]));
      const ran = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', expand(step.run, outputs, options.secrets ?? {})], {
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
