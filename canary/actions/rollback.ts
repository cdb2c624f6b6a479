/**
 * The runbook's rollback as resumable steps: flag off through the Render API, redeploy and wait
 * for live, latch the flag off in the stack file, verify. Each finished step is recorded in the
 * state file before the next begins, so a rerun after a crash continues and never repeats one.
 */
import type { CanaryState } from './state-file';
import { FLAG_KEY, setStackConfig } from './stack-file';
import type { VerificationResult } from './verify';

/** The part of render/client.ts RenderClient the canary uses. */
export interface RenderPort {
  setEnvVar(serviceId: string, key: string, value: string): Promise<unknown>;
  triggerDeploy(serviceId: string, options?: { clearCache?: boolean; commitId?: string }): Promise<{ id?: string; status?: string }>;
  waitForDeploy(
    serviceId: string,
    deployId: string,
    options: { timeoutMs?: number; pollIntervalMs?: number; onProgress?: (deploy: { status?: string }) => void },
  ): Promise<{ status?: string }>;
  getService?(serviceId: string): Promise<unknown>;
  /** Newest first. Lets a rerun find a deploy that a crashed run requested but did not record. */
  listDeploys?(serviceId: string, options?: { limit?: number }): Promise<ListedDeploy[]>;
  /** POST /services/{id}/rollback: back to an earlier deploy's build (the code rollback, code-rollback.ts). */
  rollbackDeploy?(serviceId: string, deployId: string): Promise<ListedDeploy>;
}

/** The fields of Render's deploy the canary reads. */
export interface ListedDeploy {
  id?: string;
  status?: string;
  trigger?: string;
  commit?: { id?: string };
}

/** How far back to look for our deploy: Render lists newest first, so a handful is plenty. */
export const RECENT_DEPLOYS = 20;

export interface RollbackDeps {
  state: CanaryState;
  save: () => void;
  render: RenderPort | undefined;
  serviceId: string | null;
  stackFile: string;
  deployTimeoutMs: number;
  deployPollMs: number;
  verify: () => Promise<VerificationResult>;
  record: (action: string, ok: boolean, detail: string) => void;
  now: () => Date;
}

export interface RollbackResult {
  verified: boolean;
  verification?: VerificationResult;
}

export async function executeRollback(deps: RollbackDeps): Promise<RollbackResult> {
  const { state, render, serviceId } = deps;
  const progress = (state.rollback ??= {});
  const stamp = () => deps.now().toISOString();
  let platformOk = true;

  if (!render || !serviceId) {
    platformOk = false;
    deps.record('render', false, 'no Render access (needs --render-service-id and RENDER_API_KEY): set ENABLE_CONTEXT7_MEMORY=false in the dashboard and redeploy');
  } else {
    try {
      if (!progress.envSetAt) {
        await render.setEnvVar(serviceId, 'ENABLE_CONTEXT7_MEMORY', 'false');
        progress.envSetAt = stamp();
        deps.record('set-env', true, `ENABLE_CONTEXT7_MEMORY=false on ${serviceId}`);
        deps.save();
      }
      if (!progress.renderDeployId && progress.deployRequestedAt && progress.deploysBefore && render.listDeploys) {
        // A run crashed between Render accepting the deploy and saving its id: a deploy that was not there
        // before the request is ours (it was created after the flag was set off). Never deploy twice.
        const before = new Set(progress.deploysBefore);
        const ours = (await recentDeployIds(render, serviceId, deps))?.find((id) => !before.has(id));
        if (ours) {
          progress.renderDeployId = ours;
          deps.record('adopt-deploy', true, `deploy ${ours}, requested by the interrupted run: not triggered again`);
          deps.save();
        }
      }
      if (!progress.renderDeployId) {
        // Redeploy the very commit under analysis, only with the flag off: never a newer one.
        const commitId = state.deployId && /^[0-9a-f]{7,40}$/.test(state.deployId) ? state.deployId : undefined;
        const before = await recentDeployIds(render, serviceId, deps);
        if (before) progress.deploysBefore = before;
        else delete progress.deploysBefore;
        progress.deployRequestedAt = stamp();
        deps.save();
        const deploy = await render.triggerDeploy(serviceId, { clearCache: false, ...(commitId ? { commitId } : {}) });
        if (!deploy.id) throw new Error('Render accepted the deploy without an id');
        progress.renderDeployId = deploy.id;
        deps.record('trigger-deploy', true, `deploy ${deploy.id}`);
        deps.save();
      }
      if (!progress.deployLiveAt) {
        await render.waitForDeploy(serviceId, progress.renderDeployId, {
          timeoutMs: deps.deployTimeoutMs,
          pollIntervalMs: deps.deployPollMs,
          onProgress: (deploy) => deps.record('deploy-status', true, `deploy ${progress.renderDeployId}: ${deploy.status}`),
        });
        progress.deployLiveAt = stamp();
        deps.record('deploy-live', true, `deploy ${progress.renderDeployId} is live`);
        deps.save();
      }
    } catch (error) {
      platformOk = false;
      deps.record('render', false, `rollback through Render failed: ${(error as Error).message}`);
      deps.save();
    }
  }

  // Latch even when Render failed: the next `pulumi up` must not turn the flag back on.
  if (!progress.latchedAt) {
    try {
      const changed = setStackConfig(deps.stackFile, { [FLAG_KEY]: false });
      progress.latchedAt = stamp();
      deps.record('latch', true, `${FLAG_KEY}: false in ${deps.stackFile}${changed.length ? '' : ' (already false)'}`);
      deps.save();
    } catch (error) {
      deps.record('latch', false, `could not latch the flag in ${deps.stackFile}: ${(error as Error).message}`);
    }
  }

  const verification = await deps.verify();
  for (const check of verification.checks) deps.record('verify', check.ok, `${check.name}: ${check.detail}`);
  const verified = platformOk && verification.ok && progress.latchedAt !== undefined;
  if (verified) progress.verifiedAt = stamp();
  else progress.verificationFailed = verification.checks.filter((c) => !c.ok).map((c) => c.name).join('; ') || 'rollback incomplete';
  deps.save();
  return { verified, verification };
}

/** Best effort: a listing that fails must not stop the rollback itself (a second flag-off deploy is harmless). */
async function recentDeployIds(render: RenderPort, serviceId: string, deps: RollbackDeps): Promise<string[] | undefined> {
  if (!render.listDeploys) return undefined;
  try {
    return (await render.listDeploys(serviceId, { limit: RECENT_DEPLOYS })).flatMap((d) => (d.id ? [d.id] : []));
  } catch (error) {
    deps.record('list-deploys', false, `could not list recent deploys: ${(error as Error).message}`);
    return undefined;
  }
}
