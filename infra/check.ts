/**
 * `npm run infra:check -- --stack production [--dir .]`: runs the stack's config validation and
 * preview guards straight from Pulumi.<stack>.yaml, without the Pulumi CLI or any credentials
 * (encrypted `secure:` values count as secrets that are set). Exit 0 = `pulumi up` would pass the
 * guards, 1 = refused (each reason printed), 64 = usage error (including a stack with no stack file: a typo,
 * not a refusal).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { ENCRYPTED_VALUE, parseStackConfig, PROJECT, type RawStackConfig, type StackConfig, StackConfigError } from './config';
import { exposureGuard, GuardError, guardNotices, guardViolations, judgedStagingReportLine, readStagingCanaryReport } from './guards';
import { parseStackArgs } from './stack-args';

export interface CheckResult {
  ok: boolean;
  lines: string[];
}

/** Reads a stack file into the same raw form the program gets from the engine. */
export function rawConfigFromStackFile(stack: string, text: string): RawStackConfig {
  const doc = (parse(text) ?? {}) as { config?: Record<string, unknown> };
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  for (const [fullKey, value] of Object.entries(doc.config ?? {})) {
    if (!fullKey.startsWith(`${PROJECT}:`)) continue;
    const key = fullKey.slice(PROJECT.length + 1);
    if (value && typeof value === 'object' && 'secure' in value) {
      // Encrypted by `pulumi config set --secret`: present and secret; its value is not needed here.
      values[key] = ENCRYPTED_VALUE;
      secretKeys.add(key);
    } else if (value !== null && value !== undefined) {
      values[key] = String(value);
    }
  }
  return { stack, values, secretKeys };
}

/** The stacks that have a Pulumi.<stack>.yaml in dir, sorted. */
export function existingStacks(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((name) => /^Pulumi\.([^.]+)\.ya?ml$/.exec(name)?.[1])
    .filter((stack): stack is string => stack !== undefined)
    .sort();
}

export function checkStack(stack: string, dir: string): CheckResult {
  const file = join(dir, `Pulumi.${stack}.yaml`);
  if (!existsSync(file)) return { ok: false, lines: [`${file} does not exist (pulumi stack init ${stack})`] };
  try {
    const config = parseStackConfig(rawConfigFromStackFile(stack, readFileSync(file, 'utf8')));
    const reportPath = isAbsolute(config.stagingCanaryReport) ? config.stagingCanaryReport : resolve(dir, config.stagingCanaryReport);
    const report = config.environment === 'production' && config.enableContext7Memory
      ? readStagingCanaryReport(reportPath, (p) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined))
      : undefined;
    const violations = guardViolations(config, report, process.env);
    if (violations.length > 0) return { ok: false, lines: [`Stack "${stack}" would be refused:`, ...violations.map((v) => `  - ${v}`)] };
    const exposure = exposureGuard(config, report);
    const judged = exposure.kind === 'within' || exposure.kind === 'overridden' ? ` (the staging canary judged ${exposure.judged})` : '';
    return {
      ok: true,
      lines: [
        `Stack "${stack}" passes its guards (${config.environment}):`,
        `  service ${config.serviceName}: ${config.plan} x${config.instances} in ${config.region}, ` +
          `${config.pinnedCommit ? `pinned to ${config.pinnedCommit}` : `following ${config.branch}`}`,
        `  ENABLE_CONTEXT7_MEMORY=${config.enableContext7Memory} CONTEXT7_BASE_URL=${config.context7BaseUrl}`,
        `  CONTEXT7_EXPOSURE_PERCENT=${config.context7ExposurePercent}${judged}`,
        `  Postgres ${config.postgresPlan} (v${config.postgresVersion}), Key Value ${config.keyValuePlan}`,
        ...[judgedStagingReportLine(config, report)].filter((line): line is string => line !== undefined).map((line) => `  ${line}`),
        ...adoptionLines(config),
        ...guardNotices(config, report).map((notice) => `WARNING: ${notice}`),
      ],
    };
  } catch (err) {
    if (err instanceof StackConfigError || err instanceof GuardError) return { ok: false, lines: [err.message] };
    throw err;
  }
}

/** What the stack adopts instead of creating (checked against Render by `pulumi up` and `npm run infra:adopt`, not here). */
function adoptionLines(config: StackConfig): string[] {
  const adopted = [
    config.existingServiceId && `web service ${config.existingServiceId}`,
    config.existingPostgresId && `Postgres ${config.existingPostgresId}`,
    config.existingKeyValueId && `Key Value ${config.existingKeyValueId}`,
  ].filter(Boolean);
  return adopted.length > 0 ? [`  adopts (never deletes or replaces): ${adopted.join(', ')}`] : [];
}

function main(argv: string[]): number {
  const args = parseStackArgs(argv, 'usage: npm run infra:check -- --stack <staging|production> [--dir <project dir>]');
  if (!args.ok) {
    process.stderr.write(`${args.message}\n`);
    return 64;
  }
  const { stack, dir } = args;
  if (!existsSync(join(dir, `Pulumi.${stack}.yaml`))) {
    const stacks = existingStacks(dir);
    process.stderr.write(
      `no stack "${stack}" in ${dir}: ` +
        (stacks.length > 0 ? `the stacks are ${stacks.join(', ')} (Pulumi.<stack>.yaml)` : 'it has no Pulumi.<stack>.yaml') +
        `\nusage: npm run infra:check -- --stack <${stacks.length > 0 ? stacks.join('|') : 'stack'}> [--dir <project dir>]\n`,
    );
    return 64;
  }
  const result = checkStack(stack, dir);
  (result.ok ? process.stdout : process.stderr).write(`${result.lines.join('\n')}\n`);
  return result.ok ? 0 : 1;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
