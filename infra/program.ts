/**
 * The stack program as a function, so tests run it under pulumi.runtime.setMocks with any config.
 * Edges: Pulumi config (read once, here) and the staging canary report file (read by the guard).
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { parseStackConfig, PROJECT, type RawStackConfig, type StackConfig, StackConfigError } from './config';
import { GuardError, guardNotices, guardViolations, judgedStagingReportLine, readStagingCanaryReport } from './guards';
import { DEFAULT_PROVIDERS, MemoryServiceStack, type RenderProviders } from './memory-service-stack';

export interface StackOutputs {
  serviceUrl: pulumi.Output<string>;
  serviceId: pulumi.Output<string>;
  dashboardUrl: pulumi.Output<string>;
  environment: string;
  flagEnabled: boolean;
  deployedCommit: string;
  /** The caller keys' names (plain) and name -> key (secret: `pulumi stack output --show-secrets callerKeySecrets`). */
  callerKeyNames: string[];
  callerKeySecrets: pulumi.Output<Record<string, string>> | undefined;
  /** CONTEXT7_EXPOSURE_PERCENT, and what the guards said out loud (an exposure override in use): kept in the update history. */
  exposureCeilingPercent: number;
  guardNotices: string[];
  component: MemoryServiceStack;
}

/** A snapshot of this stack's `memory-rollout:*` config, with which keys are secrets. */
export function readRawStackConfig(): RawStackConfig {
  const prefix = `${PROJECT}:`;
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  // isConfigSecret is exported at run time but marked internal in the typings. Without it the secret
  // guard could not tell a secret from plaintext, so refuse clearly rather than guess.
  const isSecret = (pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean }).isConfigSecret;
  if (typeof isSecret !== 'function') {
    throw new pulumi.RunError('This @pulumi/pulumi version has no runtime.isConfigSecret: the secret guard cannot run (use 3.270)');
  }
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    values[key] = value;
    if (isSecret(fullKey)) secretKeys.add(key);
  }
  return { stack: pulumi.getStack(), values, secretKeys };
}

export function loadStackConfig(raw: RawStackConfig = readRawStackConfig()): StackConfig {
  return parseStackConfig(raw);
}

function readTextIfExists(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/** Declares the stack. Throws RunError (a clean message, no stack trace) when config or guards refuse. */
export function defineStack(raw?: RawStackConfig, providers: RenderProviders = DEFAULT_PROVIDERS): StackOutputs {
  let config: StackConfig;
  let notices: string[];
  try {
    config = loadStackConfig(raw);
    const reportPath = isAbsolute(config.stagingCanaryReport)
      ? config.stagingCanaryReport
      : resolve(process.cwd(), config.stagingCanaryReport);
    const report = config.environment === 'production' && config.enableContext7Memory
      ? readStagingCanaryReport(reportPath, readTextIfExists)
      : undefined;
    const violations = guardViolations(config, report, process.env);
    if (violations.length > 0) throw new GuardError(config.stack, violations);
    notices = guardNotices(config, report);
    const judged = judgedStagingReportLine(config, report);
    if (judged) void pulumi.log.info(judged);
  } catch (err) {
    if (err instanceof StackConfigError || err instanceof GuardError) throw new pulumi.RunError(err.message);
    throw err;
  }

  for (const notice of notices) void pulumi.log.warn(notice);
  const stack = new MemoryServiceStack(config.serviceName, config, undefined, providers);
  return {
    serviceUrl: stack.serviceUrl,
    serviceId: stack.serviceId,
    dashboardUrl: stack.dashboardUrl,
    environment: config.environment,
    flagEnabled: config.enableContext7Memory,
    deployedCommit: config.pinnedCommit ?? `${config.branch} (head)`,
    callerKeyNames: config.memoryAuth === 'keys' ? config.callerKeys.map((key) => key.name) : [],
    callerKeySecrets: stack.callerKeys ? pulumi.secret(stack.callerKeys.secrets) : undefined,
    exposureCeilingPercent: config.context7ExposurePercent,
    guardNotices: notices,
    component: stack,
  };
}
