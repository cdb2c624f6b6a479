/**
 * A stand-in `pulumi` for the workflow's end-to-end test (there is no Pulumi CLI here): the few commands the
 * workflow runs, against services that live on the Render emulator's local platform.
 *   pulumi up --yes -s STACK            the stack file's flag, exposure ceiling and pinned commit applied through the
 *                                       Render API (set env vars, deploy, wait live), production after the infra guard
 *                                       (infra/guards.ts, as `pulumi preview` runs it), printing what it judged
 *   pulumi stack output NAME [--show-secrets --json] -s STACK      serviceUrl, serviceId, callerKeySecrets
 *   pulumi config get memory-rollout:KEY -s STACK                  context7ApiKey, context7BaseUrl, adminToken
 * The services and their secrets are in the JSON file PULUMI_STANDIN_STATE, written by the test.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// `up` only: loaded when it runs. The workflow's jobs start this stand-in 19 times, 17 of them for a `config get` or
// a `stack output` that only reads the state file; the infra guard and the Render client (yaml, ajv, axios) took each
// of those starts to about 0.3 s of CPU (issue 23, scripts/cpu-by-role).
type StackFile = typeof import('../../../canary/actions/stack-file');
type GuardStep = typeof import('../../../demo/guard-step');
type RenderClientModule = typeof import('../../../render/client');

export interface StandInStack {
  serviceId: string;
  serviceUrl: string;
  callerKeySecrets: Record<string, string>;
  config: Record<string, string>;
}
export interface StandInState {
  renderUrl: string;
  renderApiKey: string;
  stacks: Record<string, StandInStack>;
}

function stackArg(args: string[]): string {
  const at = args.findIndex((a) => a === '-s' || a === '--stack');
  const stack = at >= 0 ? args[at + 1] : undefined;
  if (!stack) throw new Error('pulumi stand-in: -s STACK is required');
  return stack;
}

async function up(state: StandInState, stack: string): Promise<number> {
  const { EXPOSURE_PERCENT_KEY, FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig } = require('../../../canary/actions/stack-file') as StackFile;
  const { markSecretsSet, runInfraGuard } = require('../../../demo/guard-step') as GuardStep;
  const { RenderClient } = require('../../../render/client') as RenderClientModule;
  const file = join(process.cwd(), `Pulumi.${stack}.yaml`);
  const flag = readStackConfig(file, FLAG_KEY) === true;
  const ceiling = readStackConfig(file, EXPOSURE_PERCENT_KEY);
  const pinned = readStackConfig(file, PINNED_COMMIT_KEY);
  if (stack === 'production') {
    // The guard reads the stack as an operator's checkout has it: the secrets set (as ciphertext).
    const scratch = mkdtempSync(join(tmpdir(), 'pulumi-stand-in-'));
    try {
      const copy = join(scratch, `Pulumi.${stack}.yaml`);
      copyFileSync(file, copy);
      markSecretsSet(copy);
      const guard = runInfraGuard(stack, copy, join(process.cwd(), 'reports', 'staging', 'report.json'), process.env);
      if (guard.judged) process.stdout.write(`${guard.judged}\n`);
      if (!guard.ok) {
        for (const violation of guard.violations) process.stderr.write(`error: ${violation}\n`);
        return 1;
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  const service = state.stacks[stack]!;
  const client = new RenderClient({ apiKey: state.renderApiKey, baseUrl: state.renderUrl });
  const env = new Map((await client.listEnvVars(service.serviceId)).map((v) => [v.key, v.value]));
  const wanted: Record<string, string> = { ENABLE_CONTEXT7_MEMORY: String(flag), ...(typeof ceiling === 'number' ? { CONTEXT7_EXPOSURE_PERCENT: String(ceiling) } : {}) };
  const changed = Object.entries(wanted).filter(([key, value]) => env.get(key) !== value);
  if (changed.length === 0 && typeof pinned !== 'string') {
    process.stdout.write(`pulumi up -s ${stack}: no changes\n`);
    return 0;
  }
  for (const [key, value] of changed) await client.setEnvVar(service.serviceId, key, value);
  const deploy = await client.triggerDeploy(service.serviceId, typeof pinned === 'string' ? { commitId: pinned } : {});
  await client.waitForDeploy(service.serviceId, deploy.id!, { timeoutMs: 120_000, pollIntervalMs: 100 });
  process.stdout.write(`pulumi up -s ${stack}: ${changed.map(([k, v]) => `${k}=${v}`).join(', ') || 'no env change'}; deploy ${deploy.id}${typeof pinned === 'string' ? ` at ${pinned.slice(0, 12)}` : ''} live\n`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const state = JSON.parse(readFileSync(process.env.PULUMI_STANDIN_STATE!, 'utf8')) as StandInState;
  if (args[0] === 'up') return up(state, stackArg(args));
  if (args[0] === 'stack' && args[1] === 'output') {
    const stack = state.stacks[stackArg(args)];
    if (!stack) return 1;
    const name = args[2];
    if (name === 'callerKeySecrets') {
      if (!args.includes('--show-secrets')) throw new Error('callerKeySecrets is a secret output: --show-secrets');
      process.stdout.write(`${JSON.stringify(stack.callerKeySecrets)}\n`);
      return 0;
    }
    if (name === 'serviceUrl' || name === 'serviceId') {
      process.stdout.write(`${stack[name]}\n`);
      return 0;
    }
    process.stderr.write(`pulumi stand-in: no output ${name}\n`);
    return 1;
  }
  if (args[0] === 'config' && args[1] === 'get') {
    const stack = state.stacks[stackArg(args)];
    const value = stack?.config[(args[2] ?? '').replace(/^memory-rollout:/, '')];
    if (value === undefined) {
      process.stderr.write(`error: configuration key '${args[2]}' not found for stack\n`);
      return 1;
    }
    process.stdout.write(`${value}\n`);
    return 0;
  }
  process.stderr.write(`pulumi stand-in: unexpected arguments: ${args.join(' ')}\n`);
  return 127;
}

if (!existsSync(process.env.PULUMI_STANDIN_STATE ?? '')) {
  process.stderr.write('pulumi stand-in: PULUMI_STANDIN_STATE is not set\n');
  process.exitCode = 2;
} else {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`pulumi stand-in: ${(error as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
