/**
 * Every canary report says, near the top, whether it was measured against Render or an emulator (issue 26 §3):
 * report.json's `measuredOn`, signoff.md, report.html and incident.md, for the whole-flag and the stepped canary.
 * The Render API URL is recorded without credentials or a query.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyze } from '../../canary/analysis';
import { runSteppedCanary } from '../../canary/exposure/stepped-controller';
import { loadPolicy } from '../../canary/policy';
import { buildReport, writeReports } from '../../canary/report/report';
import { loadTimeline } from '../../canary/timeline';
import { DEFAULT_RENDER_BASE_URL } from '../../render/client';
import { IN_PROCESS_RENDER, noRenderPlatform, renderPlatformOf, type RenderPlatform } from '../../render/platform';
import { FAKE_COMMIT, FakeExposureService } from './support/fake-exposure-service';
import { recordingRender, steppedOptions } from './support/stepped-options';

const REPO = join(__dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'canary-measured-on-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 's3cretRenderKEY';
const RENDER = renderPlatformOf(DEFAULT_RENDER_BASE_URL);
// A URL carrying credentials, a query and a fragment: none of them may reach a report.
const EMULATOR = renderPlatformOf(`http://canary:${SECRET}@127.0.0.1:43210/v1/?key=${SECRET}#${SECRET}`);
const KINDS: [string, RenderPlatform, string][] = [
  ['Render', RENDER, 'Render (api.render.com)'],
  ['the emulator', EMULATOR, "emulator (local platform at http://127.0.0.1:43210): its deploy and rollback times are the emulator's, not Render's"],
];

describe('render/platform: what a Render API URL is', () => {
  it('Render is its public API over https, however the URL is spelled', () => {
    expect(RENDER).toEqual({ kind: 'render', apiUrl: 'https://api.render.com/v1', label: 'Render (api.render.com)' });
    expect(renderPlatformOf('https://api.render.com/v1/').kind).toBe('render');
    expect(renderPlatformOf('HTTPS://API.RENDER.COM/v1').kind).toBe('render');
    // Not https, or another host: not Render.
    expect(renderPlatformOf('http://api.render.com/v1').kind).toBe('emulator');
    expect(renderPlatformOf('https://api.render.com.example/v1').kind).toBe('emulator');
  });

  it('anything else is an emulator, said with where it was; credentials, query and fragment are dropped', () => {
    expect(EMULATOR).toEqual({ kind: 'emulator', apiUrl: 'http://127.0.0.1:43210/v1', label: 'emulator (local platform at http://127.0.0.1:43210)' });
    expect(renderPlatformOf('http://[::1]:9000').label).toBe('emulator (local platform at http://[::1]:9000)');
    expect(renderPlatformOf('http://localhost:9000/v1').label).toBe('emulator (local platform at http://localhost:9000)');
    expect(renderPlatformOf('https://render-proxy.internal/v1')).toEqual({
      kind: 'emulator',
      apiUrl: 'https://render-proxy.internal/v1',
      label: 'emulator (not api.render.com: a Render API stand-in at https://render-proxy.internal)',
    });
    expect(renderPlatformOf('not a url')).toMatchObject({ kind: 'emulator', apiUrl: null });
  });

  it('no Render API: says only what the service address tells', () => {
    expect(noRenderPlatform('http://127.0.0.1:4100/')).toEqual({ kind: 'none', apiUrl: null, label: 'no Render API (the service at http://127.0.0.1:4100 is on loopback: not Render)' });
    expect(noRenderPlatform(`https://u:${SECRET}@memory.example.com/?k=${SECRET}`).label).toBe(
      'no Render API (the service at https://memory.example.com was measured; where it runs is not known)',
    );
    expect(IN_PROCESS_RENDER.kind).toBe('emulator');
  });
});

function expectStated(files: { json: string; signoff: string; html: string; incident?: string }, platform: RenderPlatform, label: string) {
  const json = JSON.parse(readFileSync(files.json, 'utf8'));
  expect(json.measuredOn).toEqual(platform);
  const signoff = readFileSync(files.signoff, 'utf8');
  // The second line of the block, right under who ran it.
  expect(signoff.split('\n')[3]).toBe(`**Measured Against**: ${label}  `);
  const html = readFileSync(files.html, 'utf8');
  const paragraph = `<p class="measured-on ${platform.kind}" data-measured-on="${platform.kind}">Measured against: <b>${label.replace(/'/g, '&#39;')}</b></p>`;
  expect(html).toContain(paragraph);
  // Under the title, before any section.
  expect(html.indexOf(paragraph)).toBeGreaterThan(html.indexOf('<h1>'));
  expect(html.indexOf(paragraph)).toBeLessThan(html.indexOf('<h2>'));
  expect(files.incident, 'a rollback writes incident.md').toBeDefined();
  const incident = readFileSync(files.incident!, 'utf8').split('\n');
  expect(incident.slice(0, 6)).toContain(`- measured against: ${label}`);
  for (const path of Object.values(files)) expect(readFileSync(path!, 'utf8')).not.toContain(SECRET);
}

describe('whole-flag canary reports', () => {
  const policy = loadPolicy(join(REPO, 'canary/policy.yaml'));
  const timeline = loadTimeline(join(REPO, 'canary/timelines/step-regression-20min.json'));
  const result = analyze(policy, { deployId: timeline.deployId, measurements: timeline.measurements });

  it.each(KINDS)('say they were measured against %s, in every format', (name, measuredOn, label) => {
    const report = buildReport({
      stack: 'production',
      serviceId: 'srv-1',
      outcome: 'rolled_back',
      startedAt: '2026-12-07T10:00:00.000Z',
      finishedAt: '2026-12-07T11:00:00.000Z',
      measuredOn,
      dryRun: false,
      baseUrl: 'http://127.0.0.1:1',
      operator: 'measured-on-test',
      timeScale: 1,
      policy,
      measurements: timeline.measurements,
      result,
      actions: [],
    });
    expectStated(writeReports(join(dir, `whole-flag-${name}`), report), measuredOn, label);
  });
});

describe('stepped canary reports', () => {
  const policy = loadPolicy(join(__dirname, 'fixtures/stepped-policy.yaml'));
  const ADMIN_TOKEN = 'measured_on_test_ADMIN_never_recorded';

  it.each(KINDS)('say they were measured against %s, in every format', async (name, measuredOn, label) => {
    const runDir = join(dir, `stepped-${name}`);
    mkdirSync(runDir);
    for (const stack of ['staging', 'production']) copyFileSync(join(REPO, `Pulumi.${stack}.yaml`), join(runDir, `Pulumi.${stack}.yaml`));
    let now = Date.parse('2026-12-07T10:00:00.000Z');
    const service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => now, applyDelayMs: 200 });
    service.requestsPerSecond = 2400;
    service.degradeFromPercent = 25;
    const sleep = async (ms: number) => {
      now += ms;
    };
    const render = recordingRender(service, [], (ms) => (now += ms), FAKE_COMMIT);
    const options = steppedOptions({ policy, service, dir: runDir, baseUrl: 'http://127.0.0.1:9', adminToken: ADMIN_TOKEN, now: () => now, sleep, render, notifier: { async notify() {} }, operator: 'measured-on-test', stack: 'production' });
    const result = await runSteppedCanary({ ...options, measuredOn });
    expect(result.outcome).toBe('rolled_back');
    expectStated(result.reportPaths, measuredOn, label);
  });
});
