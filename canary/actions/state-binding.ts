/**
 * What a state file is bound to, and the checks a run makes before it trusts one: the stack, the Render service,
 * the base URL and the analysed deploy (id and commit). A state file written for another service, another deploy or
 * another kind of canary is refused (StateFileError, exit 64) with the difference and the way out, before anything
 * is measured or changed; so is a file that parses but is incomplete (an `acting` phase without a decision). A
 * resumed run re-reads Render's live deploy: a deploy the file did not decide about is never acted on.
 *
 * Read-only readers (`canary status`) use readStateUnbound: it never refuses a file for its binding.
 */
import { z } from 'zod';
import type { ListedDeploy, RenderPort } from './rollback';
import { RECENT_DEPLOYS } from './rollback';
import { canaryStateSchema, StateFile, StateFileError, type CanaryState, type StateStore } from './state-file';

/** The state file's schema with what a run needs to act on it: every phase carries what that phase reads. */
export const boundStateSchema = canaryStateSchema.superRefine((state, ctx) => {
  const missing = (path: string, why: string) => ctx.addIssue({ code: 'custom', path: path.split('.'), message: `${path} is missing: ${why}` });
  if (state.phase === 'acting' && !state.decision) missing('decision', 'the phase is "acting" but nothing was decided');
  if (state.phase === 'done' && !state.outcome) missing('outcome', 'the phase is "done" but no outcome was recorded');
  const stepped = state.stepped;
  if (stepped) {
    if (stepped.stepIndex >= stepped.steps.length) {
      ctx.addIssue({ code: 'custom', path: ['stepped', 'stepIndex'], message: `stepped.stepIndex ${stepped.stepIndex} is past the ${stepped.steps.length} steps` });
    }
    if (state.decision && state.decision.stepIndex >= stepped.steps.length) {
      ctx.addIssue({ code: 'custom', path: ['decision', 'stepIndex'], message: `decision.stepIndex ${state.decision.stepIndex} is past the ${stepped.steps.length} steps` });
    }
  }
});

/** What a state file acts on: recorded when the run starts, compared on every resume. */
export interface StateBinding {
  stack: CanaryState['stack'];
  serviceId: string | null;
  baseUrl: string;
  /** Render's deploy id under analysis, when the run could read it */
  deployId?: string;
  /** the git commit: Render's for the analysed deploy, else the one the service reported */
  commit?: string;
}

export function bindingOf(state: CanaryState): StateBinding {
  const commit = state.analysedDeploy?.commit ?? state.deployId ?? undefined;
  return {
    stack: state.stack,
    serviceId: state.serviceId,
    baseUrl: state.baseUrl,
    ...(state.analysedDeploy ? { deployId: state.analysedDeploy.id } : {}),
    ...(commit ? { commit } : {}),
  };
}

/** The run that opens a state file: its arguments and its way to Render. */
export interface OpeningRun {
  stack: CanaryState['stack'];
  serviceId: string | null;
  baseUrl: string;
  stateFile: StateStore;
  render: RenderPort | undefined;
  /** `--resume`: the operator looked at the file and accepts a live deploy it cannot confirm or that changed */
  resume?: boolean;
}

/**
 * The run's state file, checked: undefined when there is none (a new run). Throws StateFileError (exit 64) for an
 * incomplete file, another kind of canary, other arguments, or (on resume) a live deploy the file did not decide about.
 */
export async function openBoundState(run: OpeningRun, kind: 'whole-flag' | 'stepped', stepPercents?: number[]): Promise<CanaryState | undefined> {
  const path = run.stateFile.path;
  const loaded = run.stateFile.load();
  const wayOut = `use a new --state-file for this run (or move ${path} aside)`;
  if (!loaded) {
    if (run.resume) throw new StateFileError(`--resume: there is no state file at ${path} to resume`);
    return undefined;
  }
  const complete = boundStateSchema.safeParse(loaded);
  if (!complete.success) {
    throw new StateFileError(`state file ${path} is incomplete (${complete.error.issues.map((i) => i.message).join('; ')}): nothing was done; look at it, then ${wayOut}`);
  }
  const state = complete.data;
  if (kind === 'whole-flag' && state.stepped) throw new StateFileError(`state file ${path} is a stepped canary's state (npm run canary -- stepped); ${wayOut}`);
  if (kind === 'stepped' && !state.stepped) throw new StateFileError(`state file ${path} is a single-step canary's state, not a stepped one; ${wayOut}`);
  if (stepPercents && state.stepped && state.stepped.steps.map((s) => s.percent).join() !== stepPercents.join()) {
    throw new StateFileError(`state file ${path} was written for steps ${state.stepped.steps.map((s) => s.percent).join(' → ')}, not this policy's (${stepPercents.join(' → ')}); ${wayOut}`);
  }

  const bound = bindingOf(state);
  const differences: string[] = [];
  if (bound.stack !== run.stack) differences.push(`stack: the file's ${bound.stack}, this run's ${run.stack}`);
  if (bound.serviceId !== run.serviceId) differences.push(`Render service: the file's ${bound.serviceId ?? '(none)'}, this run's ${run.serviceId ?? '(none)'}`);
  if (sameOrigin(bound.baseUrl, run.baseUrl) === false) differences.push(`base URL: the file's ${bound.baseUrl}, this run's ${run.baseUrl}`);
  if (differences.length) {
    // Another service's file is never acted on, --resume or not: its measurements are not this service's.
    throw new StateFileError(`state file ${path} belongs to another run (${differences.join('; ')}): nothing was done; ${wayOut}`);
  }

  if (!run.render || !run.serviceId) {
    // Nothing to compare with; a resumed decision still needs a look before it is acted on.
    if (state.phase === 'acting' && !run.resume) {
      throw new StateFileError(
        `state file ${path} stopped while acting on "${state.decision!.kind}", and this run cannot read Render's live deploy to check it is still the one decided about (needs --render-service-id and RENDER_API_KEY). Look at it, then rerun with --resume to finish it anyway, or ${wayOut}`,
      );
    }
    return state;
  }
  const live = await readLiveDeploy(run.render, run.serviceId);
  const recorded = bound.deployId ? `deploy ${bound.deployId}${bound.commit ? ` (commit ${bound.commit})` : ''}` : `commit ${bound.commit ?? '(unknown)'}`;
  if (!live.ok) {
    if (state.phase === 'acting' && !run.resume) {
      throw new StateFileError(
        `state file ${path} stopped while acting on "${state.decision!.kind}" about ${recorded}, and Render's live deploy of ${run.serviceId} cannot be read (${live.detail}) to check it is still that one: nothing was done. Rerun when Render answers, or look at it and rerun with --resume to finish it anyway`,
      );
    }
    return state;
  }
  const verdict = judgeLiveDeploy(state, live.deploy);
  if (verdict.ok || run.resume) return state;
  const phase = state.phase === 'done' ? `finished (${state.outcome}) a run` : `is in the middle of a run (phase ${state.phase})`;
  throw new StateFileError(
    `state file ${path} ${phase} about ${recorded}, but Render's live deploy of ${run.serviceId} is now ${verdict.live}: ` +
      `its measurements${state.decision ? ` and its decision (${state.decision.kind})` : ''} are not about the deploy that runs. Nothing was done. ` +
      `To canary the live deploy, ${wayOut}; to finish this file's run anyway after a look, rerun with --resume`,
  );
}

/** The state as it is on disk, for read-only views: never refused for its binding or its completeness. */
export function readStateUnbound(path: string): { state?: CanaryState; problem?: string } {
  try {
    const state = new StateFile(path).load();
    if (!state) return { problem: `no state file at ${path}` };
    const complete = boundStateSchema.safeParse(state);
    return complete.success ? { state } : { state, problem: complete.error.issues.map((i) => i.message).join('; ') };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}

export type LiveDeploy = { id: string; commit?: string } | undefined;

/** Render's live deploy of the service (undefined: none is live), or why it cannot be read. */
export async function readLiveDeploy(render: RenderPort, serviceId: string): Promise<{ ok: true; deploy: LiveDeploy } | { ok: false; detail: string }> {
  if (!render.listDeploys) return { ok: false, detail: 'this Render access cannot list deploys' };
  try {
    const live = (await render.listDeploys(serviceId, { limit: RECENT_DEPLOYS })).find((d: ListedDeploy) => d.status === 'live');
    return { ok: true, deploy: live?.id ? { id: live.id, ...(live.commit?.id ? { commit: live.commit.id } : {}) } : undefined };
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  }
}

/**
 * The live deploy is the one the file decided about, or one the file's own actions created (its rollback
 * deploys; a deploy requested before a crash recorded its id is any that was not there before the request).
 */
export function judgeLiveDeploy(state: CanaryState, live: LiveDeploy): { ok: true } | { ok: false; live: string } {
  const bound = bindingOf(state);
  if (!live) return bound.deployId || bound.commit ? { ok: false, live: 'no live deploy at all' } : { ok: true };
  const describe = `deploy ${live.id}${live.commit ? ` (commit ${live.commit})` : ''}`;
  if (bound.deployId) {
    if (live.id === bound.deployId) return { ok: true };
  } else if (bound.commit && live.commit) {
    if (sameCommit(bound.commit, live.commit)) return { ok: true };
  } else {
    return { ok: true };
  }
  const ours = [state.rollback?.renderDeployId, state.codeRollback?.rollbackDeploy?.deployId, state.codeRollback?.flagRedeploy?.deployId];
  if (ours.includes(live.id)) return { ok: true };
  // A deploy requested before a crash could record its id: any deploy that was not there before the request.
  const requested = [
    state.rollback?.deployRequestedAt && !state.rollback.renderDeployId ? state.rollback.deploysBefore : undefined,
    ...[state.codeRollback?.rollbackDeploy, state.codeRollback?.flagRedeploy].map((step) => (step?.requestedAt && !step.deployId ? step.deploysBefore : undefined)),
  ];
  if (requested.some((before) => before && !before.includes(live.id))) return { ok: true };
  return { ok: false, live: describe };
}

function sameCommit(a: string, b: string): boolean {
  return a.length >= 7 && b.length >= 7 && (a.startsWith(b) || b.startsWith(a));
}

/** Scheme, host and port compared; undefined when either is not a URL (the file's own check then fails elsewhere). */
function sameOrigin(a: string, b: string): boolean | undefined {
  try {
    return new URL(a).origin === new URL(b).origin && new URL(a).pathname.replace(/\/+$/, '') === new URL(b).pathname.replace(/\/+$/, '');
  } catch {
    return a === b;
  }
}
