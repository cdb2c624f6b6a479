/**
 * The I/O edge of the operator commands (canary/main.ts dispatches here):
 *   status  --stack S [--state-file F] [--policy P] [--base-url URL] [--time-scale N] [--json]    always exit 0
 *   pause | resume | promote | abort --stack S --reason TEXT [--state-file F] [--actor NAME] [--wait-seconds N]
 *     queue the request for the running canary's next look; with --wait-seconds, wait for its answer:
 *     exit 0 applied (or queued, without --wait-seconds), 2 refused or superseded, 3 no answer in time, 64 usage
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CanaryState } from '../actions/state-file';
import { readStateUnbound } from '../actions/state-binding';
import { analyzeStep } from '../exposure/analyze-step';
import type { CanaryPolicy } from '../policy';
import { createExposureAdmin } from '../sources/exposure-admin';
import type { HttpProbe } from '../sources/http';
import { OPERATOR_COMMANDS, operatorFilePath, readOperatorFile, submitRequest, type OperatorCommand, type OperatorFile } from './requests';
import { formatStatus, gatherStatus } from './status';

export class OperatorUsageError extends Error {}

export interface OperatorDeps {
  policy: CanaryPolicy;
  probe: HttpProbe;
  env: NodeJS.ProcessEnv;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  out: (text: string) => void;
}

export const isOperatorCommand = (command: string | undefined): command is OperatorCommand => OPERATOR_COMMANDS.includes(command as OperatorCommand);

function stateFileOf(values: Record<string, string | boolean | undefined>): { stack: string; stateFile: string } {
  const stack = values.stack;
  if (stack !== 'staging' && stack !== 'production') throw new OperatorUsageError('needs --stack staging|production');
  const stateFile = resolve(typeof values['state-file'] === 'string' ? values['state-file'] : `.canary-state-${stack}.json`);
  return { stack, stateFile };
}

/**
 * Reads the state without ever throwing, through the binding's read-only loader (canary/actions/state-binding.ts):
 * status shows whatever it can; an incomplete state is shown, with its problem.
 */
function loadState(path: string): { ok: true; state: CanaryState | undefined; problem?: string } | { ok: false; detail: string } {
  if (!existsSync(path)) return { ok: true, state: undefined };
  const read = readStateUnbound(path);
  if (!read.state) return { ok: false, detail: read.problem ?? `${path} could not be read` };
  return { ok: true, state: read.state, ...(read.problem ? { problem: read.problem } : {}) };
}

function loadOperator(path: string): { ok: true; file: OperatorFile } | { ok: false; detail: string } {
  try {
    return { ok: true, file: readOperatorFile(path) };
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  }
}

export async function statusCommand(values: Record<string, string | boolean | undefined>, deps: OperatorDeps): Promise<number> {
  const { stateFile } = stateFileOf(values);
  const state = loadState(stateFile);
  const baseUrl = typeof values['base-url'] === 'string' ? values['base-url'] : state.ok ? state.state?.baseUrl : undefined;
  if (baseUrl !== undefined && !/^https?:\/\/[^/]+/.test(baseUrl)) throw new OperatorUsageError('--base-url must be http(s)://HOST[:PORT]');
  const timeScale = values['time-scale'] === undefined ? undefined : Number(values['time-scale']);
  if (timeScale !== undefined && (!Number.isFinite(timeScale) || timeScale <= 0)) throw new OperatorUsageError('--time-scale must be a positive number');
  const adminToken = deps.env.CANARY_ADMIN_TOKEN?.trim();
  const timeoutMs = deps.policy.measurement.timeoutSeconds * 1000;
  const status = await gatherStatus({
    stateFile,
    state,
    operator: loadOperator(operatorFilePath(stateFile)),
    policy: deps.policy,
    analyzeStep,
    ...(adminToken && baseUrl
      ? { readExposure: () => createExposureAdmin({ baseUrl, adminToken, probe: deps.probe, timeoutMs, pollMs: 250, now: deps.now, sleep: deps.sleep }).read() }
      : {}),
    ...(baseUrl ? { baseUrl } : {}),
    probe: deps.probe,
    timeoutMs,
    ...(timeScale !== undefined ? { timeScale } : {}),
    nowMs: deps.now(),
    isAlive: (pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
      }
    },
  });
  deps.out(values.json === true ? JSON.stringify(status, null, 2) : formatStatus(status));
  return 0;
}

export const OPERATOR_EXIT = { applied: 0, refused: 2, noAnswer: 3 } as const;

export async function requestCommand(command: OperatorCommand, values: Record<string, string | boolean | undefined>, deps: OperatorDeps): Promise<number> {
  const { stack, stateFile } = stateFileOf(values);
  const reason = typeof values.reason === 'string' ? values.reason.trim() : '';
  if (!reason) throw new OperatorUsageError(`${command} needs --reason TEXT: every request is recorded with who asked and why`);
  const actor = (typeof values.actor === 'string' ? values.actor : deps.env.CANARY_OPERATOR ?? deps.env.GITHUB_ACTOR ?? deps.env.USER ?? '').trim();
  if (!actor) throw new OperatorUsageError(`${command} needs --actor NAME (or CANARY_OPERATOR in the environment)`);
  if (actor.length > 100 || reason.length > 500) throw new OperatorUsageError('--actor is at most 100 characters and --reason at most 500');
  // The request is written to a file, the report, the audit and the webhook: never a credential.
  const secrets = [deps.env.CANARY_ADMIN_TOKEN, deps.env.RENDER_API_KEY, deps.env.CANARY_MEMORY_API_KEY, deps.env.CANARY_PROBE_KEY].map((v) => v?.trim()).filter((v): v is string => Boolean(v) && v!.length >= 8);
  if (secrets.some((secret) => actor.includes(secret) || reason.includes(secret))) throw new OperatorUsageError('--actor or --reason contains a credential from the environment; nothing was queued');
  const waitSeconds = values['wait-seconds'] === undefined ? 0 : Number(values['wait-seconds']);
  if (!Number.isFinite(waitSeconds) || waitSeconds < 0) throw new OperatorUsageError('--wait-seconds must be a number of seconds');

  if (!existsSync(stateFile)) throw new OperatorUsageError(`no canary state at ${stateFile}: no stepped canary of ${stack} has started there (--state-file)`);
  const state = loadState(stateFile);
  if (!state.ok) throw new OperatorUsageError(state.detail);
  if (!state.state?.stepped) throw new OperatorUsageError(`${stateFile} is not a stepped canary's state: ${command} drives the stepped canary only`);
  if (state.state.stack !== stack) throw new OperatorUsageError(`${stateFile} belongs to the ${state.state.stack} canary, not ${stack}`);
  if (state.state.phase !== 'analysing') {
    throw new OperatorUsageError(`the rollout is past its steps (phase ${state.state.phase}${state.state.outcome ? `, outcome ${state.state.outcome}` : ''}, decision ${state.state.decision?.kind ?? 'none'}): nothing was queued`);
  }

  const path = operatorFilePath(stateFile);
  const queued = await submitRequest(path, { command, actor, reason, now: new Date(deps.now()) });
  deps.out(`queued ${command} by ${actor} (${queued.id}): the canary answers at its next look`);
  if (waitSeconds === 0) return OPERATOR_EXIT.applied;
  const deadline = deps.now() + waitSeconds * 1000;
  while (deps.now() < deadline) {
    await deps.sleep(200);
    const answer = readOperatorFile(path).requests.find((r) => r.id === queued.id)?.answer;
    if (answer) {
      deps.out(`${answer.outcome}: ${answer.detail}`);
      return answer.outcome === 'applied' ? OPERATOR_EXIT.applied : OPERATOR_EXIT.refused;
    }
  }
  deps.out(`no answer within ${waitSeconds} s: the request stays queued for the canary's next look (is the canary running? \`canary status\`)`);
  return OPERATOR_EXIT.noAnswer;
}
