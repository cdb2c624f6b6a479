/**
 * `canary stepped --prepare`: the runtime exposure stored before the flag turns on, against the real service with
 * the flag off, so the flag-on deploy never exposes the stack's ceiling for a moment.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { prepareExposure } from '../../canary/exposure/prepare';
import { httpProbe } from '../../canary/sources/http';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from '../service/support/harness';

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const start = async () => {
  harness = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, ENABLE_CONTEXT7_MEMORY: 'false', CONTEXT7_EXPOSURE_PERCENT: '100' } });
  return harness;
};
const prepare = (h: Harness, percent: number, adminToken = TEST_ADMIN_TOKEN) =>
  prepareExposure({ baseUrl: h.url, adminToken, percent, firstStepPercent: 5, probe: httpProbe, timeoutMs: 5_000 });

describe('stepped --prepare', () => {
  it.each([5, 0])('stores %i % while the flag is off: nothing is exposed now, and the flag-on deploy starts from it', async (percent) => {
    const h = await start();
    const result = await prepare(h, percent);
    expect(result).toMatchObject({ ok: true });
    expect(result.detail).toMatch(new RegExp(`stored at ${percent} %.*the flag is off`));
    const state = await h.request('GET', '/api/admin/exposure', undefined, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    expect(state.body).toMatchObject({ flagOn: false, percent: 0, runtimePercent: percent, ceiling: 100 });
  });

  it('refuses more than the first step, and says why, without calling the service', async () => {
    const h = await start();
    const result = await prepare(h, 25);
    expect(result).toMatchObject({ ok: false });
    expect(result.detail).toMatch(/above the first step \(5 %\)/);
    const state = await h.request('GET', '/api/admin/exposure', undefined, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    expect(state.body.runtimePercent).toBeNull();
  });

  it('a wrong admin token is a clear failure, never a silent success', async () => {
    const h = await start();
    const result = await prepare(h, 5, 'not-the-admin-token-0123456789');
    expect(result).toMatchObject({ ok: false });
    expect(result.detail).toMatch(/HTTP 401/);
    expect(result.detail).not.toContain('not-the-admin-token');
  });
});
