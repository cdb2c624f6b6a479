/**
 * The stepped canary's exposure port: the service's runtime percentage through its admin API
 * (`GET/PUT /api/admin/exposure`, shapes in service/contracts/http.ts). Every call has a deadline; the admin
 * token travels in the Authorization header only and is never put in a result, a record or a message.
 *
 * "Applied" means every live instance reports the change: with Redis the state lists each instance of the deploy
 * (`instances`), and all must show the change's version and percentage; without that list (polling, one
 * instance) the answering instance must report it on `confirmReads` consecutive reads, each on a fresh connection
 * so a load balancer spreads them.
 */
import { exposureStateSchema, type ExposureState } from '../../service/contracts/http';
import type { HttpProbe } from './http';

export interface ExposureAdminOptions {
  baseUrl: string;
  adminToken: string;
  probe: HttpProbe;
  /** deadline of each HTTP call */
  timeoutMs: number;
  /** how often to read the state while waiting for the fleet to apply a change */
  pollMs: number;
  /** without the per-instance list: consecutive reads that must report the change */
  confirmReads?: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export type ExposureRead = { ok: true; state: ExposureState } | { ok: false; detail: string };

/** One runtime change, timed: from the request to the moment every instance reported it. */
export interface ExposureChange {
  percent: number;
  requestedAt: string;
  /** set when the service accepted the change (its audit version) */
  version?: number;
  acceptedAt?: string;
  /** set when every instance reported it */
  appliedAt?: string;
  /** request to applied, seconds */
  seconds?: number;
  /** how "every instance" was established: the state's per-instance list, or consecutive reads */
  confirmedBy?: 'instances' | 'consecutive-reads';
  instances?: string[];
  /** why the change was refused or not confirmed */
  failed?: string;
}

export interface ExposurePort {
  read(): Promise<ExposureRead>;
  /**
   * PUT the percentage, then wait (at most `applyTimeoutMs`) until every instance applied it. The audit names
   * `actor` (the canary's own, unless an operator's request made the change).
   */
  change(percent: number, reason: string, applyTimeoutMs: number, actor?: string): Promise<ExposureChange>;
}

/** Who the audit names for the canary's changes. */
export const CANARY_ACTOR = 'canary';

export function createExposureAdmin(options: ExposureAdminOptions): ExposurePort {
  const url = `${options.baseUrl.replace(/\/+$/, '')}/api/admin/exposure`;
  const headers = { authorization: `Bearer ${options.adminToken}` };
  const confirmReads = options.confirmReads ?? 3;
  const iso = () => new Date(options.now()).toISOString();

  const read = async (): Promise<ExposureRead> => parseState(await options.probe(url, { timeoutMs: options.timeoutMs, headers }));

  return {
    read,
    async change(percent, reason, applyTimeoutMs, actor = CANARY_ACTOR) {
      const startedMs = options.now();
      const change: ExposureChange = { percent, requestedAt: iso() };
      const answer = parseState(
        await options.probe(url, { method: 'PUT', body: { percent, actor: actor.slice(0, 100), reason: reason.slice(0, 500) }, timeoutMs: options.timeoutMs, headers }),
      );
      if (!answer.ok) return { ...change, failed: `PUT /api/admin/exposure ${percent}%: ${answer.detail}` };
      const version = answer.state.version;
      change.version = version;
      change.acceptedAt = iso();
      const deadline = startedMs + applyTimeoutMs;
      let streak = 0;
      let lastState = answer.state;
      let lastProblem: string | undefined;
      for (let first = true; ; first = false) {
        // The PUT's own answer counts as the first read.
        const current = first ? answer : await read();
        if (current.ok) {
          lastState = current.state;
          lastProblem = undefined;
          const applied = appliedEverywhere(current.state, version, percent);
          if (applied.instances) {
            if (applied.done) return done(change, startedMs, 'instances', applied.instances);
            streak = 0;
          } else {
            streak = applied.done ? streak + 1 : 0;
            if (streak >= confirmReads) return done(change, startedMs, 'consecutive-reads', []);
          }
        } else {
          streak = 0;
          lastProblem = current.detail;
        }
        if (options.now() >= deadline) {
          const seen = lastProblem ?? describeState(lastState);
          return { ...change, failed: `not applied everywhere within ${applyTimeoutMs} ms (last read: ${seen})` };
        }
        await options.sleep(Math.max(1, Math.min(options.pollMs, deadline - options.now())));
      }
    },
  };

  function done(change: ExposureChange, startedMs: number, by: 'instances' | 'consecutive-reads', instances: string[]): ExposureChange {
    const appliedMs = options.now();
    return { ...change, appliedAt: new Date(appliedMs).toISOString(), seconds: (appliedMs - startedMs) / 1000, confirmedBy: by, instances };
  }
}

/** Whether a state shows change `version` (or a later one) at `percent` on every instance it knows of. */
export function appliedEverywhere(state: ExposureState, version: number, percent: number): { done: boolean; instances?: string[] } {
  if (state.instances && state.instances.length > 0) {
    const done = state.instances.every((i) => i.version >= version && i.percent === percent);
    return { done, instances: state.instances.map((i) => i.instanceId) };
  }
  return { done: state.version >= version && state.percent === percent };
}

function describeState(state: ExposureState): string {
  const instances = state.instances?.map((i) => `${i.instanceId} v${i.version} ${i.percent}%`).join(', ');
  return `v${state.version} ${state.percent}%${instances ? ` [${instances}]` : ''}`;
}

function parseState(answer: Awaited<ReturnType<HttpProbe>>): ExposureRead {
  if (answer.error || answer.status === null) return { ok: false, detail: answer.message ?? answer.error ?? 'no answer' };
  if (answer.status < 200 || answer.status > 299) {
    const body = answer.body as { error?: unknown } | undefined;
    const said = typeof body?.error === 'string' ? `: ${body.error.slice(0, 300)}` : '';
    return { ok: false, detail: `HTTP ${answer.status}${said}` };
  }
  const parsed = exposureStateSchema.safeParse(answer.body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { ok: false, detail: `exposure state does not match the contract (${first?.path.join('.') || 'body'}: ${first?.message ?? 'invalid'})` };
  }
  return { ok: true, state: parsed.data };
}
