/**
 * The rehearsal's clock (issue 23). The canaries judge on a compressed policy clock, and what a policy minute holds
 * is the traffic's fixed number of requests (DEMO_TRAFFIC): that much evidence, whatever the machine's speed. The
 * machine's speed only decides how many wall seconds a policy minute may take. So the demo measures what the
 * machine carries now (closed-loop requests through the production service, its flag still off: measureClock), and
 * picks the fastest clock whose traffic fits in a share of it: 60x on a quiet machine, slower under load. A slower
 * clock means a longer rehearsal, never a different verdict.
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
  /** measured only, when the first measurement was far below the fastest clock: every round's requests a second */
  roundsPerSecond?: number[];
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
 * A closed-loop capacity sampler: `sample(seconds)` counts the requests answered over about that many wall seconds
 * (starting the closed-loop traffic, with its warm-up, if it is not running); `pause(seconds)` stops the traffic and
 * waits. Injected, so the choice below is tested without a clock (test/demo/traffic-clock.test.ts).
 */
export interface CapacitySampler {
  sample(seconds: number): Promise<{ requests: number; seconds: number }>;
  pause(seconds: number): Promise<void>;
}

export interface ClockMeasureOptions {
  bounds?: ClockBounds;
  /** one sample's length; a round takes samples until its rate gives bounds.max or it has maxSamples */
  sampleSeconds?: number;
  maxSamples?: number;
  /**
   * A round whose clock is below this is far below what this machine gives when quiet (bounds.max): measured again
   * after a pause, up to maxRounds rounds, and the best round counts. Default: half of bounds.max.
   */
  remeasureBelow?: number;
  maxRounds?: number;
  /** the pause before each further round, seconds (the last one repeats) */
  pausesSeconds?: number[];
}

export interface ClockMeasurement {
  timeScale: number;
  /** the best round's requests a second */
  perSecond: number;
  /** wall seconds sampled, over every round */
  seconds: number;
  /** each round's requests a second, in order */
  rounds: number[];
  samples: number;
}

/**
 * The clock from what the machine carries now (issue 23), robust to a passing burst of load and cheap when quiet:
 * - a round samples in short pieces (0.5 s) and ends as soon as what it counted so far gives the fastest clock, so
 *   a quiet machine is measured in one piece, not 2 s of closed-loop load on both cores;
 * - otherwise it samples up to `maxSamples` pieces (2 s, as before) and its rate is the requests over all of them;
 * - a round far below the fastest clock (a suite's first seconds, when every test file starts at once, measured 14
 *   requests a second where the demos measured 1,269 minutes later) is measured again after a pause, up to
 *   `maxRounds` rounds, and the best round's rate counts. A machine that stays slow gives the same slow rate every
 *   round, so the same slow clock: a longer rehearsal, never a different verdict (the traffic a policy minute is fixed).
 */
export async function measureClock(sampler: CapacitySampler, requestsPerPolicyMinute: number, o: ClockMeasureOptions = {}): Promise<ClockMeasurement> {
  const bounds = o.bounds ?? { min: MIN_DEMO_TIME_SCALE, max: MAX_DEMO_TIME_SCALE, share: CAPACITY_SHARE };
  const sampleSeconds = o.sampleSeconds ?? 0.5;
  const maxSamples = o.maxSamples ?? 4;
  const remeasureBelow = o.remeasureBelow ?? bounds.max / 2;
  const maxRounds = o.maxRounds ?? 3;
  const pauses = o.pausesSeconds ?? [2, 4];
  const rounds: number[] = [];
  let seconds = 0;
  let samples = 0;
  let best = 0;
  for (let round = 0; round < maxRounds; round++) {
    if (round > 0) await sampler.pause(pauses[Math.min(round - 1, pauses.length - 1)]!);
    let requests = 0;
    let elapsed = 0;
    for (let i = 0; i < maxSamples; i++) {
      const piece = await sampler.sample(sampleSeconds);
      samples++;
      requests += piece.requests;
      elapsed += piece.seconds;
      if (elapsed > 0 && timeScaleFor(requests / elapsed, requestsPerPolicyMinute, bounds) >= bounds.max) break;
    }
    seconds += elapsed;
    const rate = elapsed > 0 ? requests / elapsed : 0;
    rounds.push(rate);
    best = Math.max(best, rate);
    if (timeScaleFor(best, requestsPerPolicyMinute, bounds) >= remeasureBelow) break;
  }
  await sampler.pause(0);
  return { timeScale: timeScaleFor(best, requestsPerPolicyMinute, bounds), perSecond: best, seconds, rounds, samples };
}

/**
 * The sampler over HTTP: `inFlight` requests of the demo's mix kept waiting at once (closed loop), started with a
 * `warmupSeconds` start that is not counted (a service that just started compiles its hot paths first).
 */
export function httpCapacitySampler(baseUrl: string, memoryApiKey: string, { warmupSeconds = 0.3, inFlight = 8 } = {}): CapacitySampler {
  let traffic: ReturnType<typeof startTraffic> | null = null;
  const answered = () => {
    const s = traffic!.stats();
    return s.sent - s.transportErrors;
  };
  const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return {
    async sample(seconds) {
      if (!traffic) {
        // A schedule far beyond any machine: always behind, so exactly `inFlight` requests wait at any time.
        traffic = startTraffic({ baseUrl, memoryApiKey, requestsPerPolicyMinute: 1e9, timeScale: 1, maxInFlight: inFlight, seed: 99, label: 'clock', requestTimeoutMs: 5_000 });
        await sleep(warmupSeconds);
      }
      const before = answered();
      const started = Date.now();
      await sleep(seconds);
      return { requests: answered() - before, seconds: (Date.now() - started) / 1000 };
    },
    async pause(seconds) {
      if (traffic) await traffic.stop();
      traffic = null;
      if (seconds > 0) await sleep(seconds);
    },
  };
}
