import { describe, expect, it } from 'vitest';
import { healthCheckAction, isRoutable, nextInstanceState, nextRolloutPhase, restartDelayMs, rolloutVerdict, scalePlan } from '../../render/emulator/fleet';
import { downstreamResponseHeaders, mayRetry, pickUpstream, requestHasBody, upstreamRequestHeaders } from '../../render/emulator/lb-routing';

describe('instance lifecycle', () => {
  it('only an exit nobody asked for is a crash', () => {
    expect(nextInstanceState('healthy', 'exited')).toBe('crashed');
    expect(nextInstanceState('starting', 'exited')).toBe('failed');
    // A retired instance stops when its process group is gone (the drain decides), not when its shell exits.
    expect(nextInstanceState('draining', 'exited')).toBe('draining');
    expect(nextInstanceState('stopping', 'exited')).toBe('stopping');
  });

  it('routes only healthy instances, and a drained one never comes back', () => {
    expect(nextInstanceState('starting', 'passed_health_check')).toBe('healthy');
    expect(isRoutable('healthy')).toBe(true);
    for (const state of ['starting', 'crashed', 'draining', 'stopping', 'stopped', 'failed'] as const) expect(isRoutable(state)).toBe(false);
    expect(nextInstanceState('draining', 'passed_health_check')).toBe('draining');
    expect(nextInstanceState('healthy', 'drain')).toBe('draining');
    expect(nextInstanceState('draining', 'terminate')).toBe('stopping');
    expect(nextInstanceState('stopped', 'restarting')).toBe('stopped');
    expect(nextInstanceState('crashed', 'restarting')).toBe('starting');
  });

  it('a serving instance failing its periodic health check leaves the rotation, then is restarted; a pass brings it back', () => {
    const limits = { unhealthyAfterMs: 15_000, restartAfterMs: 60_000 };
    expect(healthCheckAction('healthy', undefined, limits)).toBe('none');
    expect(healthCheckAction('healthy', 5_000, limits)).toBe('none');
    expect(healthCheckAction('healthy', 15_000, limits)).toBe('unroute');
    expect(healthCheckAction('unhealthy', 30_000, limits)).toBe('none');
    expect(healthCheckAction('unhealthy', 60_000, limits)).toBe('restart');
    expect(healthCheckAction('unhealthy', undefined, limits)).toBe('recovered');
    expect(healthCheckAction('draining', 90_000, limits)).toBe('none');
    expect(nextInstanceState('healthy', 'failing_health_checks')).toBe('unhealthy');
    expect(nextInstanceState('unhealthy', 'passed_health_check')).toBe('healthy');
    expect(nextInstanceState('unhealthy', 'exited')).toBe('crashed');
    expect(isRoutable('unhealthy')).toBe(false);
  });

  it('a deploy goes live only when every new instance is healthy', () => {
    expect(rolloutVerdict(['healthy', 'healthy'])).toBe('healthy');
    expect(rolloutVerdict(['healthy', 'starting'])).toBe('waiting');
    expect(rolloutVerdict(['healthy', 'failed'])).toBe('failed');
    expect(rolloutVerdict([])).toBe('failed');
  });

  it('a deploy is live from its traffic shift, drains only once replaced, and a failed one never goes live', () => {
    expect(nextRolloutPhase('starting', 'traffic_shifted')).toBe('live');
    expect(nextRolloutPhase('starting', 'instance_failed')).toBe('failed');
    expect(nextRolloutPhase('failed', 'traffic_shifted')).toBe('failed');
    expect(nextRolloutPhase('starting', 'replaced')).toBe('starting');
    expect(nextRolloutPhase('live', 'replaced')).toBe('draining');
    expect(nextRolloutPhase('draining', 'drained')).toBe('retired');
    expect(nextRolloutPhase('live', 'drained')).toBe('live');
  });

  it('scaling starts the missing instances, and retires crashed, then starting, then the newest healthy', () => {
    const fleet = [
      { instanceId: 'a', state: 'healthy' as const, startedAt: 1 },
      { instanceId: 'b', state: 'healthy' as const, startedAt: 3 },
      { instanceId: 'c', state: 'crashed' as const, startedAt: 2 },
      { instanceId: 'd', state: 'stopped' as const, startedAt: 4 },
    ];
    expect(scalePlan(fleet, 5)).toEqual({ start: 2, retire: [] });
    expect(scalePlan(fleet, 3)).toEqual({ start: 0, retire: [] });
    expect(scalePlan(fleet, 1)).toEqual({ start: 0, retire: ['c', 'b'] });
  });

  it('restarts back off up to 5 s', () => {
    expect(restartDelayMs(0)).toBe(250);
    expect(restartDelayMs(2)).toBe(1_000);
    expect(restartDelayMs(10)).toBe(5_000);
  });
});

describe('load balancer decisions', () => {
  it('picks the least busy instance and goes round robin among equals', () => {
    const idle = [{ key: 'a', inFlight: 0 }, { key: 'b', inFlight: 0 }, { key: 'c', inFlight: 0 }];
    let turn = 0;
    const picked: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      const pick = pickUpstream(idle, turn, new Set())!;
      picked.push(pick.key);
      turn = pick.nextTurn;
    }
    expect(picked).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(pickUpstream([{ key: 'a', inFlight: 3 }, { key: 'b', inFlight: 1 }], 0, new Set())!.key).toBe('b');
    expect(pickUpstream(idle, 0, new Set(['a', 'b']))!.key).toBe('c');
    expect(pickUpstream(idle, 0, new Set(['a', 'b', 'c']))).toBeUndefined();
    expect(pickUpstream([], 0, new Set())).toBeUndefined();
  });

  it('retries only idempotent requests without a body that got no answer and hit no deadline', () => {
    const base = { method: 'GET', hasBody: false, responseStarted: false, timedOut: false, attemptsMade: 1, maxAttempts: 3 };
    expect(mayRetry(base)).toBe(true);
    expect(mayRetry({ ...base, method: 'POST' })).toBe(false);
    expect(mayRetry({ ...base, method: 'PATCH' })).toBe(false);
    expect(mayRetry({ ...base, method: 'PUT', hasBody: true })).toBe(false);
    expect(mayRetry({ ...base, method: 'DELETE' })).toBe(true);
    expect(mayRetry({ ...base, responseStarted: true })).toBe(false);
    expect(mayRetry({ ...base, timedOut: true })).toBe(false);
    expect(mayRetry({ ...base, attemptsMade: 3 })).toBe(false);
    expect(requestHasBody({ 'content-length': '0' })).toBe(false);
    expect(requestHasBody({ 'content-length': '12' })).toBe(true);
    expect(requestHasBody({ 'transfer-encoding': 'chunked' })).toBe(true);
  });

  it('appends the client to X-Forwarded-For and drops hop-by-hop headers both ways', () => {
    const up = upstreamRequestHeaders(
      { host: 'x', connection: 'keep-alive, x-private', 'keep-alive': 'timeout=5', 'x-private': '1', 'x-forwarded-for': '203.0.113.9', accept: 'application/json' },
      '127.0.0.1',
    );
    expect(up).toEqual({ host: 'x', accept: 'application/json', 'x-forwarded-for': '203.0.113.9, 127.0.0.1', 'x-forwarded-proto': 'http' });
    expect(upstreamRequestHeaders({}, '127.0.0.1')['x-forwarded-for']).toBe('127.0.0.1');
    const down = downstreamResponseHeaders(['Set-Cookie', 'a=1', 'Connection', 'keep-alive', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'X-Id', '7']);
    expect(down).toEqual(['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X-Id', '7']);
  });
});
