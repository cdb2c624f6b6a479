/**
 * `canary stepped --prepare`: before the flag turns on, store the runtime exposure the flag-on deploy will apply,
 * so the flip never exposes the stack's ceiling (100 % by default) for a moment. The service accepts a change with
 * the flag off (it checks the ceiling only, service/fleet/exposure-control.ts) and keeps it across the redeploy.
 * Nothing is "applied" while the flag is off (the effective percentage is 0), so the check is the stored value.
 */
import { exposureStateSchema } from '../../service/contracts/http';
import { CANARY_ACTOR } from '../sources/exposure-admin';
import type { HttpProbe } from '../sources/http';

export interface PrepareOptions {
  baseUrl: string;
  adminToken: string;
  percent: number;
  firstStepPercent: number;
  probe: HttpProbe;
  timeoutMs: number;
}

export type PrepareResult = { ok: true; detail: string } | { ok: false; detail: string };

export async function prepareExposure(o: PrepareOptions): Promise<PrepareResult> {
  if (o.percent > o.firstStepPercent) return { ok: false, detail: `--prepare-percent ${o.percent} is above the first step (${o.firstStepPercent} %): the flag flip would expose more than the canary's first step` };
  const answer = await o.probe(`${o.baseUrl.replace(/\/+$/, '')}/api/admin/exposure`, {
    method: 'PUT',
    body: {
      percent: o.percent,
      actor: CANARY_ACTOR,
      reason: `stepped canary --prepare: ${o.percent} % stored before the flag turns on (first step ${o.firstStepPercent} %)`,
    },
    timeoutMs: o.timeoutMs,
    headers: { authorization: `Bearer ${o.adminToken}` },
  });
  if (answer.status === null) return { ok: false, detail: `PUT /api/admin/exposure got no answer: ${answer.message ?? answer.error ?? 'no answer'}` };
  if (answer.status !== 200) {
    const said = typeof (answer.body as { error?: unknown })?.error === 'string' ? `: ${(answer.body as { error: string }).error.slice(0, 300)}` : '';
    return { ok: false, detail: `PUT /api/admin/exposure ${o.percent} answered HTTP ${answer.status}${said}` };
  }
  const state = exposureStateSchema.safeParse(answer.body);
  if (!state.success) return { ok: false, detail: 'the exposure state does not match the contract' };
  if (state.data.runtimePercent !== o.percent) return { ok: false, detail: `the service stored ${String(state.data.runtimePercent)} %, not ${o.percent} %` };
  const flag = state.data.flagOn
    ? `the flag is already on: ${state.data.percent} % of scopes read from Context7 now`
    : 'the flag is off; the flag-on deploy starts from it';
  return { ok: true, detail: `runtime exposure stored at ${o.percent} % (version ${state.data.version}, ceiling ${state.data.ceiling} %); ${flag}` };
}
