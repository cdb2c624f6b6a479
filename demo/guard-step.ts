/**
 * The infra guard (infra/guards.ts) as `pulumi preview` runs it, against the rehearsal's stack file copy and the
 * staging canary report it wrote. Reads files only; the rules themselves are the guard's.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { CONFIG_NAMESPACE } from '../canary/actions/stack-file';
import { rawConfigFromStackFile } from '../infra/check';
import { parseStackConfig, SECRET_KEYS, StackConfigError } from '../infra/config';
import { guardViolations, judgedStagingReportLine, readStagingCanaryReport } from '../infra/guards';

export interface GuardOutcome {
  ok: boolean;
  /** the guard's own sentences: what it refuses and how to fix it */
  violations: string[];
  /** which kind of staging report the production guard judged (stepped or whole-flag), when it judged one */
  judged?: string;
}

/**
 * Runs config validation and the preview guards for `stack` from `stackFile`. The staging report path is given
 * explicitly: the rehearsal keeps its reports beside, not under, its stack copies.
 */
export function runInfraGuard(
  stack: string,
  stackFile: string,
  stagingReportPath: string,
  /** the environment a real preview would see; RENDER_API_URL says which Render API production's providers call */
  env: Readonly<Record<string, string | undefined>>,
): GuardOutcome {
  try {
    const config = parseStackConfig(rawConfigFromStackFile(stack, readFileSync(stackFile, 'utf8')));
    const report = readStagingCanaryReport(stagingReportPath, (p) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined));
    const violations = guardViolations(config, report, env);
    const judged = judgedStagingReportLine(config, report);
    return { ok: violations.length === 0, violations, ...(judged ? { judged } : {}) };
  } catch (error) {
    if (error instanceof StackConfigError) return { ok: false, violations: [...error.problems] };
    throw error;
  }
}

/**
 * The stack file as an operator's checkout has it: the secrets set with `pulumi config set --secret`, i.e. present
 * as ciphertext. The repo's copy leaves them out, and the guard would rightly refuse a stack without them.
 */
export function markSecretsSet(stackFile: string): void {
  const doc = parseDocument(readFileSync(stackFile, 'utf8'));
  for (const key of SECRET_KEYS) {
    const fullKey = `${CONFIG_NAMESPACE}:${key}`;
    if (doc.getIn(['config', fullKey]) === undefined) doc.setIn(['config', fullKey], doc.createNode({ secure: 'v1:rehearsal-ciphertext' }));
  }
  writeFileSync(stackFile, doc.toString());
}

/** A copy of the staging report that judged another commit: what the guard must refuse. */
export function tamperedStagingReport(reportPath: string, copyPath: string): void {
  const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { summary: { deployId: string } };
  report.summary.deployId = report.summary.deployId.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  writeFileSync(copyPath, `${JSON.stringify(report, null, 1)}\n`);
}
