import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RenderClient } from '../../render/client';
import { backoffMs, jitterUp, parseRateLimit, parseRetryAfterMs, TokenBucket } from '../../render/pacing';
import { fakeTime } from './support/helpers';

describe('rate-limit arithmetic', () => {
  const now = Date.parse('2026-11-23T12:00:00Z');

  it('reads Retry-After as seconds or as an HTTP date, and ignores garbage', () => {
    expect(parseRetryAfterMs({ 'Retry-After': '3' }, now)).toBe(3000);
    expect(parseRetryAfterMs({ 'retry-after': '0.5' }, now)).toBe(500);
    expect(parseRetryAfterMs({ 'retry-after': 'Mon, 23 Nov 2026 12:00:10 GMT' }, now)).toBe(10_000);
    expect(parseRetryAfterMs({ 'retry-after': 'Mon, 23 Nov 2026 11:00:00 GMT' }, now)).toBe(0);
    expect(parseRetryAfterMs({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(parseRetryAfterMs({}, now)).toBeUndefined();
  });

  it('reads Ratelimit-* headers, with Reset as delta seconds or epoch seconds', () => {
    expect(parseRateLimit({ 'ratelimit-limit': '100', 'ratelimit-remaining': '0', 'ratelimit-reset': '12' }, now)).toEqual({
      limit: 100,
      remaining: 0,
      resetMs: 12_000,
    });
    expect(parseRateLimit({ 'Ratelimit-Reset': String(now / 1000 + 30) }, now)).toEqual({ resetMs: 30_000 });
    expect(parseRateLimit({ 'ratelimit-remaining': 'n/a' }, now)).toEqual({});
  });

  it('keeps jittered backoff within [base, min(cap, base * 2^attempt)]', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
        const ms = backoffMs(attempt, 500, 30_000, () => r);
        return ms >= 500 && ms <= Math.min(30_000, 500 * 2 ** attempt);
      }),
    );
    expect(jitterUp(1000, () => 0)).toBe(1000);
    expect(jitterUp(1000, () => 0.999)).toBeLessThanOrEqual(1200);
  });

  it('token bucket: capacity up front, then one token per window/capacity on the injected clock', async () => {
    const time = fakeTime();
    const bucket = new TokenBucket(10, 60_000, time.clock);
    for (let i = 0; i < 10; i++) expect(bucket.tryTake()).toBe(0);
    expect(bucket.tryTake()).toBe(6000);
    time.advance(3000);
    expect(bucket.tryTake()).toBe(3000);
    expect(await bucket.take(time.sleep)).toBe(3000);
    time.advance(10 * 60_000);
    for (let i = 0; i < 10; i++) expect(bucket.tryTake()).toBe(0); // refill is capped at capacity
    expect(bucket.tryTake()).toBeGreaterThan(0);
  });
});

describe('RenderClient pacing on Ratelimit headers of successful responses', () => {
  it('pauses until the window resets when Ratelimit-Remaining reaches 0', async () => {
    let calls = 0;
    const server = http.createServer((_req, res) => {
      calls += 1;
      res.setHeader('content-type', 'application/json');
      res.setHeader('ratelimit-limit', '2');
      res.setHeader('ratelimit-remaining', calls === 1 ? '0' : '1');
      res.setHeader('ratelimit-reset', '5');
      res.end(JSON.stringify([{ owner: { id: 'tea-1', name: 'n', email: 'e@example.com', type: 'team' }, cursor: 'c1' }]));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const time = fakeTime();
      const c = new RenderClient({
        apiKey: 'k',
        baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
        clock: time.clock,
        sleep: time.sleep,
      });
      await c.listOwners();
      expect(time.sleeps).toEqual([]);
      await c.listOwners();
      expect(time.sleeps).toEqual([5000]);
      await c.listOwners();
      expect(time.sleeps).toEqual([5000]);
      expect(calls).toBe(3);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('turns a non-JSON success body into a typed error, not a crash', async () => {
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<html>maintenance</html>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const c = new RenderClient({ apiKey: 'k', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` });
      await expect(c.getService('srv-1')).rejects.toMatchObject({ name: 'RenderApiError', operation: 'getService', status: 200 });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('RenderClient request encoding', () => {
  it('sends query parameters in the style the spec declares and the bearer key in the header', async () => {
    const seen: Array<{ url: string; auth: string | undefined }> = [];
    const server = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', auth: req.headers.authorization });
      res.setHeader('content-type', 'application/json');
      res.end('[]');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const c = new RenderClient({ apiKey: 'key-1', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/` });
      await c.findServicesByName('memory api', { ownerId: 'tea-1' });
      await c.listDeploys('srv-1', { status: ['queued', 'created'], limit: 5 });
      await c.listEnvVars('srv/1');
      const urls = seen.map((s) => new URL(s.url, 'http://x'));
      expect(urls[0]!.pathname).toBe('/v1/services');
      expect(urls[0]!.searchParams.getAll('name')).toEqual(['memory api']); // explode: false, one value
      expect(urls[0]!.searchParams.get('ownerId')).toBe('tea-1');
      expect(urls[1]!.pathname).toBe('/v1/services/srv-1/deploys');
      expect(urls[1]!.searchParams.getAll('status')).toEqual(['queued', 'created']); // form, explode
      expect(urls[1]!.searchParams.get('limit')).toBe('5');
      expect(urls[2]!.pathname).toBe('/v1/services/srv%2F1/env-vars');
      expect(seen.every((s) => s.auth === 'Bearer key-1')).toBe(true);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('RenderClient deploy waits on every terminal status', () => {
  /** A stub Render that walks one deploy through the given statuses, one per GET. */
  async function withDeployStatuses(statuses: string[], run: (c: RenderClient) => Promise<void>) {
    let polls = 0;
    const server = http.createServer((_req, res) => {
      const status = statuses[Math.min(polls++, statuses.length - 1)];
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'dep-1', status }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const time = fakeTime();
      await run(new RenderClient({ apiKey: 'k', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, clock: time.clock, sleep: time.sleep }));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  it.each(['build_failed', 'update_failed', 'canceled', 'pre_deploy_failed'])('%s is a DeployFailedError naming the status', async (failed) => {
    await withDeployStatuses(['build_in_progress', failed], async (c) => {
      await expect(c.waitForDeploy('srv-1', 'dep-1', { pollIntervalMs: 1000 })).rejects.toMatchObject({ name: 'DeployFailedError', status: failed, deployId: 'dep-1' });
    });
  });

  it('deactivated counts as done: the deploy went live and a newer one replaced it', async () => {
    await withDeployStatuses(['update_in_progress', 'deactivated'], async (c) => {
      expect((await c.waitForDeploy('srv-1', 'dep-1', { pollIntervalMs: 1000 })).status).toBe('deactivated');
    });
  });
});
