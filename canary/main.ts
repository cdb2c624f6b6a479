/**
 * npm run canary -- run --base-url URL --stack staging|production [--policy FILE] [--render-api-url URL]
 *                       [--render-service-id ID] [--state-file FILE] [--report-dir DIR] [--time-scale N]
 *                       [--dry-run] [--webhook URL] [--stack-dir DIR]
 * npm run canary -- stepped (run's options, without --backfill) [--apply-timeout-seconds N]
 *   the stepped canary (canary/exposure/): the policy's exposure steps, kill switch then durable rollback
 * npm run canary -- replay --timeline FILE [--policy FILE]
 * npm run canary -- evaluate --profile thirty-day --base-url URL [--days N] [--until YYYY-MM-DD] [--report-dir DIR]
 *                            [--policy FILE] [--review ID --signed-off-at ISO] [--ab]
 *   (exit 0 pass, 1 fail, 2 inconclusive, 3 history unreadable, 64 usage; see canary/thirty-day/)
 * npm run canary -- review-due [--reports-dir DIR] [--today YYYY-MM-DD] [--output FILE]
 * npm run canary -- preflight | smoke | backfill | stepped --prepare: the steps around a canary (see USAGE, and
 *   canary/README.md "Before the canary"); run --synthetic-traffic on|off: staging's own traffic (canary/synthetic/)
 * npm run canary -- status --stack S [--state-file FILE] [--json] ...; pause|resume|promote|abort --stack S --reason TEXT
 *   operators in the loop of a running stepped canary (canary/operator/)
 *
 * Exit codes: 0 promoted/signed off, 1 rolled back and verified, 2 held, 3 aborted (metrics unreadable),
 * 4 rollback not verified, 5 aborted because the local store is failing (flag untouched, alerted),
 * 6 a dry run that would roll back (nothing was done), 64 bad arguments, policy or state file (one bound to another
 * service or deploy, or incomplete). replay exits with its decision's code (0, 1, 2, 3, 5; 2 when a stepped report
 * cannot be replayed to a verdict). RENDER_API_KEY comes from the environment only.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_RENDER_BASE_URL, RenderClient } from '../render/client';
import { noRenderPlatform, renderPlatformOf } from '../render/platform';
import { analyze } from './analysis';
import { InMemoryState, StateFile, StateFileError } from './actions/state-file';
import { createWebhookNotifier, silentNotifier } from './actions/webhook';
import { runCanary, type CanaryRunOptions } from './controller';
import { analyzeStep } from './exposure/analyze-step';
import { replaySteppedReport, steppedReportSchema, type SteppedReportForReplay } from './exposure/replay';
import { runSteppedCanary, type SteppedPolicy } from './exposure/stepped-controller';
import { createExposureAdmin } from './sources/exposure-admin';
import { EXIT_CODES, formatAnalysis, replayExitCode } from './format';
import { loadPolicy, parsePolicy, PolicyError } from './policy';
import { createTerminalProgress } from './progress';
import { httpProbe } from './sources/http';
import { createHttpMetricSource } from './sources/metrics-poller';
import { createRenderLogSource } from './sources/render-logs';
import { createRenderPlatformSource } from './sources/render-platform';
import { withSecondSources } from './sources/second-sources';
import { createLearningProbe, PROBE_LOCATION, probeScopeId, withLearningProbe } from './probe/learning-probe';
import { checkTargetBelongsToService } from './target';
import { loadTimeline, TimelineError } from './timeline';
import { evaluateCommand, reviewDueCommand, ThirtyDayUsageError } from './thirty-day/commands';
import { SYNTHETIC_LOCATION, syntheticRate } from './synthetic/plan';
import { checkContext7Key, PREFLIGHT_EXIT_CODES } from './preflight/context7-key';
import { prepareExposure } from './exposure/prepare';
import { renderSmokeMarkdown, runSmokeSuite } from './smoke/suite';
import { runBackfillStep } from './backfill-after-signoff';
import { readChecklist } from './report/checklist';
import { DEFAULT_CONTEXT7_BASE_URL } from '../service/context7/client';
import { createSyntheticTraffic, withSyntheticTraffic } from './synthetic/traffic';
import { isOperatorCommand, OperatorUsageError, requestCommand, statusCommand, type OperatorDeps } from './operator/commands';
import { OperatorFileError, operatorFilePath, type OperatorCommand } from './operator/requests';

const DEFAULT_POLICY = join(__dirname, 'policy.yaml');

class UsageError extends Error {}
/** The target could not be checked: nothing was done (exit 3, like any other abort). */
class TargetError extends Error {}

const USAGE = `usage:
  npm run canary -- run --base-url URL --stack staging|production [--policy FILE] [--render-api-url URL]
                        [--render-service-id ID] [--state-file FILE] [--report-dir DIR] [--time-scale N]
                        [--dry-run] [--webhook URL] [--stack-dir DIR] [--backfill start|follow] [--resume]
                        [--synthetic-traffic on|off]  (default: on for staging when CANARY_LOADTEST_KEY is set,
                        off for production)
  npm run canary -- stepped (the same options as run, without --backfill) [--apply-timeout-seconds N]
  npm run canary -- stepped --prepare --base-url URL --stack S [--prepare-percent P] [--policy FILE]
                            before the flag turns on: store the first step's percentage (or P, at most it) as the
                            runtime exposure, so the flag flip never exposes the ceiling; then exit
  npm run canary -- replay --timeline FILE [--policy FILE]
  npm run canary -- evaluate --profile thirty-day --base-url URL [--days N] [--until YYYY-MM-DD] [--report-dir DIR]
                             [--policy FILE] [--review ID --signed-off-at ISO] [--ab]
  npm run canary -- review-due [--reports-dir DIR] [--today YYYY-MM-DD] [--output FILE]
  npm run canary -- smoke --base-url URL --stack staging|production [--policy FILE] [--report-dir DIR]
                         [--load-seconds 10] [--load-rate 5]   the named smoke suite, in the probe scopes
                         (CANARY_PROBE_KEY; writes smoke.json and smoke.md; exit 0 pass, 1 fail)
  npm run canary -- backfill --base-url URL [--report-dir reports/production] [--follow-seconds 120] [--policy FILE]
                            runbook Step 4 after the sign-off: start the full sync, follow it, judge it against 5 %
                            sync errors, add it to report.json and signoff.md (CANARY_ADMIN_TOKEN; exit 0, 1 fail, 3)
  npm run canary -- preflight --stack staging|production [--timeout-seconds 10]
                             (CONTEXT7_API_KEY and CONTEXT7_BASE_URL from the environment; exit 0 ok, 10 key refused,
                             11 not the assumed memory contract (404), 12 unreachable, 13 unhealthy)
  npm run canary -- status --stack staging|production [--state-file FILE] [--policy FILE] [--base-url URL]
                           [--time-scale N] [--json]
  npm run canary -- pause|resume|promote|abort --stack staging|production --reason TEXT [--state-file FILE]
                           [--actor NAME] [--wait-seconds N]
    (a running stepped canary answers at its next look; exit 0 applied or queued, 2 refused or superseded,
    3 no answer within --wait-seconds, 64 bad arguments or no running rollout there)
RENDER_API_KEY, CANARY_MEMORY_API_KEY (a caller key of the service, for the rollback verification's snippets
read), CANARY_PROBE_KEY (the learning probe's caller key, restricted to location canaryprobe-canary),
CANARY_LOADTEST_KEY (the synthetic traffic's caller key, restricted to location loadtest-canary) and, with
--backfill and for stepped, CANARY_ADMIN_TOKEN are read from the environment.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // `<command> --help` as well as `--help`: the usage covers every command.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command === 'replay') return replay(rest);
  if (command === 'run') return run(rest, 'single');
  if (command === 'stepped') return run(rest, 'stepped');
  if (command === 'evaluate') return evaluate(rest);
  if (command === 'review-due') return reviewDue(rest);
  if (command === 'preflight') return preflight(rest);
  if (command === 'smoke') return smoke(rest);
  if (command === 'backfill') return backfillCommand(rest);
  if (command === 'status') return operatorStatus(rest);
  if (isOperatorCommand(command)) return operatorRequest(command, rest);
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  throw new UsageError(command ? `unknown command "${command}"` : 'missing command');
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

function parse(args: string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function replay(args: string[]): number {
  const values = parse(args, { timeline: { type: 'string' }, policy: { type: 'string' } });
  if (typeof values.timeline !== 'string') throw new UsageError('replay needs --timeline FILE');
  const stepped = readSteppedReport(values.timeline);
  if (stepped) return replayStepped(values.timeline, stepped, typeof values.policy === 'string' ? values.policy : undefined);
  const timeline = loadTimeline(values.timeline);
  // A report is judged again with the policy it was judged with (a demo's 10-minute clock, say); --policy overrides.
  const policy =
    typeof values.policy === 'string' ? loadPolicy(values.policy) : (timeline.policy ?? loadPolicy(DEFAULT_POLICY));
  process.stdout.write(
    `policy: ${typeof values.policy === 'string' ? values.policy : timeline.policy ? `the one recorded in ${values.timeline}` : DEFAULT_POLICY}\n`,
  );
  const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });
  process.stdout.write(`${formatAnalysis(result)}\n`);
  if (timeline.expected) {
    const matches = result.decision?.kind === timeline.expected.decision;
    process.stdout.write(`expected: ${timeline.expected.decision} -> ${matches ? 'MATCH' : 'MISMATCH'}\n`);
  }
  return replayExitCode(result.decision);
}

/** A stepped canary's report.json, or undefined for anything else (a corpus timeline, a whole-flag report). */
function readSteppedReport(path: string): SteppedReportForReplay | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined; // loadTimeline says what is wrong with it
  }
  if (typeof raw !== 'object' || raw === null || (raw as { kind?: unknown }).kind !== 'stepped') return undefined;
  const parsed = steppedReportSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TimelineError(`invalid stepped report ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Replays a stepped run as a stepped run: its steps, its looks, its alpha (canary/exposure/replay.ts). */
function replayStepped(path: string, report: SteppedReportForReplay, policyPath: string | undefined): number {
  const policy = policyPath ? loadPolicy(policyPath) : parsePolicy(JSON.stringify(report.policy), `${path} (its policy)`);
  if (!policy.exposure) throw new UsageError(`${policyPath ?? `the policy recorded in ${path}`} has no exposure steps: a stepped report is replayed with a stepped policy`);
  process.stdout.write(`stepped report: ${report.steps.map((s) => `${s.percent}%`).join(' → ')}${report.dryRun ? ' (a dry run)' : ''}; policy: ${policyPath ?? `the one recorded in ${path}`}\n`);
  let replayed;
  try {
    replayed = replaySteppedReport(report, policy as SteppedPolicy, analyzeStep);
  } catch (error) {
    throw new TimelineError(`cannot replay ${path}: ${(error as Error).message}`);
  }
  for (const line of replayed.lines) process.stdout.write(`${line}\n`);
  const v = replayed.verdict;
  if (v) {
    process.stdout.write(`DECISION: ${v.kind.toUpperCase()} at step ${v.stepIndex + 1} (${policy.exposure.steps[v.stepIndex]!.percent}%) (${v.trigger}): ${v.reason}\n`);
  } else {
    process.stdout.write(`NO VERDICT: ${replayed.noVerdict}\n`);
  }
  const recorded = report.decision;
  const matches = recorded ? v !== null && v.kind === recorded.kind && v.stepIndex === recorded.stepIndex : v === null;
  process.stdout.write(`recorded: ${recorded ? `${recorded.kind} (${recorded.trigger}) at step ${recorded.stepIndex + 1}` : 'no decision'} -> ${matches ? 'MATCH' : 'MISMATCH'}\n`);
  return v ? replayExitCode(v) : EXIT_CODES.held;
}

function evaluate(args: string[]): Promise<number> {
  const values = parse(args, {
    profile: { type: 'string' },
    'base-url': { type: 'string' },
    days: { type: 'string' },
    until: { type: 'string' },
    'report-dir': { type: 'string' },
    policy: { type: 'string' },
    review: { type: 'string' },
    'signed-off-at': { type: 'string' },
    ab: { type: 'boolean' },
  });
  return evaluateCommand(values, {
    policy: loadPolicy(typeof values.policy === 'string' ? values.policy : DEFAULT_POLICY),
    probe: httpProbe,
    now: () => new Date(),
    operator: process.env.CANARY_OPERATOR ?? process.env.GITHUB_ACTOR ?? process.env.USER ?? 'canary',
    log: (line) => process.stdout.write(`${line}\n`),
  });
}

function reviewDue(args: string[]): number {
  const values = parse(args, { 'reports-dir': { type: 'string' }, today: { type: 'string' }, output: { type: 'string' } });
  return reviewDueCommand(values, { now: () => new Date(), log: (line) => process.stderr.write(`${line}\n`) });
}

/** Runbook Step 4 after the production sign-off (canary/backfill-after-signoff.ts). */
async function backfillCommand(args: string[]): Promise<number> {
  const values = parse(args, { 'base-url': { type: 'string' }, 'report-dir': { type: 'string' }, 'follow-seconds': { type: 'string' }, policy: { type: 'string' } });
  const baseUrl = values['base-url'];
  if (typeof baseUrl !== 'string' || !/^https?:\/\/[^/]+/.test(baseUrl)) throw new UsageError('backfill needs --base-url http(s)://HOST[:PORT]');
  const followSeconds = values['follow-seconds'] === undefined ? 120 : Number(values['follow-seconds']);
  if (!Number.isFinite(followSeconds) || followSeconds < 0 || followSeconds > 3600) throw new UsageError('--follow-seconds must be from 0 to 3600');
  const adminToken = process.env.CANARY_ADMIN_TOKEN?.trim();
  if (!adminToken) throw new UsageError('backfill needs CANARY_ADMIN_TOKEN (the service\'s ADMIN_TOKEN) in the environment');
  const result = await runBackfillStep({
    baseUrl,
    adminToken,
    policy: loadPolicy(typeof values.policy === 'string' ? values.policy : DEFAULT_POLICY),
    http: httpProbe,
    followSeconds,
    pollMs: 2_000,
    reportDir: resolve(typeof values['report-dir'] === 'string' ? values['report-dir'] : join('reports', 'production')),
    now: Date.now,
    sleep: (ms) => new Promise<void>((done) => setTimeout(done, ms)),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  return result.exitCode;
}

/** The named smoke suite (canary/smoke/suite.ts), before a canary exposes anyone. */
async function smoke(args: string[]): Promise<number> {
  const values = parse(args, {
    'base-url': { type: 'string' },
    stack: { type: 'string' },
    policy: { type: 'string' },
    'report-dir': { type: 'string' },
    'load-seconds': { type: 'string' },
    'load-rate': { type: 'string' },
  });
  const baseUrl = values['base-url'];
  const stack = values.stack;
  if (typeof baseUrl !== 'string' || !/^https?:\/\/[^/]+/.test(baseUrl)) throw new UsageError('smoke needs --base-url http(s)://HOST[:PORT]');
  if (stack !== 'staging' && stack !== 'production') throw new UsageError('smoke needs --stack staging|production');
  const loadSeconds = values['load-seconds'] === undefined ? 10 : Number(values['load-seconds']);
  const loadRate = values['load-rate'] === undefined ? 5 : Number(values['load-rate']);
  if (!Number.isFinite(loadSeconds) || loadSeconds < 0 || loadSeconds > 600) throw new UsageError('--load-seconds must be from 0 to 600');
  if (!Number.isFinite(loadRate) || loadRate <= 0 || loadRate > 100) throw new UsageError('--load-rate must be a rate from 0 to 100 requests a second');
  const probeKey = process.env.CANARY_PROBE_KEY?.trim();
  if (!probeKey) throw new UsageError(`smoke needs CANARY_PROBE_KEY (the stack's canary-probe caller key, restricted to ${PROBE_LOCATION}) in the environment`);
  const adminToken = process.env.CANARY_ADMIN_TOKEN?.trim();
  if (adminToken && probeKey === adminToken) throw new UsageError('CANARY_PROBE_KEY must be a dedicated probe caller key, never the admin token');
  const policy = loadPolicy(typeof values.policy === 'string' ? values.policy : DEFAULT_POLICY);
  const reportDir = resolve(typeof values['report-dir'] === 'string' ? values['report-dir'] : join('reports', stack));
  const result = await runSmokeSuite({
    stack,
    baseUrl,
    probeKey,
    policy,
    http: httpProbe,
    loadSeconds,
    loadRatePerSecond: loadRate,
    now: Date.now,
    sleep: (ms) => new Promise<void>((done) => setTimeout(done, ms)),
    onCheck: (check) => process.stdout.write(`smoke ${check.ok ? 'PASS' : 'FAIL'}: ${check.name}: ${check.got}${check.ok ? '' : ` (expected ${check.expected})`}\n`),
  });
  mkdirSync(reportDir, { recursive: true });
  writeFileSync(join(reportDir, 'smoke.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(reportDir, 'smoke.md'), renderSmokeMarkdown(result));
  process.stdout.write(`smoke suite (${stack}): ${result.ok ? 'PASS' : 'FAIL: the rollout stops before any customer scope is exposed'}; ${join(reportDir, 'smoke.md')}\n`);
  return result.ok ? 0 : 1;
}

/** The stack's Context7 key through the client's health operation, with a deadline, before any flag changes. */
async function preflight(args: string[]): Promise<number> {
  const values = parse(args, { stack: { type: 'string' }, 'timeout-seconds': { type: 'string' } });
  const stack = values.stack;
  if (typeof stack !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(stack)) throw new UsageError('preflight needs --stack NAME');
  const timeoutSeconds = values['timeout-seconds'] === undefined ? 10 : Number(values['timeout-seconds']);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0 || timeoutSeconds > 120) throw new UsageError('--timeout-seconds must be a number of seconds from 0 to 120');
  const baseUrl = process.env.CONTEXT7_BASE_URL?.trim() || DEFAULT_CONTEXT7_BASE_URL;
  if (!/^https?:\/\/[^/]+/.test(baseUrl)) throw new UsageError('CONTEXT7_BASE_URL must be an http(s) URL');
  const apiKey = process.env.CONTEXT7_API_KEY?.trim();
  if (!apiKey) {
    process.stderr.write(
      `preflight: no Context7 API key for the ${stack} stack (CONTEXT7_API_KEY is empty). Set it with ` +
        `\`pulumi config set --secret memory-rollout:context7ApiKey <key> -s ${stack}\`. The rollout stops here; no flag was changed.\n`,
    );
    return PREFLIGHT_EXIT_CODES.key_refused;
  }
  const result = await checkContext7Key({ stack, baseUrl, apiKey, timeoutMs: timeoutSeconds * 1000 });
  (result.verdict === 'ok' ? process.stdout : process.stderr).write(`preflight: ${result.message}\n`);
  return PREFLIGHT_EXIT_CODES[result.verdict];
}

function operatorDeps(values: Record<string, string | boolean | undefined>): OperatorDeps {
  return {
    policy: loadPolicy(typeof values.policy === 'string' ? values.policy : DEFAULT_POLICY),
    probe: httpProbe,
    env: process.env,
    now: Date.now,
    sleep: (ms) => new Promise<void>((done) => setTimeout(done, ms)),
    out: (text) => process.stdout.write(`${text}\n`),
  };
}

function operatorStatus(args: string[]): Promise<number> {
  const values = parse(args, {
    stack: { type: 'string' },
    'state-file': { type: 'string' },
    policy: { type: 'string' },
    'base-url': { type: 'string' },
    'time-scale': { type: 'string' },
    json: { type: 'boolean' },
  });
  return statusCommand(values, operatorDeps(values));
}

function operatorRequest(command: OperatorCommand, args: string[]): Promise<number> {
  const values = parse(args, {
    stack: { type: 'string' },
    'state-file': { type: 'string' },
    reason: { type: 'string' },
    actor: { type: 'string' },
    'wait-seconds': { type: 'string' },
    policy: { type: 'string' },
  });
  return requestCommand(command, values, operatorDeps(values));
}

async function run(args: string[], mode: 'single' | 'stepped'): Promise<number> {
  const command = mode === 'stepped' ? 'stepped' : 'run';
  const values = parse(args, {
    ...(mode === 'stepped'
      ? { 'apply-timeout-seconds': { type: 'string' as const }, prepare: { type: 'boolean' as const }, 'prepare-percent': { type: 'string' as const } }
      : {}),
    'base-url': { type: 'string' },
    stack: { type: 'string' },
    policy: { type: 'string' },
    'render-api-url': { type: 'string' },
    'render-service-id': { type: 'string' },
    'state-file': { type: 'string' },
    'report-dir': { type: 'string' },
    'time-scale': { type: 'string' },
    'dry-run': { type: 'boolean' },
    resume: { type: 'boolean' },
    webhook: { type: 'string' },
    'stack-dir': { type: 'string' },
    backfill: { type: 'string' },
    ...(mode === 'single' ? { 'synthetic-traffic': { type: 'string' as const } } : {}),
  });
  const baseUrl = values['base-url'];
  const stack = values.stack;
  if (typeof baseUrl !== 'string' || !/^https?:\/\/[^/]+/.test(baseUrl)) throw new UsageError(`${command} needs --base-url http(s)://HOST[:PORT]`);
  if (stack !== 'staging' && stack !== 'production') throw new UsageError(`${command} needs --stack staging|production`);
  const timeScale = values['time-scale'] === undefined ? 1 : Number(values['time-scale']);
  if (!Number.isFinite(timeScale) || timeScale <= 0) throw new UsageError('--time-scale must be a positive number');
  const webhook = values.webhook;
  if (webhook !== undefined && (typeof webhook !== 'string' || !/^https?:\/\//.test(webhook))) throw new UsageError('--webhook must be an http(s) URL');
  const policy = loadPolicy(typeof values.policy === 'string' ? values.policy : DEFAULT_POLICY);
  const dryRun = values['dry-run'] === true;
  const serviceId = typeof values['render-service-id'] === 'string' ? values['render-service-id'] : null;
  const apiKey = process.env.RENDER_API_KEY;
  if (serviceId && !apiKey && !dryRun) throw new UsageError('--render-service-id needs RENDER_API_KEY in the environment');

  const backfillMode = values.backfill;
  if (mode === 'stepped' && backfillMode !== undefined) throw new UsageError('stepped does not run the backfill: start it with `run --backfill` or by hand');
  if (backfillMode !== undefined && backfillMode !== 'start' && backfillMode !== 'follow') throw new UsageError('--backfill must be start or follow');
  // The service's admin token reads and starts the backfill: from the environment only, never an argument.
  const adminToken = process.env.CANARY_ADMIN_TOKEN;
  if (backfillMode && !adminToken) throw new UsageError('--backfill needs CANARY_ADMIN_TOKEN (the service\'s ADMIN_TOKEN) in the environment');
  const backfill = backfillMode && adminToken ? { mode: backfillMode as 'start' | 'follow', adminToken } : undefined;
  // The stepped canary sets the exposure through the admin API: the admin token, from the environment only.
  if (mode === 'stepped' && !adminToken && !dryRun) throw new UsageError('stepped needs CANARY_ADMIN_TOKEN (the service\'s ADMIN_TOKEN) in the environment to set the exposure');
  const applyTimeoutSeconds = values['apply-timeout-seconds'] === undefined ? 60 : Number(values['apply-timeout-seconds']);
  if (!Number.isFinite(applyTimeoutSeconds) || applyTimeoutSeconds <= 0) throw new UsageError('--apply-timeout-seconds must be a positive number');

  if (values.prepare === true) {
    if (!adminToken) throw new UsageError('stepped --prepare needs CANARY_ADMIN_TOKEN (the service\'s ADMIN_TOKEN) in the environment');
    const firstStepPercent = policy.exposure.steps[0]!.percent;
    const percent = values['prepare-percent'] === undefined ? firstStepPercent : Number(values['prepare-percent']);
    if (!Number.isFinite(percent) || percent < 0 || percent > 100) throw new UsageError('--prepare-percent must be a percentage from 0 to 100');
    const prepared = await prepareExposure({ baseUrl, adminToken, percent, firstStepPercent, probe: httpProbe, timeoutMs: policy.measurement.timeoutSeconds * 1000 });
    (prepared.ok ? process.stdout : process.stderr).write(`prepare (${stack}): ${prepared.detail}\n`);
    return prepared.ok ? EXIT_CODES.promoted : EXIT_CODES.aborted;
  }
  if (values['prepare-percent'] !== undefined) throw new UsageError('--prepare-percent goes with --prepare');

  const progress = createTerminalProgress();
  // The caller key for the verification read: from the environment only, like the other credentials.
  const memoryApiKey = process.env.CANARY_MEMORY_API_KEY?.trim() || undefined;
  if (!memoryApiKey) progress.warn('CANARY_MEMORY_API_KEY is not set: a rollback verification\'s snippets read will get 401 and fail');
  // The learning probe's key: a caller key restricted to the probe location, from the environment only. An admin
  // token is never a probe key: the probe must prove what a caller can do, with a credential worth little if leaked.
  const probeKey = process.env.CANARY_PROBE_KEY?.trim() || undefined;
  if (probeKey && adminToken && probeKey === adminToken.trim()) throw new UsageError('CANARY_PROBE_KEY must be a dedicated probe caller key, never the admin token');
  if (!probeKey) progress.warn(`CANARY_PROBE_KEY is not set: the learning probe (Step 5, "Test Post-Call Learning") will not run`);
  // The canary's own traffic: on by default on staging (a quiet staging has none to judge), off on production unless
  // asked for. Its caller key comes from the environment only, like every credential.
  const syntheticFlag = values['synthetic-traffic'];
  if (syntheticFlag !== undefined && syntheticFlag !== 'on' && syntheticFlag !== 'off') throw new UsageError('--synthetic-traffic must be on or off');
  const loadTestKey = process.env.CANARY_LOADTEST_KEY?.trim() || undefined;
  if (loadTestKey && (loadTestKey === adminToken?.trim() || loadTestKey === probeKey)) throw new UsageError('CANARY_LOADTEST_KEY must be a dedicated caller key (canary-loadtest), never the admin token or the probe key');
  if (syntheticFlag === 'on' && !loadTestKey) throw new UsageError(`--synthetic-traffic on needs CANARY_LOADTEST_KEY (the stack's canary-loadtest caller key, restricted to ${SYNTHETIC_LOCATION}) in the environment`);
  // A dry run drives it too: deciding on a quiet staging needs the traffic (its writes expire like any run's).
  const syntheticOn = mode === 'single' && loadTestKey !== undefined && (syntheticFlag === 'on' || (syntheticFlag === undefined && stack === 'staging'));
  if (mode === 'single' && stack === 'staging' && syntheticFlag === undefined && !loadTestKey) {
    progress.warn('CANARY_LOADTEST_KEY is not set: no synthetic traffic; a quiet staging may not reach the minimum samples and end held');
  }
  const renderApiUrl = typeof values['render-api-url'] === 'string' ? values['render-api-url'] : DEFAULT_RENDER_BASE_URL;
  const render =
    serviceId && apiKey
      ? new RenderClient({
          apiKey,
          baseUrl: renderApiUrl,
          logger: { debug() {}, info() {}, warn: (obj, msg) => progress.warn(`render: ${msg ?? ''} ${JSON.stringify(obj)}`) },
        })
      : undefined;
  if (!render && !dryRun) progress.warn('no Render access (--render-service-id + RENDER_API_KEY): a rollback could not be performed, only reported');
  // Every report says what it was measured against: Render, an emulator (the rehearsal's local platform), or no
  // Render API at all. Only the URL's origin and path are kept: never credentials or a query.
  const measuredOn = render ? renderPlatformOf(renderApiUrl) : noRenderPlatform(baseUrl);
  progress.info(`measured against: ${measuredOn.label}`);

  let expectedInstances: number | undefined;
  let analysedDeploy: { id: string; createdAt: string; commit?: string } | undefined;
  let ownerId: string | undefined;
  if (render && serviceId) {
    // Before anything is recorded or changed: the URL judged must be the service acted on.
    let service: { ownerId?: string; serviceDetails?: { numInstances?: number; url?: string } };
    let customDomains: string[];
    try {
      service = (await render.getService(serviceId)) as typeof service;
      customDomains = (await render.listCustomDomains(serviceId)).map((domain) => domain.name);
    } catch (error) {
      throw new TargetError(`cannot read service ${serviceId} from the Render API to check --base-url: ${(error as Error).message}`);
    }
    const check = checkTargetBelongsToService(baseUrl, { id: serviceId, url: service.serviceDetails?.url, customDomains });
    if (!check.ok) throw new UsageError(check.reason);
    expectedInstances = service.serviceDetails?.numInstances;
    ownerId = service.ownerId;
    progress.info(`service ${serviceId} (${check.matched}): ${expectedInstances ?? 'unknown number of'} instance(s)`);
    // The deploy under analysis is the live one: only its processes' figures are judged.
    const live = (await render.listDeploys(serviceId, { limit: 10 }).catch(() => [])).find((deploy) => deploy.status === 'live');
    if (live?.id && live.createdAt) {
      analysedDeploy = { id: live.id, createdAt: live.createdAt, ...(live.commit?.id ? { commit: live.commit.id } : {}) };
      progress.info(`analysing deploy ${live.id} (created ${live.createdAt}, commit ${live.commit?.id ?? 'unknown'})`);
    } else {
      progress.warn(`no live deploy of ${serviceId} found: judging whatever the service reports`);
    }
  }

  // Second sources, with the Render API: the service's logs and Render's platform metrics since the analysed
  // deploy started (the endpoints have no deploy filter), read once per measurement.
  const ownSource = createHttpMetricSource({ baseUrl, policy, ...(expectedInstances ? { expectedInstances } : {}), ...(backfill ? { adminToken: backfill.adminToken } : {}) });
  const since = analysedDeploy?.createdAt ?? new Date().toISOString();
  const measured =
    render && serviceId
      ? withSecondSources(ownSource, {
          ...(ownerId ? { logs: createRenderLogSource({ render, ownerId, serviceId, since, maxPages: policy.logs.maxPagesPerMeasurement }) } : {}),
          sources: [createRenderPlatformSource({ render, serviceId, since })],
        })
      : ownSource;
  const source = probeKey
    ? withLearningProbe(
        measured,
        createLearningProbe({
          baseUrl,
          probeKey,
          scopeId: probeScopeId(stack, new Date().toISOString()),
          http: httpProbe,
          timeoutMs: policy.measurement.timeoutSeconds * 1000,
          patternTtlMs: policy.probe.patternTtlMinutes * 60_000,
          now: Date.now,
        }),
        policy.probe.everyMeasurements,
      )
    : measured;
  const rate = syntheticOn ? syntheticRate(policy, timeScale) : undefined;
  // Its patterns expire when the analysis ends (plus one poll), not a day later.
  const syntheticExpiresAt = new Date(Date.now() + ((policy.durationMinutes * 60 + policy.pollIntervalSeconds) / timeScale) * 1000).toISOString();
  const synthetic =
    rate && loadTestKey
      ? {
          traffic: createSyntheticTraffic({
            baseUrl,
            apiKey: loadTestKey,
            ratePerSecond: rate.ratePerSecond,
            expiresAt: syntheticExpiresAt,
            timeoutMs: policy.measurement.timeoutSeconds * 1000,
          }),
          basis: rate.basis,
          expiresAt: syntheticExpiresAt,
        }
      : undefined;
  const judgedSource = synthetic ? withSyntheticTraffic(source, synthetic.traffic) : source;
  if (render && serviceId && !ownerId) progress.warn(`service ${serviceId} has no ownerId in the Render API answer: its logs cannot be read (GET /logs needs one)`);

  const common: CanaryRunOptions = {
    policy,
    stack,
    baseUrl,
    serviceId,
    source: judgedSource,
    ...(backfill ? { backfill } : {}),
    ...(analysedDeploy ? { analysedDeploy } : {}),
    ...(memoryApiKey ? { memoryApiKey } : {}),
    ...(values.resume === true ? { resume: true } : {}),
    stateFile: dryRun ? new InMemoryState() : new StateFile(resolve(typeof values['state-file'] === 'string' ? values['state-file'] : `.canary-state-${stack}.json`)),
    stackDir: resolve(typeof values['stack-dir'] === 'string' ? values['stack-dir'] : '.'),
    reportDir: resolve(typeof values['report-dir'] === 'string' ? values['report-dir'] : join('reports', stack)),
    timeScale,
    dryRun,
    render,
    measuredOn,
    notifier: typeof webhook === 'string' && !dryRun ? createWebhookNotifier(webhook, (m) => progress.warn(m)) : silentNotifier,
    probe: httpProbe,
    progress,
    operator: process.env.CANARY_OPERATOR ?? process.env.GITHUB_ACTOR ?? process.env.USER ?? 'canary',
    // The runbook's human checkboxes, when the workflow recorded who confirmed them (never made up here).
    ...(process.env.ROLLOUT_CHECKLIST === 'recorded' ? { checklist: readChecklist(process.env) } : {}),
    now: Date.now,
    sleep: (ms: number) => new Promise<void>((done) => setTimeout(done, ms)),
  };
  if (mode === 'single') {
    return (
      await runCanary({
        ...common,
        ...(synthetic
          ? {
              synthetic: {
                traffic: synthetic.traffic,
                facts: { ratePerSecond: synthetic.traffic.ratePerSecond, basis: synthetic.basis, location: SYNTHETIC_LOCATION, patternsExpireAt: synthetic.expiresAt },
              },
            }
          : {}),
      })
    ).exitCode;
  }
  const { backfill: _notStepped, ...stepped } = common;
  const result = await runSteppedCanary({
    ...stepped,
    // Operator requests (canary pause|resume|promote|abort) beside the state file; a dry run takes none.
    ...(dryRun ? {} : { operatorFile: operatorFilePath((common.stateFile as StateFile).path) }),
    analyzeStep,
    applyTimeoutMs: applyTimeoutSeconds * 1000,
    exposure:
      adminToken && !dryRun
        ? createExposureAdmin({
            baseUrl,
            adminToken,
            probe: httpProbe,
            timeoutMs: policy.measurement.timeoutSeconds * 1000,
            pollMs: 250,
            now: Date.now,
            sleep: (ms) => new Promise<void>((done) => setTimeout(done, ms)),
          })
        : undefined,
  });
  return result.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (
      error instanceof PolicyError ||
      error instanceof TimelineError ||
      error instanceof UsageError ||
      error instanceof StateFileError ||
      error instanceof ThirtyDayUsageError ||
      error instanceof OperatorUsageError ||
      error instanceof OperatorFileError
    ) {
      process.stderr.write(`${(error as Error).message}\n${error instanceof UsageError || error instanceof ThirtyDayUsageError ? `${USAGE}\n` : ''}`);
      process.exitCode = EXIT_CODES.usage;
      return;
    }
    if (error instanceof TargetError) {
      process.stderr.write(`${error.message}\nnothing was changed\n`);
      process.exitCode = EXIT_CODES.aborted;
      return;
    }
    process.stderr.write(`canary failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = EXIT_CODES.aborted;
  },
);
