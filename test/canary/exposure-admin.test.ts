import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createExposureAdmin } from '../../canary/sources/exposure-admin';
import { httpProbe, type HttpProbe } from '../../canary/sources/http';
import { startStallProxy, type StallProxy } from '../support/stall-proxy';
import { FakeExposureService } from './support/fake-exposure-service';

const ADMIN_TOKEN = 'admin_exposure_test_TOKEN_never_recorded';

function port(service: FakeExposureService, probe: HttpProbe, clock: { now: number }, baseUrl = 'http://127.0.0.1:9') {
  return createExposureAdmin({
    baseUrl,
    adminToken: ADMIN_TOKEN,
    probe,
    timeoutMs: 1000,
    pollMs: 100,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now += ms;
    },
  });
}

describe('exposure port', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it('sets the percentage with the admin token and waits until every instance applied it, timing the wait', async () => {
    const clock = { now: Date.parse('2026-11-24T12:00:00Z') };
    const service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => clock.now, applyDelayMs: 700, instances: ['a', 'b', 'c'] });
    const change = await port(service, service.probe, clock).change(25, 'step 2 of 4', 10_000);
    // Instance c (third) applies after 3 x 700 ms; the port polls every 100 ms, so it sees it at 2.1 s.
    expect(change).toMatchObject({ percent: 25, version: 1, confirmedBy: 'instances', instances: ['a', 'b', 'c'], seconds: 2.1 });
    expect(change.failed).toBeUndefined();
    expect(service.changes).toEqual([expect.objectContaining({ percent: 25, actor: 'canary', reason: 'step 2 of 4' })]);
    expect(JSON.stringify(change)).not.toContain(ADMIN_TOKEN);
  });

  it('without a per-instance list (no Redis), takes the change as applied after three consecutive reads report it', async () => {
    const clock = { now: 0 };
    const service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => clock.now, applyDelayMs: 500, listInstances: false });
    const change = await port(service, service.probe, clock).change(25, 'step 2', 10_000);
    // The answering instance applies it at 0.5 s; reads at 0.5, 0.6 and 0.7 s report it.
    expect(change).toMatchObject({ percent: 25, version: 1, confirmedBy: 'consecutive-reads', instances: [], seconds: 0.7 });
  });

  it('reports a change the fleet did not apply within the bound, naming what it last saw', async () => {
    const clock = { now: 0 };
    const service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => clock.now, applyDelayMs: 5_000 });
    const change = await port(service, service.probe, clock).change(0, 'kill switch', 3_000);
    expect(change.appliedAt).toBeUndefined();
    expect(change.failed).toMatch(/not applied everywhere within 3000 ms \(last read: v1 .*srv-a v0/);
  });

  it('refuses clearly: a percentage above the ceiling (4xx with the service\'s reason) and a wrong token', async () => {
    const clock = { now: 0 };
    const service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: () => clock.now, ceiling: 50 });
    const above = await port(service, service.probe, clock).change(100, 'step', 1_000);
    expect(above.failed).toMatch(/HTTP 409: percent 100 is above the ceiling 50/);
    const wrong = createExposureAdmin({ baseUrl: 'http://x', adminToken: 'not-it', probe: service.probe, timeoutMs: 1, pollMs: 1, now: () => 0, sleep: async () => {} });
    expect(await wrong.read()).toEqual({ ok: false, detail: 'HTTP 401: admin token required' });
    expect(service.changes).toEqual([]);
  });

  it('gives up on a stalled service within its per-call deadline (real HTTP through a stalling TCP proxy)', async () => {
    const service = new FakeExposureService({ adminToken: ADMIN_TOKEN, now: Date.now });
    const { url, server } = await service.listen();
    closers.push(() => new Promise<void>((resolve) => (server as Server).close(() => resolve())));
    const proxy: StallProxy = await startStallProxy({ host: '127.0.0.1', port: Number(new URL(url).port) });
    closers.push(() => proxy.close());
    const admin = createExposureAdmin({
      baseUrl: proxy.url(url),
      adminToken: ADMIN_TOKEN,
      probe: httpProbe,
      timeoutMs: 400,
      pollMs: 50,
      now: Date.now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    });
    const live = await admin.change(5, 'step 1', 5_000);
    expect(live).toMatchObject({ percent: 5, confirmedBy: 'instances' });

    proxy.pause();
    const started = Date.now();
    const stalled = await admin.change(0, 'kill switch', 5_000);
    const elapsed = Date.now() - started;
    expect(stalled.failed).toMatch(/PUT \/api\/admin\/exposure 0%: no answer within 400 ms/);
    // The contract: one call's deadline (400 ms), not the apply bound (5 s). Generous for a loaded machine.
    expect(elapsed).toBeGreaterThanOrEqual(380);
    expect(elapsed).toBeLessThan(3_000);
    expect(await admin.read()).toEqual({ ok: false, detail: 'no answer within 400 ms' });
  });
});
