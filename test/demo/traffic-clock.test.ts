/**
 * Issue 23: the rehearsal decides by evidence, not by wall-clock luck. Its traffic is a fixed number of requests a
 * policy minute (open loop on the policy clock), and the clock is chosen from what the machine carries. These
 * tests hold the parts: the schedule is kept whatever the server's latency, its slip is reported when it cannot be
 * kept, the clock fits the traffic in the machine, and at the demo's rates the 5 % step's evidence arrives well
 * within the policy's looks (a model of the service's cache, deterministic from the traffic's seed).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wilsonInterval } from '../../canary/analysis/stats';
import { loadPolicy } from '../../canary/policy';
import { CAPACITY_SHARE, MAX_DEMO_TIME_SCALE, MIN_DEMO_TIME_SCALE, measureClock, timeScaleFor, type CapacitySampler } from '../../demo/clock';
import { DEMO_POLICY } from '../../demo/rehearsal';
import { DEMO_SCOPE_IDS, DEMO_TRAFFIC, DEMO_ZIPF_EXPONENT, requestsDue, startTraffic } from '../../demo/traffic';
import { createRng, createTrafficGenerator } from '../../load/lib/traffic-mix';
import { cohortOf } from '../../service/domain/exposure';

describe('the schedule', () => {
  it('is a number of requests a policy minute: the same policy span holds the same requests at any clock', () => {
    expect(requestsDue(0, 120, 60)).toBe(0);
    expect(requestsDue(-5, 120, 60)).toBe(0);
    // One policy minute: 1 s at 60x, 6 s at 10x, 20 s at 3x.
    expect(requestsDue(1_000, 120, 60)).toBe(120);
    expect(requestsDue(6_000, 120, 10)).toBe(120);
    expect(requestsDue(20_000, 120, 3)).toBe(120);
    expect(requestsDue(10_500, 120, 60)).toBe(1_260);
  });

  it('the clock fits the busiest traffic in a share of what the machine carries, between its bounds', () => {
    const rate = 120;
    // 60x needs rate requests a second; at CAPACITY_SHARE that takes rate / CAPACITY_SHARE of capacity.
    expect(timeScaleFor(rate / CAPACITY_SHARE, rate)).toBe(MAX_DEMO_TIME_SCALE);
    expect(timeScaleFor(10_000, rate)).toBe(MAX_DEMO_TIME_SCALE);
    expect(timeScaleFor(150, rate)).toBe(20);
    expect(timeScaleFor(40, rate)).toBe(6);
    expect(timeScaleFor(0, rate)).toBe(MIN_DEMO_TIME_SCALE);
    for (const capacity of [1, 15, 40, 80, 170, 300, 1_000]) {
      const scale = timeScaleFor(capacity, rate);
      const wallRate = (rate * scale) / 60;
      if (scale > MIN_DEMO_TIME_SCALE) expect(wallRate, `capacity ${capacity}`).toBeLessThanOrEqual(CAPACITY_SHARE * capacity);
    }
    expect(() => timeScaleFor(100, 0)).toThrow(RangeError);
  });
});

/** A sampler that answers `rates[i]` requests a second for its i-th piece (the last repeats), and records pauses. */
function scriptedSampler(rates: number[]): CapacitySampler & { pieces: number; pauses: number[] } {
  const fake = {
    pieces: 0,
    pauses: [] as number[],
    async sample(seconds: number) {
      const rate = rates[Math.min(fake.pieces, rates.length - 1)]!;
      fake.pieces++;
      return { requests: Math.round(rate * seconds), seconds };
    },
    async pause(seconds: number) {
      fake.pauses.push(seconds);
    },
  };
  return fake;
}

describe('measureClock: the clock from short pieces of closed-loop traffic (issue 23)', () => {
  const rate = 120;
  it('a quiet machine is measured in one piece and gets the fastest clock', async () => {
    const sampler = scriptedSampler([1_500]);
    const m = await measureClock(sampler, rate);
    expect(m).toMatchObject({ timeScale: MAX_DEMO_TIME_SCALE, perSecond: 1_500, samples: 1, rounds: [1_500] });
    expect(sampler.pauses).toEqual([0]); // the traffic stopped, no further round
  });

  it('a burst of load at the first measurement (14 requests/s, a suite\'s start) does not fix a 3x clock: measured again after a pause, the best round counts', async () => {
    // Round 1: four pieces at 14/s; round 2, after the pause: the machine answers 1,268/s again.
    const sampler = scriptedSampler([14, 14, 14, 14, 1_268]);
    const m = await measureClock(sampler, rate);
    expect(timeScaleFor(14, rate)).toBe(MIN_DEMO_TIME_SCALE); // what the single 2 s measurement chose
    expect(m.timeScale).toBe(MAX_DEMO_TIME_SCALE);
    expect(m.rounds.map(Math.round)).toEqual([14, 1_268]);
    expect(sampler.pauses).toEqual([2, 0]);
  });

  it('a machine that stays slow gets the same slow clock every round: a longer rehearsal, never a faster clock than it carries', async () => {
    const sampler = scriptedSampler([40]);
    const m = await measureClock(sampler, rate);
    expect(m.timeScale).toBe(timeScaleFor(40, rate));
    expect(m.rounds).toEqual([40, 40, 40]);
    expect(sampler.pauses).toEqual([2, 4, 0]);
    // and the traffic then fits the share of what the machine carries
    expect((rate * m.timeScale) / 60).toBeLessThanOrEqual(CAPACITY_SHARE * 40);
  });

  it('a round is the requests over all its pieces, not its best piece; a round at half the fastest clock or better is not repeated', async () => {
    // 200/s gives 30x (the remeasure threshold, max / 2): one round of four pieces, averaged.
    const sampler = scriptedSampler([100, 300, 100, 300]);
    const m = await measureClock(sampler, rate);
    expect(m).toMatchObject({ perSecond: 200, timeScale: timeScaleFor(200, rate), samples: 4, rounds: [200] });
    expect(m.timeScale).toBe(30);
  });

  it('takes its own bounds (the stepped e2e tests: 1x to 10x, 60 % share)', async () => {
    const bounds = { min: 1, max: 10, share: 0.6 };
    const fast = await measureClock(scriptedSampler([170]), 600, { bounds, maxSamples: 6 });
    expect(fast).toMatchObject({ timeScale: 10, samples: 1 });
    const slow = await measureClock(scriptedSampler([20, 20, 20, 20, 20, 20, 150]), 600, { bounds, maxSamples: 6 });
    expect(slow.rounds).toEqual([20, 150]);
    expect(slow.timeScale).toBe(timeScaleFor(150, 600, bounds));
  });
});

describe('startTraffic on the policy clock', () => {
  let server: Server;
  let base = '';
  let delayMs = 0;
  let posts = 0;
  let badPosts = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        if (req.method === 'POST') {
          posts++;
          try {
            JSON.parse(body);
            if (req.headers['content-type'] !== 'application/json' || Number(req.headers['content-length']) !== Buffer.byteLength(body)) badPosts++;
          } catch {
            badPosts++;
          }
        }
        // An answer the client no longer waits for (its deadline, or stop()) is dropped with its timer.
        const answer = setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: true }));
        }, delayMs);
        res.on('close', () => clearTimeout(answer));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const run = async (maxInFlight: number, wallMs: number, requestTimeoutMs = 20_000) => {
    const traffic = startTraffic({ baseUrl: base, requestsPerPolicyMinute: 120, timeScale: 30, maxInFlight, seed: 5, label: 'test', requestTimeoutMs });
    await new Promise((resolve) => setTimeout(resolve, wallMs));
    return traffic.stop();
  };

  it('keeps its schedule whether the server answers at once or slowly: the count follows the clock, not the answers', async () => {
    // The in-flight bound (at most 90 requests are due in 1.5 s) never binds, so on any machine each turn of the
    // dispatcher starts every request due: a loaded machine (the server shares this process) slows the answers, not
    // the count. With 64 a run at load 30 had 64 slow answers waiting and started 71 of 94.
    delayMs = 0;
    const quick = await run(256, 1_500);
    delayMs = 150;
    const slow = await run(256, 1_500);
    for (const stats of [quick, slow]) {
      // 60 requests a wall second at 120 a policy minute on 30x; every one due was started.
      expect(stats.schedule.started).toBe(stats.schedule.due);
      expect(stats.schedule.maxBehind).toBe(0);
      expect(stats.schedule.due).toBe(requestsDue(stats.schedule.policyMinutes * 60_000 / 30, 120, 30));
      expect(stats.schedule.due).toBeGreaterThan(30);
    }
    // A closed loop of 4 workers against a 150 ms server could send at most 4 / 0.15 s = 27 a second; this sent
    // what the schedule asked (60 a second), with the slow answers merely in flight meanwhile.
    expect(slow.schedule.due / (slow.schedule.policyMinutes * 2)).toBeGreaterThan(27);
  });

  it('sends each learning write whole, as JSON, and counts every answer it read', async () => {
    delayMs = 0;
    posts = 0;
    badPosts = 0;
    const stats = await run(256, 1_500);
    expect(posts).toBeGreaterThan(0);
    expect(badPosts).toBe(0);
    expect(stats.transportErrors).toBe(0);
    expect(stats.byStatus[200]).toBe(stats.sent);
  });

  it('sends again, on another socket, a request whose kept-alive socket the server closed under it: nothing lost', async () => {
    // The race a keep-alive client meets when a server drops an idle connection just as a request goes out on it.
    const requestsOn = new WeakMap<object, number>();
    let dropped = 0;
    const dropping = createServer((req, res) => {
      const seen = (requestsOn.get(req.socket) ?? 0) + 1;
      requestsOn.set(req.socket, seen);
      // At most 2 drops: a retry may get another kept-alive socket and be its second request too, so one request
      // could meet every drop; the client retries a stale socket twice (demo/traffic.ts), so 3 drops failed 2 in 14.
      if (seen === 2 && dropped < 2) {
        dropped++;
        req.socket.destroy();
        return;
      }
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    });
    await new Promise<void>((resolve) => dropping.listen(0, '127.0.0.1', resolve));
    try {
      const traffic = startTraffic({ baseUrl: `http://127.0.0.1:${(dropping.address() as AddressInfo).port}`, requestsPerPolicyMinute: 120, timeScale: 30, seed: 5, label: 'test', requestTimeoutMs: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const stats = await traffic.stop();
      expect(dropped).toBeGreaterThan(0);
      expect(stats.transportErrors).toBe(0);
      expect(stats.byStatus[200]).toBe(stats.sent);
    } finally {
      dropping.closeAllConnections();
      await new Promise((resolve) => dropping.close(resolve));
    }
  });

  it('counts a request without an answer by its deadline as a transport error, and stop() cuts the rest without counting them', async () => {
    delayMs = 60_000; // never within the run: every request either passes its 100 ms deadline or is cut by stop()
    const stats = await run(256, 1_500, 100);
    server.closeAllConnections();
    expect(stats.transportErrors).toBeGreaterThan(0);
    expect(stats.sent).toBe(stats.transportErrors);
    expect(stats.byStatus).toEqual({});
  });

  it('reports the slip when the machine cannot keep it (in-flight bound reached), instead of hiding it', async () => {
    delayMs = 200;
    const stats = await run(1, 1_500);
    expect(stats.schedule.maxBehind).toBeGreaterThan(10);
    expect(stats.schedule.started).toBeLessThan(stats.schedule.due);
  });

  it('refuses a schedule it cannot honour', () => {
    expect(() => startTraffic({ baseUrl: base, requestsPerPolicyMinute: 0, timeScale: 60, seed: 1, label: 'x' })).toThrow(RangeError);
    expect(() => startTraffic({ baseUrl: base, requestsPerPolicyMinute: 10, timeScale: Number.NaN, seed: 1, label: 'x' })).toThrow(RangeError);
  });
});

/**
 * A model of what the service's snippet cache lets through to Context7, for the treatment of one step: a read misses
 * when its (scope, query) entry is absent or older than the 5-minute TTL, and a learning write empties its scope's
 * entries (service/domain/memory.ts: invalidateScope) and is itself a Context7 call. Deterministic: the traffic's
 * generator with the rehearsal's seed, on the policy clock.
 */
function treatmentContext7Calls(seed: number, percent: number, requestsPerPolicyMinute: number, policyMinutes: number): number[] {
  const generator = createTrafficGenerator({ scopeIds: DEMO_SCOPE_IDS, zipfExponent: DEMO_ZIPF_EXPONENT, random: createRng(seed * 1000 + 1), writerId: 'model', runNonce: 'model' });
  const cachedAt = new Map<string, number>();
  const callsByMinute: number[] = [];
  let calls = 0;
  for (let i = 0; i < requestsPerPolicyMinute * policyMinutes; i++) {
    const minute = i / requestsPerPolicyMinute;
    while (callsByMinute.length < Math.floor(minute)) callsByMinute.push(calls);
    const plan = generator.next();
    if (!plan.scopeId || cohortOf(plan.scopeId, percent) !== 'treatment') continue;
    if (plan.endpoint === 'patterns') {
      for (const key of [...cachedAt.keys()]) if (key.startsWith(`${plan.scopeId} `)) cachedAt.delete(key);
      calls++;
    } else if (plan.endpoint === 'snippets') {
      const key = `${plan.scopeId} ${plan.body}`;
      const at = cachedAt.get(key);
      if (at === undefined || minute - at >= 5) {
        cachedAt.set(key, minute);
        calls++;
      }
    }
  }
  return callsByMinute;
}

describe("the 5 % step's evidence at the demo's rates", () => {
  const policy = loadPolicy(DEMO_POLICY);
  const firstStep = policy.exposure.steps[0]!;
  // The 5 % step advances once the treatment's Context7 error rate is out of doubt below the runbook's 5 % (the
  // 30-minute check's limit, in force by then): with no error, the 95 % Wilson bound needs this many calls.
  const callsNeeded = (() => {
    let n = 1;
    while (wilsonInterval(0, n, policy.confidence).upper >= 0.05) n++;
    return n;
  })();

  it('needs 73 Context7 calls from the eight exposed scopes', () => {
    expect(callsNeeded).toBe(73);
    expect(DEMO_SCOPE_IDS.filter((id) => cohortOf(id, firstStep.percent) === 'treatment')).toHaveLength(8);
  });

  // Seeds: production (2) and the fleet's retry (3), as rehearsal.ts gives them.
  it.each([2, 3])('with seed %i they arrive within the step\'s length and two thirds of its looks', (seed) => {
    const calls = treatmentContext7Calls(seed, firstStep.percent, DEMO_TRAFFIC.stepped, 60);
    const minute = calls.findIndex((n) => n >= callsNeeded);
    expect(minute, `calls by minute: ${calls.join(' ')}`).toBeGreaterThan(0);
    // Within the step's own length (a step short of data is extended once, then held), with a poll to spare...
    expect(minute * 60 + policy.pollIntervalSeconds).toBeLessThanOrEqual(firstStep.analysisSeconds);
    // ...and within two thirds of the looks the policy allows the step.
    expect(Math.ceil(firstStep.analysisSeconds / policy.pollIntervalSeconds)).toBeLessThanOrEqual((policy.exposure.comparison.maxLooksPerStep * 2) / 3);
  });
});
