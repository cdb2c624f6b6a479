/** The demo's pure parts and its process bookkeeping, without running a rehearsal. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../../canary/policy';
import { Cleanup } from '../../demo/cleanup';
import { FAULT_RAMP, faultStageAt } from '../../demo/fault-ramp';
import { PatternLedger } from '../../demo/ledger';
import { parseDemoOptions } from '../../demo/options';
import { groupAlive, ProcessRegistry } from '../../demo/processes';
import { DEMO_POLICY } from '../../demo/rehearsal';
import { createReporter } from '../../demo/reporter';
import { DEMO_SCOPE_IDS } from '../../demo/traffic';
import { validateScopeIds } from '../../demo/validation';
import { judgeRehearsal, type CanaryObservation, type Observations } from '../../demo/verdict';

describe('pre-rollout validation', () => {
  it('passes on the runbook example and the traffic scope pool', () => {
    const checks = validateScopeIds(DEMO_SCOPE_IDS);
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(checks[0]!.detail).toMatch(/^scope:test:agent-1:[0-9a-f]{16}$/);
    expect(DEMO_SCOPE_IDS).toHaveLength(12);
  });

  it('flags malformed or placeholder ids in the traffic pool', () => {
    for (const bad of ['scope:test:agent-1:PLACEHOLDER', 'scope:test:agent-1:<hash>', 'scope:*:*:0123456789abcdef', 'test:agent-1:0123456789abcdef']) {
      const check = validateScopeIds([...DEMO_SCOPE_IDS, bad]).find((c) => c.name.startsWith('every scope id'))!;
      expect(check.ok, bad).toBe(false);
    }
    expect(validateScopeIds([]).find((c) => c.name.startsWith('every scope id'))!.ok).toBe(false);
  });
});

describe('demo options', () => {
  it('defaults to the fault rehearsal at 60x with a 300 s watchdog', () => {
    expect(parseDemoOptions([])).toEqual({ help: false, mode: 'fault', fleet: false, runDir: undefined, timeScale: 60, watchdogSeconds: 300 });
    expect(parseDemoOptions(['--healthy', '--time-scale', '30']).mode).toBe('healthy');
  });

  it('refuses numbers a timer or the services could not honour', () => {
    // setTimeout fires at once past ~24.8 days; a TTL of 5 min / 1e6 rounds to 0 ms, which the service refuses.
    for (const [flag, value] of [['--watchdog-seconds', '3000000'], ['--time-scale', '1000000'], ['--time-scale', '0'], ['--time-scale', ' '], ['--watchdog-seconds', 'soon']]) {
      expect(() => parseDemoOptions([flag!, value!]), `${flag} ${value}`).toThrow(`${flag} must be a positive number up to`);
    }
    expect(() => parseDemoOptions(['--bogus'])).toThrow();
  });

  it('catches demo flags npm swallowed (`npm run demo --healthy`, no `--`) instead of running the default rehearsal', () => {
    expect(() => parseDemoOptions([], { npm_config_healthy: 'true' })).toThrow('did you mean `npm run demo -- --healthy`?');
    expect(() => parseDemoOptions([], { npm_config_time_scale: '30' })).toThrow('`npm run demo -- --time-scale 30`');
    // npm's own settings are not demo flags.
    expect(parseDemoOptions([], { npm_config_cache: '/tmp/npm', npm_config_user_agent: 'npm/11' }).mode).toBe('fault');
  });

  it('`npm run demo --healthy`: the demo exits 64 at once with the right command, having started nothing', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'demo', 'main.ts')], {
      cwd: join(__dirname, '..', '..'),
      env: { ...process.env, npm_config_healthy: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).toBe(64);
    expect(output).toContain('did you mean `npm run demo -- --healthy`?');
    expect(output).not.toContain('Rollout rehearsal');
  }, 60_000);

  it('demo/screenshot.ts refuses to overwrite a picture git tracks (the README\'s command run verbatim), unless --force', async () => {
    const repo = join(__dirname, '..', '..');
    const tracked = join(repo, 'docs', 'canary-report-rollback.png');
    const before = readFileSync(tracked);
    const dir = mkdtempSync(join(tmpdir(), 'demo-screenshot-'));
    try {
      const report = join(dir, 'report.html');
      writeFileSync(report, '<html><body>report</body></html>');
      const run = (args: string[]) =>
        new Promise<{ code: number | null; output: string }>((resolve) => {
          // A Chromium that does not exist: should the guard let the screenshot through, it fails before writing.
          const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'demo', 'screenshot.ts'), ...args], {
            cwd: repo,
            env: { ...process.env, CHROMIUM_PATH: join(dir, 'no-chromium') },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let output = '';
          child.stdout.on('data', (chunk) => (output += chunk));
          child.stderr.on('data', (chunk) => (output += chunk));
          child.once('exit', (code) => resolve({ code, output }));
        });
      const refused = await run([report, 'docs/canary-report-rollback.png', '--width', '900', '--height', '900']);
      expect(refused.code).toBe(64);
      expect(refused.output).toContain('refusing to overwrite docs/canary-report-rollback.png: git tracks it (add --force');
      expect(readFileSync(tracked).equals(before)).toBe(true);
      // An untracked path (the run dir) and --force both get past the guard, to the browser launch.
      for (const args of [[report, join(dir, 'report.png')], [report, 'docs/canary-report-rollback.png', '--force']]) {
        const attempted = await run(args);
        expect(attempted.output, args.join(' ')).toContain('screenshot failed');
        expect(attempted.output).not.toContain('refusing to overwrite');
      }
      expect(readFileSync(tracked).equals(before)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('wants a new or empty directory as --run-dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'demo-options-'));
    try {
      expect(parseDemoOptions(['--run-dir', dir]).runDir).toBe(dir);
      writeFileSync(join(dir, 'earlier'), 'x');
      expect(() => parseDemoOptions(['--run-dir', dir])).toThrow('holds an earlier run');
      expect(() => parseDemoOptions(['--run-dir', join(dir, 'earlier')])).toThrow('is a file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('demo policy', () => {
  it("keeps the runbook policy's thresholds and confidence; only the clock and sample sizes shrink", () => {
    const runbook = loadPolicy('canary/policy.yaml');
    const demo = loadPolicy(DEMO_POLICY);
    expect(demo.confidence).toBe(runbook.confidence);
    expect(demo.checkpoints.map((c) => c.rollbackIf)).toEqual(runbook.checkpoints.map((c) => c.rollbackIf));
    expect(demo.successCriteria.require).toEqual(runbook.successCriteria.require);
    expect(demo.successCriteria.requireHealthAvailable).toBe(runbook.successCriteria.requireHealthAvailable);
    expect(demo.immediateChecks.endpoints).toEqual(runbook.immediateChecks.endpoints);
    expect([demo.onFailAtEnd, demo.onInconclusiveAtEnd]).toEqual([runbook.onFailAtEnd, runbook.onInconclusiveAtEnd]);
    expect(demo.thirtyDayProfile).toEqual(runbook.thirtyDayProfile);
    expect(demo.load).toEqual(runbook.load);
    // The checkpoints keep their place in the analysis (15 and 30 of 60 -> 3 and 6 of 10, roughly).
    for (const [i, c] of demo.checkpoints.entries()) {
      const share = c.atMinute / demo.successCriteria.atMinute;
      expect(Math.abs(share - runbook.checkpoints[i]!.atMinute / runbook.successCriteria.atMinute)).toBeLessThan(0.15);
    }
  });
});

describe('pattern ledger', () => {
  it('finds acknowledged patterns missing from the store, per scope', () => {
    const ledger = new PatternLedger();
    ledger.record({ scopeId: 's1', patternIds: ['a', 'b'], destinations: ['database', 'context7'] });
    ledger.record({ scopeId: 's2', patternIds: ['c'], destinations: ['database'] });
    ledger.record({ scopeId: 's1', patternIds: ['a'], destinations: ['database', 'context7'] }); // idempotent re-send
    expect(ledger.totals()).toEqual({ acknowledged: 3, scopes: 2, databaseOnly: 1 });
    expect(ledger.toJSON()).toEqual({ s1: ['a', 'b'], s2: ['c'] });

    const store: Record<string, Set<string>> = { s1: new Set(['a', 'b', 'x']), s2: new Set() };
    const loss = ledger.compare((scope) => store[scope] ?? new Set());
    expect(loss).toEqual({ acknowledged: 3, present: 2, missing: ['s2/c'], scopes: 2 });
    store.s2!.add('c');
    expect(ledger.compare((scope) => store[scope]!).missing).toEqual([]);
  });
});

describe('fault ramp', () => {
  it('rises in stages and is off before it begins', () => {
    expect(faultStageAt(-1)).toBeUndefined();
    expect(faultStageAt(0)).toBe(FAULT_RAMP[0]);
    expect(faultStageAt(45)).toBe(FAULT_RAMP[1]);
    expect(faultStageAt(10_000)).toBe(FAULT_RAMP.at(-1));
    for (let i = 1; i < FAULT_RAMP.length; i++) {
      expect(FAULT_RAMP[i]!.errorRate).toBeGreaterThan(FAULT_RAMP[i - 1]!.errorRate);
      expect(FAULT_RAMP[i]!.latencyMs).toBeGreaterThan(FAULT_RAMP[i - 1]!.latencyMs);
    }
  });
});

describe('verdict', () => {
  const canary = (over: Partial<CanaryObservation>): CanaryObservation => ({
    exitCode: 0,
    outcome: 'promoted',
    deployId: 'abc123',
    reportsExist: true,
    verifyChecks: [],
    latched: false,
    ...over,
  });
  const faultRun = (): Observations => ({
    mode: 'fault',
    validationOk: true,
    staging: canary({}),
    promotedStack: { pinnedCommit: 'abc123', flag: true },
    productionStack: { pinnedCommit: 'abc123', flag: false },
    production: canary({ exitCode: 1, outcome: 'rolled_back', latched: true, verifyChecks: [{ ok: true, detail: 'config' }, { ok: true, detail: 'watch' }] }),
    productionRenderFlag: 'false',
    patterns: { acknowledged: 10, present: 10, missing: 0 },
    processesLeft: 0,
  });

  it('passes the expected fault rehearsal', () => {
    const verdict = judgeRehearsal(faultRun());
    expect(verdict.checks.filter((c) => !c.ok)).toEqual([]);
    expect(verdict.ok).toBe(true);
  });

  it.each([
    ['staging held', (o: Observations) => (o.staging = canary({ exitCode: 2, outcome: 'held' })), 'staging canary promoted'],
    ['a different commit pinned', (o: Observations) => (o.promotedStack = { pinnedCommit: 'other', flag: true }), 'promotion pinned'],
    ['production signed off despite the fault', (o: Observations) => (o.production = canary({ outcome: 'signed_off' })), 'production canary rolled back'],
    ['a failed verification', (o: Observations) => (o.production!.verifyChecks = [{ ok: false, detail: 'health' }]), 'rollback verified'],
    ['no verification at all', (o: Observations) => (o.production!.verifyChecks = []), 'rollback verified'],
    ['flag still on in Render', (o: Observations) => (o.productionRenderFlag = 'true'), 'flag off'],
    ['the flag was never on (nothing latched)', (o: Observations) => (o.promotedStack = { pinnedCommit: 'abc123', flag: false }), 'latch written'],
    ['no latch action', (o: Observations) => (o.production!.latched = false), 'latch written'],
    ['a lost pattern', (o: Observations) => (o.patterns = { acknowledged: 10, present: 9, missing: 1 }), 'no acknowledged learned pattern lost'],
    ['no pattern written at all', (o: Observations) => (o.patterns = { acknowledged: 0, present: 0, missing: 0 }), 'no acknowledged learned pattern lost'],
    ['a process left', (o: Observations) => (o.processesLeft = 1), 'no process left behind'],
    ['missing reports', (o: Observations) => (o.production!.reportsExist = false), 'reports exist'],
  ])('fails on %s', (_name, spoil, failingCheck) => {
    const o = faultRun();
    spoil(o);
    const verdict = judgeRehearsal(o);
    expect(verdict.ok).toBe(false);
    expect(verdict.checks.filter((c) => !c.ok).map((c) => c.name).join(' | ')).toContain(failingCheck);
  });

  it('expects sign-off and the flag kept on in a healthy rehearsal', () => {
    const healthy: Observations = {
      ...faultRun(),
      mode: 'healthy',
      production: canary({ outcome: 'signed_off' }),
      productionRenderFlag: 'true',
      productionStack: { pinnedCommit: 'abc123', flag: true },
    };
    expect(judgeRehearsal(healthy).ok).toBe(true);
    expect(judgeRehearsal({ ...healthy, production: canary({ exitCode: 1, outcome: 'rolled_back' }) }).ok).toBe(false);
  });
});

describe('cleanup', () => {
  it('runs closers once, newest first, past failures; late additions close at once', async () => {
    const order: string[] = [];
    const cleanup = new Cleanup();
    cleanup.add('a', () => order.push('a'));
    cleanup.add('b', () => {
      throw new Error('boom');
    });
    cleanup.add('c', async () => order.push('c'));
    const [first, second] = await Promise.all([cleanup.run(), cleanup.run()]);
    expect(order).toEqual(['c', 'a']);
    expect(first).toEqual(['b: boom']);
    expect(second).toBe(first);
    let late = false;
    cleanup.add('late', () => (late = true));
    await new Promise((r) => setImmediate(r));
    expect(late).toBe(true);
  });
});

describe('process registry', () => {
  it('stops a whole process group (grandchildren included) and reports none alive', async () => {
    // A shell that ignores nothing but has a grandchild: the group, not the leader, must go.
    const child = spawn('sh', ['-c', 'sleep 60 & sleep 60; wait'], { detached: true, stdio: 'ignore' });
    const registry = new ProcessRegistry();
    try {
      expect(registry.record('test', child.pid!)).toBe(true);
      expect(registry.record('test', child.pid!)).toBe(false);
      expect(groupAlive(child.pid!)).toBe(true);
      expect(registry.alive()).toHaveLength(1);
      expect(await registry.stopAll(5_000)).toEqual([]);
      expect(groupAlive(child.pid!)).toBe(false);
    } finally {
      registry.signalAll('SIGKILL');
    }
  }, 20_000);
});

describe('reporter', () => {
  it('numbers steps and throttles status lines when not on a terminal', () => {
    let out = '';
    let t = 0;
    const stream = { isTTY: false, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
    const say = createReporter(stream, () => t);
    say.step('first');
    say.status('one');
    t = 1_000;
    say.status('two (throttled)');
    t = 4_000;
    say.status('three');
    say.ok('done');
    expect(out).toContain('Step 1: first');
    expect(out).toContain('… one');
    expect(out).not.toContain('two (throttled)');
    expect(out).toContain('… three');
    expect(out).toContain('✔ done');
  });
});
