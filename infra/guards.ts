/**
 * Preview-time guards: rules a stack must satisfy before any resource is declared, so `pulumi preview`
 * refuses with a clear message instead of `pulumi up` half-applying. Pure: the staging canary report is
 * passed in already read (see readStagingCanaryReport).
 */
import { DEFAULT_RENDER_BASE_URL } from '../render/client';
import { renderPlatformOf, type RenderPlatform } from '../render/platform';
import { CREDENTIAL_SOURCES } from './providers/render-access';
import { canaryReportSummarySchema, describeReportKind, judgedExposurePercent, stagingRunAuthorises, type CanaryReportSummary } from '../canary/report-summary';
import { ADMIN_TOKEN_MIN_LENGTH, LOAD_TEST_TOKEN_MIN_LENGTH } from '../service/config';
import { ENCRYPTED_VALUE, PROJECT, type StackConfig } from './config';

export const MIN_PRODUCTION_INSTANCES = 2;

/** The staging canary report as the guard sees it: a summary, or why there is none. */
export type StagingReportLookup =
  | { found: true; path: string; summary: CanaryReportSummary }
  | { found: false; path: string; reason: string };

export class GuardError extends Error {
  constructor(
    readonly stackName: string,
    readonly violations: readonly string[],
  ) {
    super(`Stack "${stackName}" was refused by its guards:\n${violations.map((v) => `  - ${v}`).join('\n')}`);
    this.name = 'GuardError';
  }
}

const HOW_TO_GET_A_STAGING_REPORT =
  'run the canary on staging first: `pulumi up -s staging` with the flag on, then ' +
  '`npm run canary -- run --stack staging --base-url "$(pulumi stack output serviceUrl -s staging)" ' +
  '--render-service-id "$(pulumi stack output serviceId -s staging)" --report-dir reports/staging`; ' +
  'when it promotes, it writes the report and pins its commit (and the exposure percentage it reached) in Pulumi.production.yaml';

/** Every rule the config breaks, as sentences that say how to fix it. Empty when the stack may proceed. */
export function guardViolations(
  config: StackConfig,
  stagingReport: StagingReportLookup | undefined,
  /** where RENDER_API_URL is read from (the providers' fallback after memory-rollout:renderApiUrl) */
  env: Readonly<Record<string, string | undefined>> = {},
): string[] {
  const violations: string[] = [];
  const setCmd = (key: string, value: string, secret = false) =>
    `pulumi config set ${secret ? '--secret ' : ''}${PROJECT}:${key} ${value} -s ${config.stack}`;

  for (const key of config.plaintextSecretKeys) {
    violations.push(
      `${PROJECT}:${key} is stored in plaintext in the stack file; it must be a secret. ` +
        `Replace it with: ${setCmd(key, '<value>', true)}` +
        (key === 'renderApiKey' ? ' (or drop it and export RENDER_API_KEY)' : ''),
    );
  }
  if (config.adminToken === undefined) {
    violations.push(`${PROJECT}:adminToken is not set (the admin endpoints need it): ${setCmd('adminToken', '<token>', true)}`);
  } else if (config.adminToken.reveal() !== ENCRYPTED_VALUE && config.adminToken.reveal().length < ADMIN_TOKEN_MIN_LENGTH) {
    // The service refuses to start with a shorter token; refuse here, before a deploy that could never go live.
    violations.push(
      `${PROJECT}:adminToken is shorter than ${ADMIN_TOKEN_MIN_LENGTH} characters: ` +
        setCmd('adminToken', '"$(openssl rand -hex 32)"', true),
    );
  }
  if (config.environment === 'production' && config.memoryAuth === 'open') {
    // The escape hatch opens every scope's memory to anyone who can compute a scope id.
    violations.push(
      `${PROJECT}:memoryAuth is open, which lets anyone read and write any scope's memory; production requires caller keys: ` +
        `pulumi config rm ${PROJECT}:memoryAuth -s ${config.stack}`,
    );
  }
  const loadTestToken = config.loadTestToken?.reveal();
  if (loadTestToken !== undefined && loadTestToken !== ENCRYPTED_VALUE && loadTestToken.length < LOAD_TEST_TOKEN_MIN_LENGTH) {
    // The service refuses a shorter LOAD_TEST_TOKEN at start.
    violations.push(
      `${PROJECT}:loadTestToken is shorter than ${LOAD_TEST_TOKEN_MIN_LENGTH} characters: ` +
        setCmd('loadTestToken', '"$(openssl rand -hex 32)"', true),
    );
  }
  if (config.enableContext7Memory && config.context7ApiKey === undefined) {
    violations.push(
      `${PROJECT}:enableContext7Memory is true but ${PROJECT}:context7ApiKey is not set: ${setCmd('context7ApiKey', '<key>', true)}`,
    );
  }

  if (config.postgresHighAvailability && !/^(pro|accelerated)_/.test(config.postgresPlan)) {
    violations.push(
      `${PROJECT}:postgresHighAvailability needs a Pro or Accelerated Postgres plan (${PROJECT}:postgresPlan is ` +
        `${config.postgresPlan}): ${setCmd('postgresPlan', 'pro_4gb')}`,
    );
  }

  if (config.environment === 'production') {
    if (config.instances < MIN_PRODUCTION_INSTANCES) {
      violations.push(
        `production needs at least ${MIN_PRODUCTION_INSTANCES} instances so a deploy or a crash never takes it down ` +
          `(${PROJECT}:instances is ${config.instances}): ${setCmd('instances', String(MIN_PRODUCTION_INSTANCES))}`,
      );
    }
    if (config.rateLimitMax === 0) {
      violations.push(
        `production keeps its rate limit: ${PROJECT}:rateLimitMax is 0, which turns it off for every client. ` +
          `Raise it (${setCmd('rateLimitMax', '<requests per window>')}), or let load tests through with the load-test ` +
          `token instead (${setCmd('loadTestToken', '"$(openssl rand -hex 32)"', true)})`,
      );
    }
    // An adopted production service with the flag off may go without a pinned commit: the provider then redeploys the
    // commit it already runs (auto-deploy is off), so adopting it changes settings, never code. That is the first-rollout
    // order's second step (infra/README.md): the staging canary's promotion sets pinnedCommit later.
    const adoptedFlagOff = config.existingServiceId !== undefined && !config.enableContext7Memory;
    if (config.pinnedCommit === undefined && !adoptedFlagOff) {
      violations.push(
        `production deploys only a pinned commit, and ${PROJECT}:pinnedCommit is not set: ${setCmd('pinnedCommit', '<sha>')} ` +
          `(the staging canary sets it when it promotes). To manage a production service that already exists, adopt it with ` +
          `the flag off first: ${setCmd('existingServiceId', '<srv-id>')} (npm run infra:adopt -- --stack ${config.stack} prints it)`,
      );
    }
    if (config.enableContext7Memory && config.pinnedCommit !== undefined) {
      const refusal = canaryRefusal(config.pinnedCommit, stagingReport) ?? platformRefusal(config, stagingReport, env);
      if (refusal) violations.push(refusal);
    }
  }
  const exposure = exposureGuard(config, stagingReport);
  if (exposure.kind === 'refused') violations.push(exposure.refusal);
  return violations;
}

/**
 * What the exposure guard concluded:
 * - `unbounded`: no canary bound applies (staging, where exposure is judged; or the flag off, which exposes nothing;
 *   or no staging report authorising the commit, which the flag guard refuses by itself);
 * - `within`: the ceiling is at or below what the staging canary judged (lowering is always allowed);
 * - `refused`: the ceiling is above it;
 * - `overridden`: above it, but allowed by the override keys; reported loudly on every preview.
 */
export type ExposureGuardResult =
  | { kind: 'unbounded'; ceiling: number }
  | { kind: 'within'; ceiling: number; judged: number }
  | { kind: 'refused'; ceiling: number; judged: number; refusal: string }
  | { kind: 'overridden'; ceiling: number; judged: number; notice: string };

/**
 * Production's exposure ceiling (CONTEXT7_EXPOSURE_PERCENT) may not exceed the percentage the staging canary's
 * report says it reached and judged for the pinned commit, so `pulumi up` never silently raises exposure past what
 * a canary judged. Staging is not bounded: its ceiling is the stepped canary's target, which the canary steps the
 * runtime percentage up to under judgement.
 */
export function exposureGuard(config: StackConfig, stagingReport: StagingReportLookup | undefined): ExposureGuardResult {
  const ceiling = config.context7ExposurePercent;
  if (config.environment !== 'production' || !config.enableContext7Memory || config.pinnedCommit === undefined) return { kind: 'unbounded', ceiling };
  if (stagingReport === undefined || !stagingReport.found || !stagingRunAuthorises(stagingReport.summary, config.pinnedCommit)) {
    return { kind: 'unbounded', ceiling };
  }
  const judged = judgedExposurePercent(stagingReport.summary);
  if (ceiling <= judged) return { kind: 'within', ceiling, judged };

  const ceilingKey = `${PROJECT}:context7ExposurePercent`;
  const what =
    `${ceilingKey} is ${ceiling} in ${config.stack}, above the ${judged}% the staging canary reached and judged for commit ` +
    `${config.pinnedCommit} (${stagingReport.path})`;
  const override = config.context7ExposureOverridePercent;
  if (override !== undefined && override >= ceiling) {
    return {
      kind: 'overridden',
      ceiling,
      judged,
      notice:
        `EXPOSURE OVERRIDE: ${what}. Allowed only by ${PROJECT}:context7ExposureOverridePercent ${override} ` +
        `(reason: "${config.context7ExposureOverrideReason}"). Remove the override once a stepped canary on staging has judged ${ceiling}%`,
    };
  }
  const overrideNote =
    override === undefined
      ? ''
      : ` (the override in this stack, ${PROJECT}:context7ExposureOverridePercent ${override}, allows only up to ${override}%)`;
  return {
    kind: 'refused',
    ceiling,
    judged,
    refusal:
      `${what}: pulumi up would let exposure rise past what a canary judged${overrideNote}. Lower it ` +
      `(pulumi config set ${ceilingKey} ${judged} -s ${config.stack}); or have ${ceiling}% judged first with the stepped canary ` +
      `(staging's ${ceilingKey} and the policy's last exposure step at least ${ceiling}): ${HOW_TO_GET_A_STAGING_REPORT.replace('canary -- run', 'canary -- stepped')}, with CANARY_ADMIN_TOKEN set to staging's adminToken. ` +
      `Only if that cannot wait, an audited override: pulumi config set ` +
      `${PROJECT}:context7ExposureOverridePercent ${ceiling} -s ${config.stack} and pulumi config set ` +
      `${PROJECT}:context7ExposureOverrideReason "<why, and who approved it>" -s ${config.stack} (every preview reports it)`,
  };
}

/**
 * What a passing stack must still say out loud: an exposure override in use, or one left behind that does nothing.
 * The program logs them as warnings and exports them (so they stay in the update history); infra:check prints them.
 */
export function guardNotices(config: StackConfig, stagingReport: StagingReportLookup | undefined): string[] {
  const exposure = exposureGuard(config, stagingReport);
  if (exposure.kind === 'overridden') return [exposure.notice];
  if (config.context7ExposureOverridePercent !== undefined && exposure.kind !== 'refused') {
    return [
      `${PROJECT}:context7ExposureOverridePercent ${config.context7ExposureOverridePercent} is set in ${config.stack} but allows ` +
        `nothing the canary's judgement does not (${PROJECT}:context7ExposurePercent is ${exposure.ceiling}): remove it ` +
        `(pulumi config rm ${PROJECT}:context7ExposureOverridePercent -s ${config.stack} and pulumi config rm ` +
        `${PROJECT}:context7ExposureOverrideReason -s ${config.stack})`,
    ];
  }
  return [];
}

function canaryRefusal(commit: string, report: StagingReportLookup | undefined): string | undefined {
  const prefix = `${PROJECT}:enableContext7Memory can only be true in production for a commit whose staging canary passed`;
  if (report === undefined || !report.found) {
    const why = report ? `no usable staging canary report at ${report.path}: ${report.reason}` : 'no staging canary report';
    return `${prefix}; ${why}. To get one, ${HOW_TO_GET_A_STAGING_REPORT}`;
  }
  const { summary, path } = report;
  if (stagingRunAuthorises(summary, commit)) return undefined;
  const facts: string[] = [];
  if (summary.stack !== 'staging') facts.push(`it is a ${summary.stack} report`);
  if (summary.outcome !== 'promoted') facts.push(`its outcome is "${summary.outcome}", not "promoted"`);
  if (summary.deployId !== commit) facts.push(`it judged commit ${summary.deployId}, but production is pinned to ${commit}`);
  return `${prefix}; the report at ${path} does not authorise commit ${commit} (${facts.join('; ')}). To get one, ${HOW_TO_GET_A_STAGING_REPORT}`;
}

/**
 * The Render API this stack's providers will call, picked as they pick it (infra/providers/render-access.ts):
 * memory-rollout:renderApiUrl, else RENDER_API_URL, else Render's own API.
 */
export function stackRenderTarget(config: StackConfig, env: Readonly<Record<string, string | undefined>>): RenderPlatform {
  const fromEnv = env[CREDENTIAL_SOURCES.baseUrl.envVar];
  return renderPlatformOf(config.renderApiUrl ?? (fromEnv ? fromEnv : DEFAULT_RENDER_BASE_URL));
}

/**
 * A staging report measured on an emulator (its deploys, rollbacks and Context7 are stand-ins) never authorises
 * turning the flag on for a production that runs on Render. A report that does not say (written before
 * `measuredOnKind` was recorded) or one measured with no Render API access is judged as before.
 */
function platformRefusal(
  config: StackConfig,
  report: StagingReportLookup | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (report === undefined || !report.found || report.summary.measuredOnKind !== 'emulator') return undefined;
  const target = stackRenderTarget(config, env);
  if (target.kind !== 'render') return undefined;
  return (
    `${PROJECT}:enableContext7Memory can only be true in production on ${target.label} for a commit whose staging canary ` +
    `ran against Render; the report at ${report.path} was measured on an emulator (a rehearsal), so its deploy, rollback ` +
    `and error figures are not Render's. Run the staging canary against the real staging service: ${HOW_TO_GET_A_STAGING_REPORT}`
  );
}

/**
 * Reads the staging canary's report.json. The canary embeds the summary under `summary`; a bare summary
 * file is accepted too. `readText` returns undefined when the file does not exist.
 */
export function readStagingCanaryReport(path: string, readText: (path: string) => string | undefined): StagingReportLookup {
  let text: string | undefined;
  try {
    text = readText(path);
  } catch (err) {
    return { found: false, path, reason: `it could not be read (${err instanceof Error ? err.message : String(err)})` };
  }
  if (text === undefined) return { found: false, path, reason: 'the file does not exist' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { found: false, path, reason: 'it is not valid JSON' };
  }
  const candidate = json && typeof json === 'object' && 'summary' in json ? (json as { summary: unknown }).summary : json;
  const parsed = canaryReportSummarySchema.safeParse(candidate);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return {
      found: false,
      path,
      reason: `it has no valid canary summary (${first ? `${first.path.join('.') || 'summary'}: ${first.message}` : 'invalid'})`,
    };
  }
  return { found: true, path, summary: parsed.data };
}

/**
 * What the production guard judged, for the preview's log: which kind of staging report (stepped or whole-flag)
 * authorised the pinned commit. Undefined where no report is judged (staging, or the flag off).
 */
export function judgedStagingReportLine(config: StackConfig, stagingReport: StagingReportLookup | undefined): string | undefined {
  if (config.environment !== 'production' || !config.enableContext7Memory || stagingReport === undefined) return undefined;
  if (!stagingReport.found) return `production guard: no usable staging report at ${stagingReport.path}`;
  const { summary, path } = stagingReport;
  return `production guard judged ${describeReportKind(summary)} at ${path}: ${summary.stack} ${summary.outcome} for commit ${summary.deployId}`;
}
