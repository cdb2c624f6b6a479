/**
 * Traffic and clock for the stepped canary's end-to-end tests (e2e-stepped, stepped-two-instances), the demo's way
 * (demo/traffic.ts, demo/clock.ts): a fixed number of requests a policy minute, open loop, so each step's windows
 * hold the same evidence on any machine; and a clock chosen from what the machine carries now, so that number fits.
 *
 * Why: the tests used closed-loop workers (each waits for its answer, then pauses) on a fixed 10x clock. The slower
 * the machine answers, the fewer requests a policy minute: at load average 16-23 on 2 cores the 5% step saw
 * "treatment has 8 requests in the window", and after its 8 looks still "treatment errorRate: interval [0, 0.0611]
 * contains 0.0500" (59 Context7 calls; 74 without an error are needed to put the 95% bound under 5%): held, never
 * reaching 25%. A slower machine now gets a slower clock and the same requests a policy minute, never less evidence.
 */
import { httpCapacitySampler, measureClock, type ClockBounds } from '../../../demo/clock';
import { startTraffic, type TrafficRun, type TrafficStats } from '../../../demo/traffic';

/**
 * Requests a policy minute (the demo's mix over its 160 scopes, every scope alike: about 4.6 % of them are memory
 * requests of the 5 % treatment). 600 give the 5 % step some 28 treatment requests a policy minute: its minimum sample (20) by the first
 * 30-second window's end on average, the 35 Context7 calls without error that clear the 10 % limit of the 3-minute
 * check by its third look, and the 74 that clear the 6-minute check's 5 % well within its 8 looks.
 */
export const STEPPED_E2E_REQUESTS_PER_POLICY_MINUTE = 600;

/**
 * 10x at most (the tests' clock before: 90 policy seconds a step in 9 s), 1x at least; the traffic may use 60 % of
 * the measured closed-loop capacity (the rest is the canary's polls, Context7 calls and the neighbours' changes).
 * At 1x the traffic needs 10 requests a second: a machine that carries less than that falls behind the schedule,
 * and stop() reports by how much (maxBehind). At load average 30 on 2 cores the rig answered 7 to 16 a second.
 */
export const STEPPED_E2E_CLOCK: ClockBounds = { min: 1, max: 10, share: 0.6 };
/**
 * Requests waiting at once, at most: about what the closed-loop workers kept (6). Unbounded (the demo's 64), a
 * machine slower than the schedule queues requests in the service until the canary's admin calls miss their 2 s.
 */
const MAX_IN_FLIGHT = 8;

/** The locations a caller key must list for this traffic: the demo's scopes are reserved load-test scopes. */
export const STEPPED_TRAFFIC_LOCATIONS = 'loadtest-*';

export interface SteppedClock {
  timeScale: number;
  capacityPerSecond: number;
  requestsPerPolicyMinute: number;
}

/**
 * Measures what the service carries now (8 requests in flight; demo/clock.ts measureClock: 0.5 s pieces until they
 * give the fastest clock, 3 s at most a round, measured again after a pause when far below it) and picks the clock.
 */
export async function chooseSteppedClock(baseUrl: string, memoryApiKey: string): Promise<SteppedClock> {
  // A service that just started compiles its hot paths first: a longer warm-up than the demo's on a loaded machine
  // (2 s before measureClock; a slow first piece now only makes the round take more pieces).
  const measured = await measureClock(httpCapacitySampler(baseUrl, memoryApiKey, { warmupSeconds: 1, inFlight: MAX_IN_FLIGHT }), STEPPED_E2E_REQUESTS_PER_POLICY_MINUTE, {
    bounds: STEPPED_E2E_CLOCK,
    maxSamples: 6,
  });
  return { timeScale: measured.timeScale, capacityPerSecond: Math.round(measured.perSecond), requestsPerPolicyMinute: STEPPED_E2E_REQUESTS_PER_POLICY_MINUTE };
}

export interface SteppedTrafficSummary {
  sent: number;
  transportErrors: number;
  byStatus: Record<string, number>;
  /** the largest backlog any schedule had: requests due but not started (maxInFlight waiting) */
  maxBehind: number;
}

/**
 * The traffic on that clock, split evenly over `baseUrls` (one schedule each, different seeds): together
 * STEPPED_E2E_REQUESTS_PER_POLICY_MINUTE whatever the machine's speed. stop() sums the runs' figures.
 */
export function startSteppedTraffic(baseUrls: string[], memoryApiKey: string, timeScale: number): { stop(): Promise<SteppedTrafficSummary> } {
  const runs: TrafficRun[] = baseUrls.map((baseUrl, i) =>
    startTraffic({
      baseUrl,
      memoryApiKey,
      requestsPerPolicyMinute: STEPPED_E2E_REQUESTS_PER_POLICY_MINUTE / baseUrls.length,
      timeScale,
      seed: 23 + i,
      label: `stepped-e2e-${i}`,
      maxInFlight: MAX_IN_FLIGHT,
      // Every scope alike: the stepped canary's sample-ratio check assumes the scopes first seen in a window are a
      // fair draw, and with the demo's popularity (Zipf 0.6) over 160 scopes they were not (treatment 21 of 150 new
      // scopes at 5%, p = 0.00002: held as a mismatch, at load 20).
      zipfExponent: 0,
      requestTimeoutMs: 3_000,
    }),
  );
  return {
    async stop() {
      const all: TrafficStats[] = await Promise.all(runs.map((run) => run.stop()));
      const byStatus: Record<string, number> = {};
      for (const s of all) for (const [status, n] of Object.entries(s.byStatus)) byStatus[status] = (byStatus[status] ?? 0) + n;
      return {
        sent: all.reduce((total, s) => total + s.sent, 0),
        transportErrors: all.reduce((total, s) => total + s.transportErrors, 0),
        byStatus,
        maxBehind: Math.max(...all.map((s) => s.schedule.maxBehind)),
      };
    },
  };
}
