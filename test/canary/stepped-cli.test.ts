import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compiledArgs } from '../../canary/compiled';

const REPO = join(__dirname, '../..');
const cli = (env: Record<string, string>, ...args: string[]) =>
  spawnSync(process.execPath, [...compiledArgs('canary/main.ts'), 'stepped', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, RENDER_API_KEY: '', CANARY_ADMIN_TOKEN: '', ...env },
  });
const target = ['--stack', 'staging', '--base-url', 'http://127.0.0.1:1'];

describe('canary stepped CLI', () => {
  it('exits 64 before doing anything without the admin token, with --backfill, or with a bad apply timeout', () => {
    const noToken = cli({}, ...target);
    expect(noToken.status).toBe(64);
    expect(noToken.stderr).toContain('stepped needs CANARY_ADMIN_TOKEN');
    const backfill = cli({ CANARY_ADMIN_TOKEN: 'stepped_cli_admin_token' }, ...target, '--backfill', 'start');
    expect(backfill.status).toBe(64);
    expect(backfill.stderr).toContain('stepped does not run the backfill');
    const timeout = cli({ CANARY_ADMIN_TOKEN: 'stepped_cli_admin_token' }, ...target, '--apply-timeout-seconds', '0');
    expect(timeout.status).toBe(64);
    expect(timeout.stderr).toContain('--apply-timeout-seconds must be a positive number');
    for (const run of [noToken, backfill, timeout]) expect(run.stderr + run.stdout).not.toContain('stepped_cli_admin_token');
  }, 60_000);

  it('names itself in usage errors, and `stepped --help` prints the usage', () => {
    const noTarget = cli({ CANARY_ADMIN_TOKEN: 'stepped_cli_admin_token' });
    expect(noTarget.status).toBe(64);
    expect(noTarget.stderr).toContain('stepped needs --base-url');
    const help = cli({}, '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('npm run canary -- stepped');
  }, 60_000);
});
