/**
 * npm run canary -- run --base-url URL --stack staging|production [--policy FILE] [--render-api-url URL]
 *                       [--render-service-id ID] [--state-file FILE] [--report-dir DIR] [--time-scale N]
 *                       [--dry-run] [--webhook URL] [--stack-dir DIR]
 * npm run canary -- stepped (run's options, without --backfill) [--apply-timeout-seconds N]
 *   the stepped canary (canary/exposure/): the policy's exposure steps, kill switch then durable rollback
 * npm run canary -- replay --timeline FILE [--policy FILE]
 * npm run canary -- evaluate --profile thirty-day --base-url URL [--days N] [--until YYYY-MM-DD] [--report-dir DIR]
 *                            [--policy FILE] [--review ID --signed-off-at ISO]
 *   (exit 0 pass, 1 fail, 2 inconclusive, 3 history unreadable, 64 usage; see canary/thirty-day/)
 * npm run canary -- review-due [--reports-dir DIR] [--today YYYY-MM-DD] [--output FILE]
 *
 * Exit codes: 0 promoted/signed off, 1 rolled back and verified, 2 held, 3 aborted (metrics unreadable),
 * 4 rollback not verified, 5 aborted because the local store is failing (flag untouched, alerted),
 * 6 a dry run that would roll back (nothing was done), 64 bad arguments, policy or state file (one bound to another
 * service or deploy, or incomplete). replay exits with its decision's code (0, 1, 2, 3, 5; 2 when a stepped report
 * cannot be replayed to a verdict). RENDER_API_KEY comes from the environment only.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RenderClient } from '../render/client';
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
import { createLearningProbe, probeScopeId, withLearningProbe } from './probe/learning-probe';
import { checkTargetBelongsToService } from './target';
import { loadTimeline, TimelineError } from './timeline';
import { evaluateCommand, reviewDueCommand, ThirtyDayUsageError } from './thirty-day/commands';

const DEFAULT_POLICY = join(__dirname, 'policy.yaml');

class UsageError extends Error {}
/** The target could not be checked: nothing was done (exit 3, like any other abort). */
class TargetError extends Error {}

const USAGE = `usage:
  npm run canary -- run --base-url URL --stack staging|production [--policy FILE] [--render-api-url URL]
                        [--render-service-id ID] [--state-file FILE] [--report-dir DIR] [--time-scale N]
                        [--dry-run] [--webhook URL] [--stack-dir DIR] [--backfill start|follow] [--resume]
  npm run canary -- stepped (the same options as run, without --backfill) [--apply-timeout-seconds N]
  npm run canary -- replay --timeline FILE [--policy FILE]
  npm run canary -- evaluate --profile thirty-day --base-url URL [--days N] [--until YYYY-MM-DD] [--report-dir DIR]
                             [--policy FILE] [--review ID --signed-off-at ISO]
  npm run canary -- review-due [--reports-dir DIR] [--today YYYY-MM-DD] [--output FILE]
RENDER_API_KEY, CANARY_MEMORY_API_KEY (a caller key of the service, for the rollback verification's snippets
read), CANARY_PROBE_KEY (the learning probe's caller key, restricted to location canaryprobe-canary) and, with
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

async function run(args: string[], mode: 'single' | 'stepped'): Promise<number> {
  const command = mode === 'stepped' ? 'stepped' : 'run';
  const values = parse(args, {
    ...(mode === 'stepped' ? { 'apply-timeout-seconds': { type: 'string' as const } } : {}),
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

  const progress = createTerminalProgress();
  // The caller key for the verification read: from the environment only, like the other credentials.
  const memoryApiKey = process.env.CANARY_MEMORY_API_KEY?.trim() || undefined;
  if (!memoryApiKey) progress.warn('CANARY_MEMORY_API_KEY is not set: a rollback verification\'s snippets read will get 401 and fail');
  // The learning probe's key: a caller key restricted to the probe location, from the environment only. An admin
  // token is never a probe key: the probe must prove what a caller can do, with a credential worth little if leaked.
  const probeKey = process.env.CANARY_PROBE_KEY?.trim() || undefined;
  if (probeKey && adminToken && probeKey === adminToken.trim()) throw new UsageError('CANARY_PROBE_KEY must be a dedicated probe caller key, never the admin token');
  if (!probeKey) progress.warn(`CANARY_PROBE_KEY is not set: the learning probe (Step 5, "Test Post-Call Learning") will not run`);
  const render =
    serviceId && apiKey
      ? new RenderClient({
          apiKey,
          ...(typeof values['render-api-url'] === 'string' ? { baseUrl: values['render-api-url'] } : {}),
          logger: { debug() {}, info() {}, warn: (obj, msg) => progress.warn(`render: ${msg ?? ''} ${JSON.stringify(obj)}`) },
        })
      : undefined;
  if (!render && !dryRun) progress.warn('no Render access (--render-service-id + RENDER_API_KEY): a rollback could not be performed, only reported');

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
  if (render && serviceId && !ownerId) progress.warn(`service ${serviceId} has no ownerId in the Render API answer: its logs cannot be read (GET /logs needs one)`);

  const common: CanaryRunOptions = {
    policy,
    stack,
    baseUrl,
    serviceId,
    source,
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
    notifier: typeof webhook === 'string' && !dryRun ? createWebhookNotifier(webhook, (m) => progress.warn(m)) : silentNotifier,
    probe: httpProbe,
    progress,
    operator: process.env.CANARY_OPERATOR ?? process.env.GITHUB_ACTOR ?? process.env.USER ?? 'canary',
    now: Date.now,
    sleep: (ms: number) => new Promise<void>((done) => setTimeout(done, ms)),
  };
  if (mode === 'single') return (await runCanary(common)).exitCode;
  const { backfill: _notStepped, ...stepped } = common;
  const result = await runSteppedCanary({
    ...stepped,
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
      error instanceof ThirtyDayUsageError
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
