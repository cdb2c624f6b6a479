/**
 * The local platform's fleet model, pure: the life of one instance, whether a deploy's new instances are all
 * healthy, and what a scale change starts or retires. The I/O (processes, probes, the load balancer) lives in
 * local-platform.ts and only asks these functions what to do next.
 */

/**
 * starting: spawned, health check not passed yet (not routed).
 * healthy: passed its health check; routed while its deploy is the live one.
 * unhealthy: running but failing its periodic health check: not routed until it passes again (restarted if it
 *   keeps failing).
 * crashed: exited on its own after being healthy; Render restarts it in place.
 * draining: no longer routed; its in-flight requests finish before it is told to stop.
 * stopping: SIGTERM sent, waiting for the process group to go (then SIGKILL); the shell's exit does not end it.
 * stopped: the whole process group gone, on purpose. failed: never became healthy (or gave up restarting).
 */
export type InstanceState = 'starting' | 'healthy' | 'unhealthy' | 'crashed' | 'draining' | 'stopping' | 'stopped' | 'failed';

export type InstanceEvent =
  | 'passed_health_check'
  | 'failing_health_checks'
  | 'health_check_timed_out'
  | 'exited'
  | 'restarting'
  | 'drain'
  | 'terminate'
  | 'gave_up';

export function nextInstanceState(state: InstanceState, event: InstanceEvent): InstanceState {
  switch (event) {
    case 'passed_health_check':
      return state === 'starting' || state === 'unhealthy' ? 'healthy' : state;
    case 'failing_health_checks':
      return state === 'healthy' ? 'unhealthy' : state;
    case 'health_check_timed_out':
      return state === 'starting' ? 'failed' : state;
    case 'exited':
      // Only an exit nobody asked for is a crash. An instance being retired is stopped by its drain once its whole
      // process group is gone, not here: the exiting child is the start command's shell, which dies at SIGTERM
      // while the service it started drains on (issue 23: listed as stopped, its deploy still draining).
      if (state === 'healthy' || state === 'unhealthy') return 'crashed';
      if (state === 'starting') return 'failed';
      return state;
    case 'restarting':
      return state === 'crashed' || state === 'failed' ? 'starting' : state;
    case 'drain':
      return state === 'stopped' || state === 'failed' ? state : 'draining';
    case 'terminate':
      return state === 'stopped' || state === 'failed' ? state : 'stopping';
    case 'gave_up':
      return state === 'stopped' ? state : 'failed';
  }
}

/** Only a healthy instance of the live deploy gets requests. */
export function isRoutable(state: InstanceState): boolean {
  return state === 'healthy';
}

/** Counts toward the deploy's numInstances: it serves, or is about to, or is being brought back. */
export function isActive(state: InstanceState): boolean {
  return state === 'starting' || state === 'healthy' || state === 'unhealthy' || state === 'crashed';
}

/**
 * Render's periodic health check of a serving instance: after `unhealthyAfterMs` of consecutive failures it
 * leaves the rotation; after `restartAfterMs` it is restarted. A passing check clears both.
 */
export function healthCheckAction(
  state: InstanceState,
  failingForMs: number | undefined,
  limits: { unhealthyAfterMs: number; restartAfterMs: number },
): 'none' | 'recovered' | 'unroute' | 'restart' {
  if (state !== 'healthy' && state !== 'unhealthy') return 'none';
  if (failingForMs === undefined) return state === 'unhealthy' ? 'recovered' : 'none';
  if (state === 'unhealthy' && failingForMs >= limits.restartAfterMs) return 'restart';
  if (state === 'healthy' && failingForMs >= limits.unhealthyAfterMs) return 'unroute';
  return 'none';
}

/** A new deploy goes live only when every one of its instances passed its health check; one failure fails it. */
export function rolloutVerdict(states: readonly InstanceState[]): 'waiting' | 'healthy' | 'failed' {
  if (states.length === 0) return 'failed';
  if (states.some((s) => !isActive(s))) return 'failed';
  return states.every((s) => s === 'healthy') ? 'healthy' : 'waiting';
}

/**
 * A deploy on the platform: starting (new instances next to the live ones) -> live (traffic shifted to it) ->
 * draining (replaced: unrouted, finishing in-flight requests) -> retired (all its instances gone); or
 * starting -> failed (an instance never became healthy: traffic never moved).
 */
export type RolloutPhase = 'starting' | 'live' | 'failed' | 'draining' | 'retired';
export type RolloutEvent = 'traffic_shifted' | 'instance_failed' | 'replaced' | 'drained';

export function nextRolloutPhase(phase: RolloutPhase, event: RolloutEvent): RolloutPhase {
  if (event === 'traffic_shifted' && phase === 'starting') return 'live';
  if (event === 'instance_failed' && phase === 'starting') return 'failed';
  if (event === 'replaced' && phase === 'live') return 'draining';
  if (event === 'drained' && phase === 'draining') return 'retired';
  return phase;
}

export interface ScaleCandidate {
  instanceId: string;
  state: InstanceState;
  startedAt: number;
}

/**
 * What a scale change does to the live deploy: how many instances to start, and which to retire. Retires the
 * ones that serve least first (crashed, then starting, then the newest healthy), so traffic moves the least.
 */
export function scalePlan(instances: readonly ScaleCandidate[], desired: number): { start: number; retire: string[] } {
  const active = instances.filter((i) => isActive(i.state));
  if (active.length <= desired) return { start: desired - active.length, retire: [] };
  const rank = (s: InstanceState) => (s === 'crashed' ? 0 : s === 'unhealthy' ? 1 : s === 'starting' ? 2 : 3);
  const order = [...active].sort((a, b) => rank(a.state) - rank(b.state) || b.startedAt - a.startedAt);
  return { start: 0, retire: order.slice(0, active.length - desired).map((i) => i.instanceId) };
}

/** Render restarts a crashed instance with a growing pause, so a crash loop does not spin. */
export function restartDelayMs(restarts: number): number {
  return Math.min(250 * 2 ** Math.max(0, restarts), 5_000);
}
