/**
 * .github/workflows/rollout.yml is an example for users and never runs here, so nothing else would
 * notice it drifting from the code: every command, flag and output it uses must exist, and a job that
 * pushes a commit must be on a branch.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  steps: Step[];
}

const text = readFileSync('.github/workflows/rollout.yml', 'utf8');
const workflow = parse(text) as { jobs: Record<string, Job> };
const runs = Object.values(workflow.jobs).flatMap((job) => job.steps.map((s) => s.run ?? ''));
const allRuns = runs.join('\n');

function matches(source: string, pattern: RegExp): string[] {
  return [...source.matchAll(pattern)].map((m) => m[1]!);
}

describe('the example CI/CD workflow', () => {
  it('runs staging first, then production', () => {
    expect(Object.keys(workflow.jobs)).toEqual(['staging', 'production']);
    expect(workflow.jobs.production!.needs).toBe('staging');
  });

  it('sets up the one Node version the service runs on Render and CI tests (.node-version, Node 24)', () => {
    const pinned = readFileSync('.node-version', 'utf8').trim();
    expect(pinned).toMatch(/^24\.\d+\.\d+$/);
    for (const [name, job] of Object.entries(workflow.jobs)) {
      const setups = job.steps.filter((s) => s.uses?.startsWith('actions/setup-node@'));
      expect(setups, name).toHaveLength(1);
      expect(setups[0]!.with, name).toMatchObject({ 'node-version-file': '.node-version' });
      expect(setups[0]!.with?.['node-version'], name).toBeUndefined();
    }
  });

  it('uses only npm scripts that exist', () => {
    const scripts = Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts);
    const used = matches(allRuns, /npm run (\S+)/g);
    expect(used).toContain('canary');
    for (const name of used) expect(scripts, `npm run ${name}`).toContain(name);
  });

  it('passes the canary only flags it accepts', () => {
    const accepted = new Set(matches(readFileSync('canary/main.ts', 'utf8'), /--([a-z][a-z-]*)/g));
    const canaryCalls = runs.filter((r) => r.includes('npm run canary -- run'));
    expect(canaryCalls).toHaveLength(2);
    for (const call of canaryCalls) {
      for (const flag of matches(call, /\s--([a-z][a-z-]*)/g)) expect(accepted.has(flag), `--${flag}`).toBe(true);
    }
  });

  it('reads only stack outputs the Pulumi program exports', () => {
    const exported = matches(readFileSync('infra/index.ts', 'utf8'), /export const (\w+)/g);
    const read = matches(allRuns, /pulumi stack output (\w+)/g);
    expect(read.length).toBeGreaterThan(0);
    for (const name of read) expect(exported, name).toContain(name);
  });

  it('pushes only from a branch checkout, to that branch', () => {
    for (const [name, job] of Object.entries(workflow.jobs)) {
      const pushes = job.steps.filter((s) => /\bgit push\b/.test(s.run ?? ''));
      if (pushes.length === 0) continue;
      const checkout = job.steps.find((s) => s.uses?.startsWith('actions/checkout@'));
      const ref = checkout?.with?.ref;
      // A commit sha checks out a detached HEAD, from which a bare `git push` fails.
      expect(ref === undefined || ref === '${{ github.ref }}' || ref === '${{ github.ref_name }}', `${name}: checkout ref ${String(ref)}`).toBe(true);
      for (const step of pushes) expect(step.run, name).toMatch(/git push origin "HEAD:\$\{GITHUB_REF_NAME\}"/);
    }
  });

  it('names every secret it uses in its header', () => {
    const header = text.slice(0, text.indexOf('\nname:'));
    const secrets = matches(text, /secrets\.(\w+)/g);
    expect(secrets.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(header, secret).toContain(secret);
  });
});
