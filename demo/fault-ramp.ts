/**
 * The Context7 incident the production rehearsal injects: errors and latency that keep rising, as in
 * a degrading upstream. Pure: policy seconds since the fault began -> the emulator's fault settings.
 */

export interface FaultStage {
  /** policy seconds after the fault began */
  fromSeconds: number;
  errorRate: number;
  latencyMs: number;
}

export const FAULT_RAMP: readonly FaultStage[] = [
  { fromSeconds: 0, errorRate: 0.3, latencyMs: 150 },
  { fromSeconds: 30, errorRate: 0.6, latencyMs: 400 },
  { fromSeconds: 60, errorRate: 0.9, latencyMs: 800 },
];

/** The stage in force `seconds` after the fault began (before it began: none). */
export function faultStageAt(seconds: number, ramp: readonly FaultStage[] = FAULT_RAMP): FaultStage | undefined {
  let current: FaultStage | undefined;
  for (const stage of ramp) if (seconds >= stage.fromSeconds) current = stage;
  return current;
}
