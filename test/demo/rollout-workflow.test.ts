/**
 * .github/workflows/rollout.yml is an example for users and never runs here, so nothing else would
 * notice it drifting from the code: every command, flag and output it uses must exist, and a job that
 * pushes a commit must be on a branch.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { npmRunLine } from './support/npm-scripts';
import { runJob, type WorkflowStep } from './support/workflow-runner';

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  if?: string;
  steps: (Step & WorkflowStep)[];
}

const text = readFileSync('.github/workflows/rollout.yml', 'utf8');
const workflow = parse(text) as { on: { schedule?: { cron: string }[] }; jobs: Record<string, Job> };
const runs = Object.values(workflow.jobs).flatMap((job) => job.steps.map((s) => s.run ?? ''));
const allRuns = runs.join('\n');

function matches(source: string, pattern: RegExp): string[] {
  return [...source.matchAll(pattern)].map((m) => m[1]!);
}

describe('the example CI/CD workflow', () => {
  it('runs staging first, then production', () => {
    expect(Object.keys(workflow.jobs)).toEqual(['staging', 'production', 'review']);
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

  it('runs the rollout by hand only, and the post-rollout review daily only', () => {
    expect(workflow.on.schedule).toEqual([{ cron: '17 6 * * *' }]);
    expect(workflow.jobs.staging!.if).toBe("github.event_name != 'schedule'");
    expect(workflow.jobs.production!.if).toBe("github.event_name != 'schedule'");
    expect(workflow.jobs.review!.if).toBe("github.event_name == 'schedule'");
  });

  it('uses only npm scripts that exist', () => {
    const scripts = Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts);
    const used = matches(allRuns, /npm run (\S+)/g);
    expect(used).toContain('canary');
    for (const name of used) expect(scripts, `npm run ${name}`).toContain(name);
  });

  it('passes the canary only flags it accepts', () => {
    const accepted = new Set(matches(readFileSync('canary/main.ts', 'utf8'), /--([a-z][a-z-]*)/g));
    // Staging judges the whole flag on its own synthetic traffic; production is the stepped rollout.
    expect(runs.filter((r) => r.includes('npm run canary -- run '))).toHaveLength(1);
    expect(workflow.jobs.staging!.steps.some((s) => (s.run ?? '').includes('npm run canary -- run --stack staging'))).toBe(true);
    expect(workflow.jobs.production!.steps.some((s) => (s.run ?? '').includes('npm run canary -- stepped --stack production'))).toBe(true);
    const canaryCalls = runs.filter((r) => r.includes('npm run canary -- '));
    expect(canaryCalls.filter((r) => /npm run canary -- (evaluate|review-due)/.test(r))).toHaveLength(2);
    for (const call of canaryCalls) {
      // From the canary command on: lines before it may run other tools with their own flags (pulumi).
      const canaryCommand = call.slice(call.indexOf('npm run canary -- '));
      for (const flag of matches(canaryCommand, /\s--([a-z][a-z-]*)/g)) expect(accepted.has(flag), `--${flag}`).toBe(true);
    }
  });

  it('reads only stack outputs the Pulumi program exports', () => {
    const exported = matches(readFileSync('infra/index.ts', 'utf8'), /export const (\w+)/g);
    const read = matches(allRuns, /pulumi stack output (\w+)/g);
    expect(read.length).toBeGreaterThan(0);
    for (const name of read) expect(exported, name).toContain(name);
  });

  it('pushes only from a branch checkout, to that branch', () => {
    const script = readFileSync('canary/ci/commit-result.sh', 'utf8');
    expect(script).toMatch(/git push --quiet origin "HEAD:\$\{branch\}"/);
    expect(script).toMatch(/branch=\$\{GITHUB_REF_NAME:-/);
    const pushesOf = (run: string) => /\bgit push\b/.test(run) || run.includes('canary/ci/commit-result.sh');
    for (const [name, job] of Object.entries(workflow.jobs)) {
      const pushes = job.steps.filter((s) => pushesOf(s.run ?? ''));
      if (pushes.length === 0) continue;
      const checkout = job.steps.find((s) => s.uses?.startsWith('actions/checkout@'));
      const ref = checkout?.with?.ref;
      // A commit sha checks out a detached HEAD, from which a bare `git push` fails.
      expect(ref === undefined || ref === '${{ github.ref }}' || ref === '${{ github.ref_name }}', `${name}: checkout ref ${String(ref)}`).toBe(true);
      for (const step of pushes.filter((s) => /\bgit push\b/.test(s.run ?? ''))) {
        expect(step.run, name).toMatch(/git push origin "HEAD:\$\{GITHUB_REF_NAME\}"/);
      }
    }
  });

  it('the stand-in runner implies success() in a condition without a status function, as GitHub does', () => {
    const steps: WorkflowStep[] = [
      { id: 'x', run: 'echo "y=1" >> "$GITHUB_OUTPUT"; exit 1' },
      { name: 'implied success', if: "steps.x.outputs.y != ''", run: 'true' },
      { name: 'explicit always', if: "always() && steps.x.outputs.y != ''", run: 'true' },
    ];
    const result = runJob(steps, { cwd: process.cwd(), env: { PATH: process.env.PATH ?? '' } });
    expect(result.steps.map((s) => s.status)).toEqual(['failure', 'skipped', 'success']);
  });

  it('names every secret it uses in its header', () => {
    const header = text.slice(0, text.indexOf('\nname:'));
    const secrets = matches(text, /secrets\.(\w+)/g);
    expect(secrets.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(header, secret).toContain(secret);
  });
});

/**
 * The jobs' own steps, run for real in a scratch clone with a bare "origin": `npm` and `pulumi` are stand-ins
 * (the canary's result is chosen per test), git and canary/ci/commit-result.sh are the real ones. What reaches
 * origin is what the next `pulumi up` would deploy.
 */
describe('the example workflow, run against a scratch repository', () => {
  const NPM_STUB = `#!/usr/bin/env bash
if [ "$1" = ci ]; then exit 0; fi
# The schedule is the real command, against the scratch repository's committed reports.
if [ "$1 $2 $3 $4" = "run canary -- review-due" ]; then shift 3; ${npmRunLine('canary')}; fi
if [ "$1 $2 $3 $4" = "run canary -- evaluate" ]; then
  echo "$*" > "$HOME/evaluate-args"
  dir=""; review=""; signed=""; prev=""
  for arg in "$@"; do
    case "$prev" in --report-dir) dir=$arg ;; --review) review=$arg ;; --signed-off-at) signed=$arg ;; esac
    prev=$arg
  done
  code=\${FAKE_REVIEW_EXIT:-0}
  # Exit 3 (history unreadable) writes nothing.
  if [ "$code" != 3 ]; then
    mkdir -p "$dir"
    printf '{"summary":{"review":"%s","signedOffAt":"%s"}}\\n' "$review" "$signed" > "$dir/report.json"
  fi
  exit "$code"
fi
if [ "$1 $2" = "run scope-id" ]; then echo "scope:test:agent-1:0123456789abcdef"; exit 0; fi
# The steps around the canary: each records that it ran (and with which key names), and passes unless told not to.
if [ "$1 $2 $3 $4" = "run canary -- preflight" ]; then echo "preflight $*" >> "$HOME/ran"; exit "\${FAKE_PREFLIGHT_EXIT:-0}"; fi
if [ "$1 $2 $3 $4" = "run canary -- smoke" ]; then echo "smoke $* probe=\${CANARY_PROBE_KEY:+set}" >> "$HOME/ran"; exit "\${FAKE_SMOKE_EXIT:-0}"; fi
if [ "$1 $2 $3 $4 $5" = "run canary -- stepped --prepare" ]; then echo "prepare $*" >> "$HOME/ran"; exit 0; fi
if [ "$1 $2 $3 $4" = "run canary -- backfill" ]; then echo "backfill $*" >> "$HOME/ran"; exit 0; fi
if [ "$1 $2" = "run canary" ]; then
  echo "canary $4 loadtest=\${CANARY_LOADTEST_KEY:+set} checklist=\${ROLLOUT_CHECKLIST:-} phase=\${ROLLOUT_CONFIRMED_PHASE_TASKS:-}" >> "$HOME/ran"
  stack=""; prev=""
  for arg in "$@"; do [ "$prev" = "--stack" ] && stack=$arg; prev=$arg; done
  mkdir -p "reports/$stack"
  case "$FAKE_CANARY" in
    promote)
      sed -i 's/^  memory-rollout:enableContext7Memory: false$/  memory-rollout:enableContext7Memory: true\\n  memory-rollout:pinnedCommit: 0123abc/' Pulumi.production.yaml
      echo '{"decision":"promote"}' > "reports/$stack/report.json"; exit 0 ;;
    rollback)
      sed -i 's/enableContext7Memory: true$/enableContext7Memory: false/' "Pulumi.$stack.yaml"
      echo '{"decision":"rollback"}' > "reports/$stack/report.json"; exit "\${FAKE_CANARY_EXIT:-1}" ;;
    aborted)
      echo '{"decision":null}' > "reports/$stack/report.json"; exit 3 ;;
    signoff)
      printf '{"summary":{"schemaVersion":1,"stack":"%s","deployId":"0123abc","serviceId":null,"outcome":"signed_off","startedAt":"%s","finishedAt":"%s"}}\\n' "$stack" "$FAKE_SIGNED_OFF_AT" "$FAKE_SIGNED_OFF_AT" > "reports/$stack/report.json"
      echo '## Sign-Off' > "reports/$stack/signoff.md"; exit 0 ;;
  esac
fi
echo "npm stand-in: unexpected arguments: $*" >&2; exit 127
`;
  const PULUMI_STUB = `#!/usr/bin/env bash
if [ "$1 $2 $3" = "stack output callerKeySecrets" ]; then echo '{"canary":"k1","canary-probe":"k2","canary-loadtest":"k3"}'; exit 0; fi
# FAKE_NO_SERVICE_YET: the first read of serviceUrl fails, as before the first pulumi up creates the service.
if [ "$1 $2 $3" = "stack output serviceUrl" ] && [ -n "\${FAKE_NO_SERVICE_YET:-}" ] && [ ! -e "$HOME/service-created" ]; then
  touch "$HOME/service-created"; echo "error: current stack does not have output property 'serviceUrl'" >&2; exit 1
fi
if [ "$1 $2" = "stack output" ]; then echo "http://127.0.0.1:9"; exit 0; fi
if [ "$1 $2" = "config get" ]; then echo "stand-in-secret"; exit 0; fi
echo "pulumi stand-in: unexpected arguments: $*" >&2; exit 127
`;
  let scratch = '';
  afterEach(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    scratch = '';
  });

  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', ...args], { cwd, encoding: 'utf8' }).trim();

  /**
   * A fresh scratch repository for one test (its directory in `scratch`, removed after the test): a copy of one made
   * once per file for each value of the production flag (git init, commit and push: eight git processes), its
   * origin remote pointed at its own copy of origin.
   */
  const templates = new Map<boolean, string>();
  afterAll(() => {
    for (const dir of templates.values()) rmSync(dir, { recursive: true, force: true });
  });
  function setUp(productionFlag: boolean) {
    let template = templates.get(productionFlag);
    if (!template) {
      template = makeScratch(productionFlag);
      templates.set(productionFlag, template);
    }
    scratch = mkdtempSync(join(tmpdir(), 'rollout-workflow-'));
    cpSync(template, scratch, { recursive: true });
    git(join(scratch, 'work'), 'remote', 'set-url', 'origin', join(scratch, 'origin.git'));
    return repoIn(scratch);
  }

  function makeScratch(productionFlag: boolean): string {
    const scratch = mkdtempSync(join(tmpdir(), 'rollout-workflow-'));
    const origin = join(scratch, 'origin.git');
    const work = join(scratch, 'work');
    const bin = join(scratch, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'npm'), NPM_STUB);
    writeFileSync(join(bin, 'pulumi'), PULUMI_STUB);
    chmodSync(join(bin, 'npm'), 0o755);
    chmodSync(join(bin, 'pulumi'), 0o755);
    execFileSync('git', ['init', '--quiet', '--bare', '-b', 'main', origin]);
    mkdirSync(join(work, 'canary', 'ci'), { recursive: true });
    git(scratch, 'init', '--quiet', '-b', 'main', work);
    copyFileSync('canary/ci/commit-result.sh', join(work, 'canary/ci/commit-result.sh'));
    copyFileSync('canary/ci/commit-review.sh', join(work, 'canary/ci/commit-review.sh'));
    copyFileSync('Pulumi.staging.yaml', join(work, 'Pulumi.staging.yaml'));
    const production = readFileSync('Pulumi.production.yaml', 'utf8');
    writeFileSync(
      join(work, 'Pulumi.production.yaml'),
      production.replace(/enableContext7Memory: (true|false)$/m, `enableContext7Memory: ${productionFlag}`),
    );
    writeFileSync(join(work, '.gitignore'), 'reports/\n');
    git(work, 'add', '-A');
    git(work, 'commit', '--quiet', '-m', 'initial');
    git(work, 'remote', 'add', 'origin', origin);
    git(work, 'push', '--quiet', 'origin', 'main');
    return scratch;
  }

  /** The scratch repository made by setUp in `dir` (or a copy of one): its paths, environment and views of origin. */
  function repoIn(dir: string) {
    const origin = join(dir, 'origin.git');
    const work = join(dir, 'work');
    const bin = join(dir, 'bin');
    const scratch = dir;
    const env = { PATH: `${bin}:${process.env.PATH}`, HOME: scratch, GITHUB_REF_NAME: 'main', GIT_CONFIG_NOSYSTEM: '1', REPO_ROOT: process.cwd() };
    const originFile = (name: string) => git(scratch, '--git-dir', origin, 'show', `main:${name}`);
    const originLog = () => git(scratch, '--git-dir', origin, 'log', '--format=%s', 'main');
    /** What the scheduled job checks out: a fresh clone of origin, so only what was pushed counts. */
    const checkout = () => {
      const clone = mkdtempSync(join(scratch, 'checkout-'));
      git(scratch, 'clone', '--quiet', '-b', 'main', origin, clone);
      return clone;
    };
    return { work, env, originFile, originLog, scratch, checkout };
  }

  const run = (job: 'staging' | 'production', repo: ReturnType<typeof setUp>, canary: string, exit?: number, env: Record<string, string> = {}, inputs: Record<string, string | boolean> = {}) =>
    runJob(workflow.jobs[job]!.steps, {
      cwd: repo.work,
      env: { ...repo.env, FAKE_CANARY: canary, ...(exit === undefined ? {} : { FAKE_CANARY_EXIT: String(exit) }), ...env },
      inputs,
    });
  const ran = (repo: ReturnType<typeof setUp>) => readFileSync(join(repo.scratch, 'ran'), 'utf8').trim().split('\n');

  it('staging runs preflight, pulumi up, the smoke suite, then its canary with the synthetic traffic key and the checklist', () => {
    const repo = setUp(false);
    const result = run('staging', repo, 'promote');
    expect(result.status).toBe('success');
    const steps = ran(repo);
    expect(steps[0]).toMatch(/^preflight run canary -- preflight --stack staging/);
    expect(steps[1]).toMatch(/^smoke run canary -- smoke --stack staging .*probe=set$/);
    expect(steps[2]).toBe('canary run loadtest=set checklist=recorded phase=');
  });

  it('a failing preflight or smoke suite stops staging before its canary, and nothing is pushed', () => {
    for (const failing of ['FAKE_PREFLIGHT_EXIT', 'FAKE_SMOKE_EXIT']) {
      const repo = setUp(false);
      const result = run('staging', repo, 'promote', undefined, { [failing]: failing === 'FAKE_PREFLIGHT_EXIT' ? '10' : '1' });
      expect(result.status, failing).toBe('failure');
      expect(ran(repo).some((line) => line.startsWith('canary '))).toBe(false);
      expect(result.steps.find((s) => s.label.startsWith('Commit what the canary wrote'))?.status).toBe('skipped');
      expect(repo.originLog()).toBe('initial');
      rmSync(repo.scratch, { recursive: true, force: true });
    }
  });

  it('production prepares exposure at 0 % before pulumi up, smokes, then runs the stepped canary (no synthetic traffic)', () => {
    const repo = setUp(true);
    const result = run('production', repo, 'signoff', undefined, { FAKE_SIGNED_OFF_AT: new Date().toISOString() });
    expect(result.status).toBe('success');
    const steps = ran(repo);
    expect(steps[0]).toMatch(/^preflight run canary -- preflight --stack production/);
    expect(steps[1]).toMatch(/^prepare run canary -- stepped --prepare --prepare-percent 0 --stack production --base-url http:\/\/127\.0\.0\.1:9/);
    expect(steps[2]).toMatch(/^smoke run canary -- smoke --stack production/);
    expect(steps[3]).toBe('canary stepped loadtest= checklist=recorded phase=');
    // The backfill is an input, off by default.
    expect(steps.some((line) => line.startsWith('backfill'))).toBe(false);
    expect(result.steps.find((s) => s.label.startsWith('Backfill'))?.status).toBe('skipped');
  });

  it('the backfill input runs Step 4 after a sign-off, never after a rollback, and the checklist inputs reach the canary', () => {
    const signedOff = setUp(true);
    const inputs = { backfill: true, phase_tasks_confirmed_by: 'alice' };
    const ok = run('production', signedOff, 'signoff', undefined, { FAKE_SIGNED_OFF_AT: new Date().toISOString() }, inputs);
    expect(ok.status).toBe('success');
    expect(ran(signedOff)).toContainEqual(expect.stringMatching(/^backfill run canary -- backfill --base-url http:\/\/127\.0\.0\.1:9 --report-dir reports\/production/));
    expect(ran(signedOff)).toContain('canary stepped loadtest= checklist=recorded phase=alice');
    rmSync(signedOff.scratch, { recursive: true, force: true });
    const rolledBack = setUp(true);
    const failed = run('production', rolledBack, 'rollback', 1, {}, inputs);
    expect(failed.status).toBe('failure');
    expect(failed.steps.find((s) => s.label.startsWith('Backfill'))?.status).toBe('skipped');
  });

  it('a production service that does not exist yet stops the job at the prepare step: it is created with the flag off first', () => {
    const repo = setUp(true);
    const result = run('production', repo, 'signoff', undefined, { FAKE_SIGNED_OFF_AT: new Date().toISOString(), FAKE_NO_SERVICE_YET: '1' });
    expect(result.status).toBe('failure');
    const prepare = result.steps.find((s) => s.label.startsWith('Prepare the stepped rollout'));
    expect(prepare?.status).toBe('failure');
    expect(prepare?.output).toMatch(/production's service does not exist yet: create or adopt it with the flag off first/);
    expect(ran(repo).some((line) => line.startsWith('prepare') || line.startsWith('canary'))).toBe(false);
    expect(repo.originLog()).toBe('initial');
  });

  it('a staging canary that rolls back pushes the staging latch, and the job still fails', () => {
    const repo = setUp(false);
    const result = run('staging', repo, 'rollback');
    expect(result.status).toBe('failure');
    expect(result.steps.find((s) => s.label.startsWith('Commit what the canary wrote'))?.status).toBe('success');
    expect(repo.originFile('Pulumi.staging.yaml')).toMatch(/^  memory-rollout:enableContext7Memory: false$/m);
    expect(repo.originLog()).toMatch(/^Roll back Context7 memory in staging/m);
    expect(repo.originFile('Pulumi.production.yaml')).toMatch(/enableContext7Memory: false$/m);
  });

  it('a staging canary that promotes pushes the promotion with the staging report the guard reads', () => {
    const repo = setUp(false);
    const result = run('staging', repo, 'promote');
    expect(result.status).toBe('success');
    expect(repo.originFile('Pulumi.production.yaml')).toMatch(/enableContext7Memory: true\n  memory-rollout:pinnedCommit: 0123abc/);
    expect(JSON.parse(repo.originFile('reports/staging/report.json'))).toEqual({ decision: 'promote' });
    expect(repo.originLog()).toMatch(/^Promote \w+ to production: staging canary passed/m);
  });

  it.each([1, 4])('a production canary that rolls back (exit %i) pushes the production latch', (exit) => {
    const repo = setUp(true);
    const result = run('production', repo, 'rollback', exit);
    expect(result.status).toBe('failure');
    expect(repo.originFile('Pulumi.production.yaml')).toMatch(/^  memory-rollout:enableContext7Memory: false$/m);
    expect(repo.originLog().split('\n')[0]).toMatch(exit === 4 ? /rollback NOT verified/ : /rollback verified/);
  });

  it('a canary that changed no stack file (aborted) pushes nothing and the commit step passes', () => {
    const repo = setUp(true);
    const result = run('production', repo, 'aborted');
    expect(result.status).toBe('failure');
    expect(result.steps.find((s) => s.label.startsWith('Commit what the canary wrote'))?.status).toBe('success');
    expect(repo.originLog()).toBe('initial');
  });

  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  const runReview = (repo: ReturnType<typeof setUp>, reviewExit = 0) =>
    runJob(workflow.jobs.review!.steps, { cwd: repo.checkout(), env: { ...repo.env, FAKE_REVIEW_EXIT: String(reviewExit) }, timeoutMs: 120_000 });
  const stepOf = (result: ReturnType<typeof runJob>, prefix: string) => result.steps.find((s) => s.label.startsWith(prefix));
  /**
   * The production canary signed off two days ago (its sign-off day, then one complete day: Day 1 is due today).
   * The production job that signs off runs once, for the first test that asks (seconds of processes); each test
   * then gets its own copy of that scratch repository, origin included, so what one pushes no other sees.
   */
  let signedOffTemplate: { dir: string; signedOffAt: string } | undefined;
  afterAll(() => {
    if (signedOffTemplate) rmSync(signedOffTemplate.dir, { recursive: true, force: true });
  });
  function signedOff() {
    if (!signedOffTemplate) {
      const repo = setUp(true);
      const signedOffAt = `${day(-2)}T12:00:00.000Z`;
      const result = runJob(workflow.jobs.production!.steps, { cwd: repo.work, env: { ...repo.env, FAKE_CANARY: 'signoff', FAKE_SIGNED_OFF_AT: signedOffAt } });
      expect(result.status).toBe('success');
      signedOffTemplate = { dir: repo.scratch, signedOffAt };
      scratch = ''; // kept for the next tests: afterAll removes it
    }
    scratch = mkdtempSync(join(tmpdir(), 'rollout-workflow-'));
    cpSync(signedOffTemplate.dir, scratch, { recursive: true });
    git(join(scratch, 'work'), 'remote', 'set-url', 'origin', join(scratch, 'origin.git'));
    return { repo: repoIn(scratch), signedOffAt: signedOffTemplate.signedOffAt };
  }

  it('a production sign-off changes no stack file, and its report is pushed for the reviews', () => {
    const { repo, signedOffAt } = signedOff();
    expect(JSON.parse(repo.originFile('reports/production/report.json')).summary).toMatchObject({ outcome: 'signed_off', finishedAt: signedOffAt });
    expect(repo.originFile('reports/production/signoff.md')).toBe('## Sign-Off');
    expect(repo.originLog().split('\n')[0]).toMatch(/^Record the production sign-off of \w+/);
  });

  it('the daily review runs the review that is due, pushes its report, and does not run it twice', () => {
    const { repo, signedOffAt } = signedOff();
    const first = runReview(repo);
    expect(first.status).toBe('success');
    expect(readFileSync(join(repo.scratch, 'evaluate-args'), 'utf8')).toContain(
      `--days 1 --until ${day(0)} --review day-1 --signed-off-at ${signedOffAt} --report-dir reports/production/reviews/day-1`,
    );
    expect(JSON.parse(repo.originFile('reports/production/reviews/day-1/report.json'))).toEqual({ summary: { review: 'day-1', signedOffAt } });
    expect(repo.originLog().split('\n')[0]).toBe('Record the day-1 post-rollout review of production: pass');

    const second = runReview(repo);
    expect(second.status).toBe('success');
    expect(stepOf(second, 'Post-rollout review')?.status).toBe('skipped');
    expect(stepOf(second, "Commit the review's report")?.status).toBe('skipped');
    expect(repo.originLog().split('\n')[0]).toBe('Record the day-1 post-rollout review of production: pass');
  }, 240_000);

  it('a failing review is still recorded, and the job fails', () => {
    const { repo } = signedOff();
    const result = runReview(repo, 1);
    expect(result.status).toBe('failure');
    expect(stepOf(result, "Commit the review's report")?.status).toBe('success');
    expect(repo.originLog().split('\n')[0]).toBe('Record the day-1 post-rollout review of production: fail');
  }, 240_000);

  it('an unreadable history records nothing (the review stays due), and the job fails', () => {
    const { repo } = signedOff();
    const before = repo.originLog();
    const result = runReview(repo, 3);
    expect(result.status).toBe('failure');
    expect(stepOf(result, "Commit the review's report")?.output).toMatch(/wrote no report: nothing to commit/);
    expect(repo.originLog()).toBe(before);
  }, 240_000);

  it('without a production sign-off no review runs', () => {
    const repo = setUp(true);
    const result = runReview(repo);
    expect(result.status).toBe('success');
    expect(stepOf(result, 'Which review is due')?.output).toMatch(/no production sign-off/);
    expect(stepOf(result, 'Post-rollout review')?.status).toBe('skipped');
    expect(repo.originLog()).toBe('initial');
  }, 240_000);
});
