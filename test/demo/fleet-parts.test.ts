/**
 * Parts of the fleet rehearsal (npm run demo -- --fleet), fast and without processes. The guard step
 * (demo/guard-step.ts): the infra guard, as `pulumi preview` runs it, passes the production stack copy the staging
 * canary promoted, and refuses it when the staging report does not match, so the refusal needs no second full
 * rehearsal. Also its options, its verdict checks, and the bounded wait for Context7 delivery.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FLAG_KEY, PINNED_COMMIT_KEY, setStackConfig } from '../../canary/actions/stack-file';
import { waitForDelivery } from '../../demo/fleet-patterns';
import { markSecretsSet, runInfraGuard, tamperedStagingReport } from '../../demo/guard-step';
import { PatternLedger } from '../../demo/ledger';
import { defaultWatchdogSeconds, parseDemoOptions } from '../../demo/options';
import { judgeRehearsal, type CanaryObservation, type FleetObservations, type Observations } from '../../demo/verdict';

const REPO = join(__dirname, '../..');
const COMMIT = '54528ae56870fb5bb4ff2ff3a7e849b6690e51c8';
/** The rehearsal's production runs on its local platform: what RENDER_API_URL says to the guard. */
const LOCAL = { RENDER_API_URL: 'http://127.0.0.1:10000/v1' };
const dir = mkdtempSync(join(tmpdir(), 'fleet-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The production stack copy right after the staging canary promoted COMMIT, and that canary's report. */
function promoted(name: string, summary: Record<string, unknown> = {}) {
  const stackFile = join(dir, `${name}.Pulumi.production.yaml`);
  copyFileSync(join(REPO, 'Pulumi.production.yaml'), stackFile);
  markSecretsSet(stackFile);
  setStackConfig(stackFile, { [PINNED_COMMIT_KEY]: COMMIT, [FLAG_KEY]: true });
  const report = join(dir, `${name}.report.json`);
  const at = new Date().toISOString();
  writeFileSync(
    report,
    JSON.stringify({ summary: { schemaVersion: 1, stack: 'staging', deployId: COMMIT, serviceId: 'srv-x', outcome: 'promoted', startedAt: at, finishedAt: at, measuredOnKind: 'emulator', ...summary } }),
  );
  return { stackFile, report };
}

describe('the rehearsal runs the infra guard before the production flag goes on', () => {
  it('passes the stack the staging canary promoted, with its report', () => {
    const { stackFile, report } = promoted('ok');
    expect(runInfraGuard('production', stackFile, report, LOCAL)).toMatchObject({ ok: true, violations: [] });
  });

  it('refuses the same emulator-measured report for a production on Render (no RENDER_API_URL)', () => {
    const { stackFile, report } = promoted('on-render');
    const outcome = runInfraGuard('production', stackFile, report, {});
    expect(outcome.ok).toBe(false);
    expect(outcome.violations.join('\n')).toMatch(/on Render \(api\.render\.com\).*was measured on an emulator/);
  });

  it('refuses when the staging report judged another commit (a tampered copy)', () => {
    const { stackFile, report } = promoted('tampered');
    const tampered = join(dir, 'tampered-copy.json');
    tamperedStagingReport(report, tampered);
    const outcome = runInfraGuard('production', stackFile, tampered, LOCAL);
    expect(outcome.ok).toBe(false);
    expect(outcome.violations.join('\n')).toMatch(/does not authorise commit 54528ae5.*but production is pinned to 54528ae5/);
  });

  it('refuses when the staging canary did not promote, or there is no report', () => {
    const rolledBack = promoted('rolled-back', { outcome: 'rolled_back' });
    expect(runInfraGuard('production', rolledBack.stackFile, rolledBack.report, LOCAL).violations.join('\n')).toContain('not "promoted"');
    const missing = runInfraGuard('production', rolledBack.stackFile, join(dir, 'nowhere.json'), LOCAL);
    expect(missing.ok).toBe(false);
    expect(missing.violations.join('\n')).toContain('the file does not exist');
  });

  it('with the flag latched off, production needs no staging report', () => {
    const { stackFile } = promoted('latched');
    setStackConfig(stackFile, { [FLAG_KEY]: false });
    expect(runInfraGuard('production', stackFile, join(dir, 'nowhere.json'), LOCAL).ok).toBe(true);
  });
});

describe('--fleet options', () => {
  it('is the fault lifecycle with a longer watchdog, and refuses --healthy', () => {
    // The watchdog is chosen once the clock is (demo/options.ts defaultWatchdogSeconds): 420 s at 60x for --fleet.
    expect(parseDemoOptions(['--fleet'])).toMatchObject({ fleet: true, mode: 'fault', watchdogSeconds: undefined });
    expect(defaultWatchdogSeconds(true, 60)).toBe(420);
    expect(defaultWatchdogSeconds(false, 60)).toBe(300);
    expect(() => parseDemoOptions(['--fleet', '--healthy'])).toThrow(/does not combine with --healthy/);
  });
});

describe('the fleet verdict', () => {
  const canary = (over: Partial<CanaryObservation>): CanaryObservation => ({
    exitCode: 0, outcome: 'promoted', deployId: 'abc123', reportsExist: true, verifyChecks: [], latched: false, ...over,
  });
  const fleetRun = (fleet: Partial<FleetObservations> = {}): Observations => ({
    mode: 'fault',
    validationOk: true,
    staging: canary({}),
    promotedStack: { pinnedCommit: 'abc123', flag: true },
    productionStack: { pinnedCommit: 'abc123', flag: false },
    production: canary({ exitCode: 1, outcome: 'rolled_back', latched: true, verifyChecks: [{ ok: true, detail: 'watch' }] }),
    productionRenderFlag: 'false',
    patterns: { acknowledged: 10, present: 10, missing: 0 },
    processesLeft: 0,
    fleet: {
      guardPassedPromoted: true,
      guardRefusedTampered: true,
      guardPassedRetry: true,
      retry: canary({ outcome: 'signed_off' }),
      patterns: { acknowledged: 30, foundInPostgres: 30, deliveredToContext7: 30 },
      requestsWithoutAnswer: 0,
      ...fleet,
    },
  });
  const failing = (o: Observations) => judgeRehearsal(o).checks.filter((c) => !c.ok).map((c) => c.name);

  it('passes the expected lifecycle', () => expect(failing(fleetRun())).toEqual([]));
  it.each([
    ['the retry held', { retry: canary({ exitCode: 2, outcome: 'held' }) }, 'retry of the pinned commit'],
    ['a pattern not in PostgreSQL', { patterns: { acknowledged: 30, foundInPostgres: 29, deliveredToContext7: 30 } }, 'in PostgreSQL'],
    ['a pattern never delivered', { patterns: { acknowledged: 30, foundInPostgres: 30, deliveredToContext7: 29 } }, 'reached Context7'],
    ['one request without answer', { requestsWithoutAnswer: 1 }, 'zero-downtime'],
    ['the guard passed a tampered report', { guardRefusedTampered: false }, 'infra guard'],
    ['the guard never ran', { guardPassedPromoted: null, guardRefusedTampered: null }, 'infra guard'],
  ] as const)('fails when %s', (_name, spoil, check) => {
    expect(failing(fleetRun(spoil as Partial<FleetObservations>)).join(' | ')).toContain(check);
  });
});

describe('waiting for Context7 delivery', () => {
  it('returns as soon as every acknowledged id is there, and reports what is not after the deadline', async () => {
    const ledger = new PatternLedger();
    ledger.record({ scopeId: 's1', patternIds: ['a', 'b'], destinations: ['database'] });
    const stored = new Set<string>(['a']);
    setTimeout(() => stored.add('b'), 100);
    const done = await waitForDelivery(ledger, () => stored, { timeoutMs: 10_000, pollMs: 20 });
    expect(done).toMatchObject({ delivered: 2, undelivered: [] });
    const late = await waitForDelivery(ledger, () => new Set(['a']), { timeoutMs: 100, pollMs: 20 });
    expect(late).toMatchObject({ delivered: 1, undelivered: ['s1/b'] });
  });
});
