/**
 * `npm run infra:check`: the guards straight from the stack files, including the files as the canary
 * edits them (its promotion and its rollback latch, through its own stack-file writer).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, setStackConfig } from '../../canary/actions/stack-file';
import { checkStack, rawConfigFromStackFile } from '../../infra/check';

const REPO = resolve(__dirname, '..', '..');

/** `tsx infra/check.ts …` (npm run infra:check) as one process: node with tsx's loader, not the tsx CLI, which starts a second node. */
const checkCli = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', join(REPO, 'infra', 'check.ts'), ...args], { cwd: REPO, timeout: 60_000 });
const COMMIT = '89abcdef0123456789abcdef0123456789abcdef';
const SECURE = (stack: string) =>
  `  memory-rollout:context7ApiKey:\n    secure: v1:c2FsdA==:${stack}key\n  memory-rollout:adminToken:\n    secure: v1:c2FsdA==:${stack}tok\n`;

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'infra-check-'));
  for (const stack of ['staging', 'production']) {
    copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(dir, `Pulumi.${stack}.yaml`));
  }
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** What `pulumi config set --secret` appends to a stack file. */
function addSecrets(stack: string): void {
  const file = join(dir, `Pulumi.${stack}.yaml`);
  writeFileSync(file, readFileSync(file, 'utf8') + SECURE(stack));
}

function writeStagingReport(outcome: string, deployId = COMMIT): void {
  mkdirSync(join(dir, 'reports', 'staging'), { recursive: true });
  const summary = { schemaVersion: 1, stack: 'staging', deployId, serviceId: 'srv-1', outcome, startedAt: '2026-11-23T10:00:00Z', finishedAt: '2026-11-23T11:00:00Z' };
  writeFileSync(join(dir, 'reports', 'staging', 'report.json'), JSON.stringify({ summary, polls: [] }));
}

describe('rawConfigFromStackFile', () => {
  it('treats encrypted values as secrets that are set, without needing their plaintext', () => {
    const raw = rawConfigFromStackFile('staging', `config:\n  memory-rollout:instances: 2\n  aws:region: x\n${SECURE('staging')}`);
    expect(raw.values).toEqual({ instances: '2', context7ApiKey: '[encrypted]', adminToken: '[encrypted]' });
    expect([...raw.secretKeys].sort()).toEqual(['adminToken', 'context7ApiKey']);
  });
});

describe('checkStack', () => {
  it('passes staging once its secrets are set, and says what is missing before', () => {
    const before = checkStack('staging', dir);
    expect(before.ok).toBe(false);
    expect(before.lines.join('\n')).toMatch(/adminToken is not set/);
    addSecrets('staging');
    const after = checkStack('staging', dir);
    expect(after).toMatchObject({ ok: true });
    expect(after.lines.join('\n')).toMatch(/memory-rollout-staging: starter x1 in oregon, following main/);
  });

  it('refuses production until the staging canary promotes a commit, then passes', () => {
    addSecrets('production');
    expect(checkStack('production', dir).lines.join('\n')).toMatch(/pinnedCommit is not set/);
    // The staging canary's promotion, written by its own stack-file writer.
    setStackConfig(join(dir, 'Pulumi.production.yaml'), { [PINNED_COMMIT_KEY]: COMMIT, [FLAG_KEY]: true });
    const noReport = checkStack('production', dir);
    expect(noReport.ok).toBe(false);
    expect(noReport.lines.join('\n')).toMatch(/the file does not exist.*npm run canary -- run --stack staging/s);
    writeStagingReport('promoted');
    const promoted = checkStack('production', dir);
    expect(promoted).toMatchObject({ ok: true });
    expect(promoted.lines.join('\n')).toMatch(/standard x2 in oregon, pinned to 89abcdef.*\n.*ENABLE_CONTEXT7_MEMORY=true/);
  });

  it('refuses a production flag the staging canary did not pass, and accepts the rollback latch', () => {
    addSecrets('production');
    setStackConfig(join(dir, 'Pulumi.production.yaml'), { [PINNED_COMMIT_KEY]: COMMIT, [FLAG_KEY]: true });
    writeStagingReport('rolled_back');
    expect(checkStack('production', dir).lines.join('\n')).toMatch(/outcome is "rolled_back"/);
    // The production canary's rollback latch: the flag off needs no staging report.
    setStackConfig(join(dir, 'Pulumi.production.yaml'), { [FLAG_KEY]: false });
    expect(checkStack('production', dir)).toMatchObject({ ok: true });
  });

  it('refuses a credential written in plaintext', () => {
    const file = join(dir, 'Pulumi.staging.yaml');
    writeFileSync(file, `${readFileSync(file, 'utf8')}  memory-rollout:context7ApiKey: c7-plaintext\n  memory-rollout:adminToken:\n    secure: v1:x\n`);
    const result = checkStack('staging', dir);
    expect(result.ok).toBe(false);
    expect(result.lines.join('\n')).toMatch(/context7ApiKey is stored in plaintext/);
    expect(result.lines.join('\n')).not.toContain('c7-plaintext');
  });

  it('runs as a CLI with exit codes 0, 1 and 64', async () => {
    const run = (args: string[]) =>
      checkCli(args)
        .then(() => 0)
        .catch((err: { code?: number }) => err.code ?? -1);
    addSecrets('staging');
    expect(await run(['--stack', 'staging', '--dir', dir])).toBe(0);
    expect(await run(['--stack', 'production', '--dir', dir])).toBe(1);
    expect(await run([])).toBe(64);
  });

  it('a stack with no stack file (a typo) is a usage error, exit 64, naming the stacks that exist', async () => {
    const result = await checkCli(['--stack', 'prod', '--dir', dir]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? '' }),
    );
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('no stack "prod"');
    expect(result.stderr).toContain('the stacks are production, staging');
    expect(result.stderr).not.toContain('pulumi stack init');
  });
});
