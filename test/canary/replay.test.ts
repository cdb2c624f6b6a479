/** A report is replayed with the policy it was judged with, not the default one (`--policy` overrides). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyze, type Measurement } from '../../canary/analysis';
import { loadPolicy } from '../../canary/policy';
import { buildReport, writeReports } from '../../canary/report/report';
import { loadTimeline } from '../../canary/timeline';
import { healthyRun } from './support/healthy-run';
import { noRenderPlatform } from '../../render/platform';
import { compiledArgs } from '../../canary/compiled';

const REPO = join(__dirname, '../..');
const demoPolicy = loadPolicy(join(REPO, 'demo/policy.yaml'));
const dir = mkdtempSync(join(tmpdir(), 'canary-replay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('canary replay of a report', () => {
  const measurements = healthyRun(demoPolicy);
  const result = analyze(demoPolicy, { measurements });
  const report = buildReport({
    stack: 'staging', serviceId: null, outcome: 'promoted', startedAt: '2026-11-24T10:00:00.000Z', finishedAt: '2026-11-24T10:10:00.000Z',
    measuredOn: noRenderPlatform('http://127.0.0.1:9'), dryRun: false, baseUrl: 'http://127.0.0.1:9', operator: 'test', timeScale: 60, policy: demoPolicy, measurements, result, actions: [],
  });
  const paths = writeReports(dir, report);
  const replay = (...extra: string[]) =>
    spawnSync(process.execPath, [...compiledArgs('canary/main.ts'), 'replay', '--timeline', paths.json, ...extra], { cwd: REPO, encoding: 'utf8' });

  it('loads the policy recorded in report.json, validated like a policy file', () => {
    expect(result.decision?.kind).toBe('promote');
    expect(loadTimeline(paths.json).policy).toEqual(demoPolicy);
    const tampered = JSON.parse(readFileSync(paths.json, 'utf8'));
    tampered.policy.confidence = 95;
    writeFileSync(join(dir, 'tampered.json'), JSON.stringify(tampered));
    expect(() => loadTimeline(join(dir, 'tampered.json'))).toThrow(/tampered\.json \(its policy\).*confidence/);
  });

  it('replays with that policy by default, and --policy still overrides it', () => {
    const own = replay();
    expect(own.stdout).toContain(`policy: the one recorded in ${paths.json}`);
    expect(own.stdout).toContain('DECISION: PROMOTE');
    expect(own.status).toBe(0);
    const overridden = replay('--policy', 'canary/policy.yaml');
    expect(overridden.stdout).toContain('policy: canary/policy.yaml');
    expect(overridden.stdout).not.toContain('DECISION: PROMOTE');
    expect(overridden.status).toBe(2);
  }, 60_000);
});
