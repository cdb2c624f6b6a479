/**
 * The rehearsal's clock (issue 23). The canaries judge on a compressed policy clock, and what a policy minute holds
 * is the traffic's fixed number of requests (DEMO_TRAFFIC): that much evidence, whatever the machine's speed. The
 * machine's speed only decides how many wall seconds a policy minute may take. So the demo measures what the
 * machine carries now (closed-loop requests through the production service, its flag still off), and picks the fastest
 * clock whose traffic fits in a share of it: 60x on a quiet machine, slower under load. A slower clock means a
 * longer rehearsal, never a different verdict.
 */
import { startTraffic } from './traffic';

/** The fastest clock: one policy minute per wall second (the services' cache TTL and polls shrink with it). */
export const MAX_DEMO_TIME_SCALE = 60;
/**
 * The slowest clock the demo picks by itself: 20 wall seconds a policy minute, a rehearsal of 10 to 15 minutes for a
 * machine that carries only about 15 requests a second (measured at a load average of 17 on 2 cores). The watchdog
 * stretches with it.
 */
export const MIN_DEMO_TIME_SCALE = 3;
/**
 * The share of the measured capacity the traffic may use. The rest is for what the measurement leaves out: the
 * flag-on path (a Context7 call on a cache miss, the outbox), the canary's polls, deploys, and the neighbours'
 * load changing during the run: at 0.4, a run measured in a lull (181 requests/s) fell behind when the neighbours'
 * load came back (load average 20 on 2 cores).
 */
export const CAPACITY_SHARE = 0.3;

export interface ClockChoice {
  /** the canary run (and its traffic) this clock is for */
  forRun: 'staging' | 'production';
  timeScale: number;
  /** 'measured': chosen from the capacity below; 'given': --time-scale */
  chosen: 'measured' | 'given';
  /** closed-loop requests a wall second the machine answered during the measurement (measured only) */
  capacityPerSecond: number | null;
  measuredSeconds: number | null;
  /** the busiest traffic of the rehearsal, requests a policy minute, that the clock was chosen for */
  requestsPerPolicyMinute: number;
}

/** A clock's bounds and the capacity share it may use: the demo's by default; the stepped e2e tests pass their own. */
export interface ClockBounds {
  min: number;
  max: number;
  share: number;
}

/**
 * The fastest clock between `bounds.min` and `bounds.max` (in steps of 5 from 10 up, whole numbers below) at which
 * `requestsPerPolicyMinute` stays within `bounds.share` of `capacityPerSecond` (wall rate = rate x scale / 60).
 */
export function timeScaleFor(
  capacityPerSecond: number,
  requestsPerPolicyMinute: number,
  bounds: ClockBounds = { min: MIN_DEMO_TIME_SCALE, max: MAX_DEMO_TIME_SCALE, share: CAPACITY_SHARE },
): number {
  if (!(requestsPerPolicyMinute > 0)) throw new RangeError(`requestsPerPolicyMinute must be positive, got ${requestsPerPolicyMinute}`);
  const fits = (60 * bounds.share * Math.max(0, capacityPerSecond)) / requestsPerPolicyMinute;
  const stepped = fits >= 10 ? Math.floor(fits / 5) * 5 : Math.floor(fits);
  return Math.min(bounds.max, Math.max(bounds.min, stepped));
}

/**
 * Closed-loop capacity: `inFlight` requests of the demo's mix kept waiting at once, answered requests counted over
 * `seconds` after a `warmupSeconds` start that is not counted (a service that just started compiles its hot paths
 * first). Bounded in time and count by construction.
 */
export async function measureCapacity(
  baseUrl: string,
  memoryApiKey: string,
  { seconds = 2, warmupSeconds = 0.5, inFlight = 8 } = {},
): Promise<{ perSecond: number; seconds: number; requests: number; byStatus: Record<string, number> }> {
  // A schedule far beyond any machine: always behind, so exactly `inFlight` requests wait at any time.
  const traffic = startTraffic({ baseUrl, memoryApiKey, requestsPerPolicyMinute: 1e9, timeScale: 1, maxInFlight: inFlight, seed: 99, label: 'clock', requestTimeoutMs: 5_000 });
  await new Promise((resolve) => setTimeout(resolve, warmupSeconds * 1000));
  const before = traffic.stats();
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const after = traffic.stats();
  const elapsed = (Date.now() - started) / 1000;
  await traffic.stop();
  const answered = after.sent - after.transportErrors - (before.sent - before.transportErrors);
  const byStatus: Record<string, number> = {};
  for (const [status, n] of Object.entries(after.byStatus)) byStatus[status] = n - (before.byStatus[status] ?? 0);
  return { perSecond: answered / elapsed, seconds: elapsed, requests: answered, byStatus };
}
