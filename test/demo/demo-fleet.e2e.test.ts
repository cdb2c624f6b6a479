/**
 * `npm run demo -- --fleet` end to end: the production-shaped rehearsal (PostgreSQL and Redis per environment,
 * 2 instances per service) as a child process. Its summary must state the rollback verified, the retry signed
 * off, every acknowledged pattern found in PostgreSQL and delivered to Context7, and no request without answer;
 * the artefacts it leaves are checked again, and so is what it must not leave (databases, Redis keys, processes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig } from '../../canary/actions/stack-file';
import { canaryReportSummarySchema } from '../../canary/report-summary';
import { countRedisKeys, databaseExists } from '../../demo/fleet-backing';
import { groupAlive } from '../../demo/processes';
import { compiledArgs } from '../../canary/compiled';
import { processesMentioning, settle } from './support/demo-child';

const REPO = join(__dirname, '../..');
const runDir = mkdtempSync(join(tmpdir(), 'demo-fleet-e2e-'));
let child: ChildProcess | undefined;

afterEach(() => {
  // A failed assertion must not leave the demo (and what it started) running.
  if (child?.pid && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
});
afterAll(() => rmSync(runDir, { recursive: true, force: true }));


function reportSummary(run: string) {
  for (const name of ['report.json', 'signoff.md', 'report.html']) expect(existsSync(join(runDir, 'reports', run, name)), `${run}/${name}`).toBe(true);
  return canaryReportSummarySchema.parse(JSON.parse(readFileSync(join(runDir, 'reports', run, 'report.json'), 'utf8')).summary);
}

describe('npm run demo -- --fleet', () => {
  it('promotes staging, catches production at the 25 % step (kill switch, rollback verified, latched), steps the retry to 100 % and signs it off; no pattern lost, no request unanswered, nothing left', async () => {
    let output = '';
    child = spawn(process.execPath, [...compiledArgs('demo/main.ts'), '--fleet', '--run-dir', runDir], {
      cwd: REPO,
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => child!.on('close', (c) => resolve(c)));
    const line = output.split('\n').find((l) => l.startsWith('DEMO_SUMMARY '));
    expect(line, output).toBeDefined();
    const summary = JSON.parse(readFileSync(JSON.parse(line!.slice('DEMO_SUMMARY '.length)).summaryFile, 'utf8'));
    expect(code, output).toBe(0);

    // The headline figures, as the issue asks for them.
    expect(summary.ok).toBe(true);
    const fleet = summary.fleet;
    expect(fleet).toMatchObject({ instancesPerService: 2, rollbackVerified: true, retrySignedOff: true, requestsWithoutAnswer: 0 });
    expect(fleet.patternsAcknowledged).toBeGreaterThan(0);
    expect(fleet.patternsFoundInPostgres).toBe(fleet.patternsAcknowledged);
    expect(fleet.patternsDeliveredToContext7).toBe(fleet.patternsAcknowledged);
    expect(fleet.requestsSent).toBeGreaterThan(1_000);
    for (const lb of Object.values(fleet.loadBalancers) as Record<string, number>[]) expect(lb).toMatchObject({ unavailable: 0, badGateway: 0 });
    expect(fleet.guard.promotedStack.ok).toBe(true);
    expect(fleet.guard.tamperedStagingReport.ok).toBe(false);

    // The summary file, and the verdict as the last line a person reads.
    const summaryFile = join(runDir, 'demo-summary.json');
    expect(JSON.parse(readFileSync(summaryFile, 'utf8'))).toEqual(summary);
    expect(output.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^PASS: .*summary in ${summaryFile}$`));

    // The lifecycle, from the canaries' own reports.
    const staging = reportSummary('staging');
    expect(staging.outcome).toBe('promoted');
    expect(reportSummary('production').outcome).toBe('rolled_back');
    const retry = reportSummary('production-retry');
    expect(retry.outcome).toBe('signed_off');
    // Both production runs are stepped rollouts on the 2 instances: the first caught at 25 % (kill switch confirmed
    // on both, within seconds: a generous bound for this machine), the retry through every step to 100 %.
    expect(summary.stepped).toMatchObject({ caughtAtStep: 2, caughtAtPercent: 25, exposureReachedPercent: 5, highestExposurePercent: 25, controlHealthy: true });
    expect(summary.stepped.scopes.neverExposedShare).toBeGreaterThan(0.65);
    expect(summary.stepped.killSwitchSeconds).toBeLessThanOrEqual(10);
    const killSwitch = JSON.parse(readFileSync(join(runDir, 'reports', 'production', 'report.json'), 'utf8')).killSwitch;
    expect(killSwitch.failed).toBeNull();
    expect(killSwitch.instances).toHaveLength(2);
    expect(retry.exposureReachedPercent).toBe(100);
    expect(retry.deployId).toBe(staging.deployId); // the same pinned commit, rolled out again
    const stackFile = join(runDir, 'stacks', 'Pulumi.production.yaml');
    expect(readStackConfig(stackFile, PINNED_COMMIT_KEY)).toBe(staging.deployId);
    expect(readStackConfig(stackFile, FLAG_KEY)).toBe(true);

    // The acknowledged patterns, as the ledger files list them, are the ones counted.
    const acknowledged = JSON.parse(readFileSync(join(runDir, 'acknowledged-patterns.json'), 'utf8')) as Record<string, string[]>;
    expect(Object.values(acknowledged).flat().length).toBe(fleet.byEnvironment.production.acknowledged);
    const stagingAcknowledged = JSON.parse(readFileSync(join(runDir, 'acknowledged-patterns-staging.json'), 'utf8')) as Record<string, string[]>;
    expect(Object.values(stagingAcknowledged).flat().length).toBe(fleet.byEnvironment.staging.acknowledged);
    expect(fleet.byEnvironment.staging.acknowledged + fleet.byEnvironment.production.acknowledged).toBe(fleet.patternsAcknowledged);

    // 2 instances per deploy: staging 2 deploys, production 4 (first, flag on, rollback, retry).
    const tracked = summary.processes as { role: string; pgid: number }[];
    expect(tracked.filter((p) => p.role.startsWith('service:')).length).toBeGreaterThanOrEqual(12);

    // Nothing left: databases dropped, Redis keys deleted, processes gone.
    for (const name of Object.values(fleet.databases) as string[]) expect(await databaseExists(name), name).toBe(false);
    for (const prefix of Object.values(fleet.redisKeyPrefixes) as string[]) expect(await countRedisKeys(prefix), prefix).toBe(0);
    await settle(() => !tracked.some((p) => groupAlive(p.pgid)) && processesMentioning(runDir).length === 0);
    expect(tracked.filter((p) => groupAlive(p.pgid))).toEqual([]);
    expect(processesMentioning(runDir)).toEqual([]);
  }, 1_500_000);

  it('Ctrl-C mid-rehearsal drops the databases, deletes the Redis keys, stops everything, exits 130', async () => {
    const interruptedDir = join(runDir, 'interrupted');
    let output = '';
    child = spawn(process.execPath, [...compiledArgs('demo/main.ts'), '--fleet', '--run-dir', interruptedDir], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const closed = new Promise<number | null>((resolve) => child!.on('close', (c) => resolve(c)));
    // Interrupt once both services run on their databases and the staging canary is measuring.
    const deadline = Date.now() + 180_000;
    while (!/staging canary +\d/.test(output) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(output).toMatch(/staging canary +\d/);
    const databases = [...output.matchAll(/PostgreSQL database (demo_fleet_\w+)/g)].map((m) => m[1]!);
    const prefixes = [...output.matchAll(/Redis key prefix (\S+) on/g)].map((m) => m[1]!);
    expect(databases).toHaveLength(2);
    expect(await databaseExists(databases[0]!)).toBe(true);
    child.kill('SIGINT');
    expect(await closed, output).toBe(130);
    for (const name of databases) expect(await databaseExists(name), name).toBe(false);
    for (const prefix of prefixes) expect(await countRedisKeys(prefix), prefix).toBe(0);
    await settle(() => processesMentioning(interruptedDir).length === 0);
    expect(processesMentioning(interruptedDir)).toEqual([]);
  }, 240_000);
});
