/**
 * When turning the flag off does not fix it. The rollback is two resumable steps:
 *   1. the flag rollback (rollback.ts): flag off, the same commit redeployed, latched, verified;
 *   2. only if that verification shows the fault persisting AND the analysed deploy changed the commit
 *      (Render's deploy list: its commit differs from the deploy live before it): the code rollback.
 *      Render's rollback endpoint returns to that previous deploy, the flag stays off, the stack file
 *      pins the commit rolled back to, and the service is verified again.
 * Every step is saved in the state file before the next begins: a rerun after a crash continues and
 * neither repeats nor skips one (a rollback Render accepted but we never recorded is adopted).
 *
 * Env vars: Render documents that a rollback runs with the TARGET deploy's env vars (the service's
 * current ones are kept for later deploys). A target from before the rollout normally had the flag off,
 * but not necessarily; so the flag is read from the rolled-back service, and if it is on, the same
 * commit is deployed once more the ordinary way, which uses the current env vars (flag off).
 */
import { FLAG_KEY, PINNED_COMMIT_KEY, readStackConfig, setStackConfig } from './stack-file';
import { executeRollback, RECENT_DEPLOYS, type ListedDeploy, type RollbackDeps } from './rollback';
import type { CodeRollbackPlan, DeployStep } from './state-file';
import type { HttpProbe } from '../sources/http';

export interface RollbackStepsDeps extends RollbackDeps {
  stack: 'staging' | 'production';
  /** ENABLE_CONTEXT7_MEMORY as the live service reports it; undefined when it cannot be read */
  readFlag: () => Promise<boolean | undefined>;
}

export interface RollbackStepsResult {
  verified: boolean;
  /** one line for the operator and the webhook: what was rolled back and whether it is verified */
  summary: string;
}

const COMMIT_PATTERN = /^[0-9a-f]{7,40}$/;

/** Flag rollback, then (if needed and possible) code rollback. */
export async function executeRollbackSteps(deps: RollbackStepsDeps): Promise<RollbackStepsResult> {
  const { state } = deps;
  const stamp = () => deps.now().toISOString();
  if (!state.codeRollback) {
    const flag = await executeRollback(deps);
    const progress = state.rollback ?? {};
    const commit = state.deployId ?? 'the analysed commit';
    if (flag.verified) {
      deps.record('flag-rollback', true, `fixed by the flag alone: ENABLE_CONTEXT7_MEMORY=false at ${commit}, verified; code not rolled back`);
      deps.save();
      return { verified: true, summary: 'rolled back and verified: flag off (the code was not rolled back: not needed)' };
    }
    // Only a flag rollback that went through and was then watched can show that the fault is in the code.
    const faultPersists = progress.deployLiveAt !== undefined && progress.latchedAt !== undefined && flag.verification !== undefined && !flag.verification.ok;
    if (!faultPersists) {
      deps.record('flag-rollback', false, `not completed (${progress.verificationFailed ?? 'rollback incomplete'}): no code rollback on top of an unfinished flag rollback`);
      deps.save();
      return { verified: false, summary: 'rollback NOT verified: the flag rollback did not complete; act by hand' };
    }
    state.codeRollback = { faultPersistedAt: stamp() };
    deps.record('flag-rollback', false, `the fault persists with ENABLE_CONTEXT7_MEMORY=false (${progress.verificationFailed}): rolling the code back`);
    deps.save();
  }
  return rollBackCode(deps);
}

async function rollBackCode(deps: RollbackStepsDeps): Promise<RollbackStepsResult> {
  const { state, render, serviceId } = deps;
  const step = state.codeRollback!;
  const stamp = () => deps.now().toISOString();
  const notVerified = (why: string): RollbackStepsResult => {
    step.verificationFailed = why;
    deps.save();
    return { verified: false, summary: `rollback NOT verified: ${why}; act by hand` };
  };
  if (step.verifiedAt) return { verified: true, summary: verifiedSummary(step.plan) };
  // Reaching here means the flag rollback deployed through Render, so both are set.
  if (!render || !serviceId) return notVerified('the fault persists with the flag off, and there is no Render access to roll the code back');
  const rollbackDeploy = render.rollbackDeploy?.bind(render);
  if (!rollbackDeploy || !render.listDeploys) return notVerified('the fault persists with the flag off, and this Render access cannot list or roll back deploys');

  let platformOk = true;
  try {
    if (!step.plan) {
      const deploys = await render.listDeploys(serviceId, { limit: RECENT_DEPLOYS });
      step.plan = planCodeRollback(deploys, state.deployId, state.rollback?.renderDeployId);
      deps.record('code-rollback-plan', step.plan.kind !== 'unknown', step.plan.detail);
      deps.save();
    }
    const plan = step.plan;
    if (plan.kind !== 'roll_back') {
      const why =
        plan.kind === 'same_commit'
          ? `the fault persists with the flag off, and the code was not changed by this rollout (${plan.detail}): no code to roll back`
          : `the fault persists with the flag off, and the code could not be rolled back (${plan.detail})`;
      deps.record('code-rollback', false, why);
      return notVerified(why);
    }
    const target = plan.targetCommit!;
    await deployOnce(deps, (step.rollbackDeploy ??= {}), {
      label: 'code-rollback-deploy',
      what: `rollback to deploy ${plan.targetDeployId} (commit ${target})`,
      request: () => rollbackDeploy(serviceId, plan.targetDeployId!),
      isOurs: (d) => d.commit?.id === undefined || sameCommit(d.commit.id, target),
    });
    if (!step.flagCheckedAt) {
      if ((await deps.readFlag()) === true) {
        step.flagRedeploy = {};
        deps.record('flag-check', false, `the rolled-back deploy runs with ENABLE_CONTEXT7_MEMORY on (Render restores the target deploy's env vars): deploying commit ${target} again with the current ones (flag off)`);
      }
      step.flagCheckedAt = stamp();
      deps.save();
    }
    if (step.flagRedeploy) {
      await deployOnce(deps, step.flagRedeploy, {
        label: 'flag-redeploy',
        what: `commit ${target} with ENABLE_CONTEXT7_MEMORY=false`,
        request: () => render.triggerDeploy(serviceId, { clearCache: false, commitId: target }),
        isOurs: (d) => d.commit?.id === undefined || sameCommit(d.commit.id, target),
      });
    }
  } catch (error) {
    platformOk = false;
    deps.record('render', false, `code rollback through Render failed: ${(error as Error).message}`);
    deps.save();
  }

  const plan = step.plan;
  if (platformOk && plan?.kind === 'roll_back' && !step.pinnedAt) {
    try {
      deps.record('pin-commit', true, pinStackFile(deps.stack, deps.stackFile, plan.targetCommit!));
      step.pinnedAt = stamp();
      deps.save();
    } catch (error) {
      deps.record('pin-commit', false, `could not pin ${plan.targetCommit} in ${deps.stackFile}: ${(error as Error).message}`);
    }
  }
  if (!platformOk || plan?.kind !== 'roll_back') return notVerified('the fault persists with the flag off, and the code rollback through Render failed');

  const verification = await deps.verify();
  for (const check of verification.checks) deps.record('verify', check.ok, `${check.name}: ${check.detail}`);
  const failed = verification.checks.filter((c) => !c.ok).map((c) => c.name).join('; ');
  if (!verification.ok || !step.pinnedAt) {
    const why = `code rolled back to ${plan.targetCommit} (deploy ${step.rollbackDeploy?.deployId}), flag off, and the fault persists (${failed || 'stack file not pinned'})`;
    deps.record('code-rollback', false, why);
    return notVerified(why);
  }
  step.verifiedAt = stamp();
  deps.record('code-rollback', true, `code rolled back to ${plan.targetCommit} (deploy ${step.rollbackDeploy?.deployId}, from ${state.deployId}), flag off, verified`);
  deps.save();
  return { verified: true, summary: verifiedSummary(plan) };
}

function verifiedSummary(plan: CodeRollbackPlan | undefined): string {
  return `rolled back and verified: flag off and code rolled back to ${plan?.targetCommit ?? 'the previous deploy'}`;
}

/**
 * Production deploys only pinnedCommit, so it is pinned to the commit rolled back to (with the flag still
 * latched off): the next `pulumi up` keeps what is live. Staging follows its branch head (autoDeploy) and
 * is pinned only if its stack file already pins a commit: pinning it here would silently stop staging from
 * following the branch, and the fix is expected to arrive as a new push (which deploys with the flag off).
 */
export function pinStackFile(stack: 'staging' | 'production', stackFile: string, commit: string): string {
  if (stack === 'staging' && readStackConfig(stackFile, PINNED_COMMIT_KEY) === undefined) {
    return `staging follows its branch head: ${stackFile} not pinned; the next push deploys the head again, with ${FLAG_KEY} latched false`;
  }
  const changed = setStackConfig(stackFile, { [PINNED_COMMIT_KEY]: commit, [FLAG_KEY]: false });
  return `${PINNED_COMMIT_KEY}: ${commit} in ${stackFile}${changed.length ? '' : ' (already set)'}`;
}

/**
 * Which deploy to roll back to, from Render's deploy list (newest first). The analysed deploy is the newest
 * deploy of the analysed commit that went live, older than our flag rollback's deploy; the target is the
 * deploy that was live before it. Pure: the decision is a function of what Render listed.
 */
export function planCodeRollback(deploys: readonly ListedDeploy[], analysedCommit: string | null, flagRollbackDeployId: string | undefined): CodeRollbackPlan {
  if (!analysedCommit || !COMMIT_PATTERN.test(analysedCommit)) {
    return { kind: 'unknown', detail: `the service reported no commit (${analysedCommit ?? 'none'}), so whether this rollout changed the code is unknown` };
  }
  const ours = flagRollbackDeployId ? deploys.findIndex((d) => d.id === flagRollbackDeployId) : -1;
  // Without our flag-off deploy as a landmark, it could pass for the analysed one (same commit).
  if (flagRollbackDeployId && ours < 0) {
    return { kind: 'unknown', detail: `the flag rollback's deploy ${flagRollbackDeployId} is not among the ${deploys.length} newest deploys` };
  }
  const older = deploys.slice(ours + 1);
  const analysedAt = older.findIndex((d) => wentLive(d) && sameCommit(d.commit?.id, analysedCommit));
  if (analysedAt < 0) {
    return { kind: 'unknown', detail: `no deploy of commit ${analysedCommit} that went live among the ${deploys.length} newest deploys` };
  }
  const analysed = older[analysedAt]!;
  const previous = older.slice(analysedAt + 1).find(wentLive);
  if (!previous?.id || !previous.commit?.id) {
    return { kind: 'unknown', detail: `no deploy went live before ${analysed.id} among the ${deploys.length} newest: nothing to roll back to` };
  }
  if (sameCommit(previous.commit.id, analysedCommit)) {
    return {
      kind: 'same_commit',
      detail: `deploy ${analysed.id} runs commit ${analysedCommit}, as did ${previous.id}, the deploy live before it`,
      analysedDeployId: analysed.id!,
    };
  }
  return {
    kind: 'roll_back',
    detail: `deploy ${analysed.id} changed the commit from ${previous.commit.id} to ${analysedCommit}: rolling back to deploy ${previous.id}`,
    analysedDeployId: analysed.id!,
    targetDeployId: previous.id,
    targetCommit: previous.commit.id,
  };
}

function wentLive(deploy: ListedDeploy): boolean {
  // `deactivated`: it was live, then replaced by a newer deploy.
  return deploy.status === 'live' || deploy.status === 'deactivated';
}

/** Full and abbreviated SHAs name the same commit. */
export function sameCommit(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return short === long || (short.length >= 7 && long.startsWith(short));
}

interface DeployRequest {
  label: string;
  what: string;
  request: () => Promise<{ id?: string }>;
  /** is a deploy that appeared since the request the one we asked for */
  isOurs: (deploy: ListedDeploy) => boolean;
}

/** Requests a deploy at most once across reruns, then waits for it to go live; every stage saved. */
async function deployOnce(deps: RollbackStepsDeps, step: DeployStep, request: DeployRequest): Promise<void> {
  const render = deps.render!;
  const serviceId = deps.serviceId!;
  const stamp = () => deps.now().toISOString();
  const recent = async (): Promise<ListedDeploy[] | undefined> => {
    try {
      return await render.listDeploys?.(serviceId, { limit: RECENT_DEPLOYS });
    } catch (error) {
      deps.record('list-deploys', false, `could not list recent deploys: ${(error as Error).message}`);
      return undefined;
    }
  };
  if (!step.deployId && step.requestedAt && step.deploysBefore) {
    // A run crashed between Render accepting the request and saving the deploy's id: adopt that deploy.
    const before = new Set(step.deploysBefore);
    const adopted = (await recent())?.find((d) => d.id !== undefined && !before.has(d.id) && request.isOurs(d));
    if (adopted) {
      step.deployId = adopted.id!;
      deps.record(`${request.label}-adopted`, true, `deploy ${adopted.id} (${request.what}), requested by the interrupted run: not requested again`);
      deps.save();
    }
  }
  if (!step.deployId) {
    // If the listing fails, a rerun cannot adopt and asks again: a second deploy of the same target is
    // harmless, a crash that leaves the service unrolled-back is not.
    const before = await recent();
    if (before) step.deploysBefore = before.flatMap((d) => (d.id ? [d.id] : []));
    else delete step.deploysBefore;
    step.requestedAt = stamp();
    deps.save();
    const deploy = await request.request();
    if (!deploy.id) throw new Error(`Render accepted the ${request.what} without a deploy id`);
    step.deployId = deploy.id;
    deps.record(request.label, true, `deploy ${deploy.id}: ${request.what}`);
    deps.save();
  }
  if (!step.liveAt) {
    await render.waitForDeploy(serviceId, step.deployId, {
      timeoutMs: deps.deployTimeoutMs,
      pollIntervalMs: deps.deployPollMs,
      onProgress: (deploy) => deps.record('deploy-status', true, `deploy ${step.deployId}: ${deploy.status}`),
    });
    step.liveAt = stamp();
    deps.record(`${request.label}-live`, true, `deploy ${step.deployId} is live (${request.what})`);
    deps.save();
  }
}

/** ENABLE_CONTEXT7_MEMORY as the service's /api/config reports it (undefined when unreadable). */
export async function readServiceFlag(baseUrl: string, probe: HttpProbe, timeoutMs: number): Promise<boolean | undefined> {
  const answer = await probe(`${baseUrl.replace(/\/+$/, '')}/api/config`, { timeoutMs });
  const flag = (answer.body as { enableContext7Memory?: unknown } | undefined)?.enableContext7Memory;
  return answer.status === 200 && typeof flag === 'boolean' ? flag : undefined;
}
