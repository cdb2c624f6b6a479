/** Shared rate limiting: two Express apps (two instances) counting one client's requests in the same Redis. */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import express from 'express';
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { createDataPlane } from '../../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { createPublicRateLimiter } from '../../service/fleet/rate-limit';
import { generateScopeIdSync } from '../../service/domain/scope-id';
import { createServiceLogger } from '../../service/logging';
import { closeRedis, connectRedis as connectServiceRedis, createRedisClient, whenRedisReady } from '../../service/fleet/redis-connection';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';

let admin: Redis;
let prefix: string;
const servers: Server[] = [];
const clients: Redis[] = [];

/** What the limiters reported (a store error lets the request through: passOnStoreError). */
const problems: string[] = [];

async function startApp(redis: Redis | undefined, limit: number): Promise<string> {
  const app = express();
  app.set('trust proxy', 1);
  const onProblem = (message: string, error: unknown) => problems.push(`${message}: ${(error as Error)?.message ?? String(error)}`);
  app.use('/api/memory', createPublicRateLimiter({ windowMs: 60_000, limit, redis, keyPrefix: prefix, onProblem }));
  app.get('/api/memory/health', (req, res) => {
    res.json({ ip: req.ip });
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function hit(base: string, clientIp: string): Promise<number> {
  const response = await fetch(`${base}/api/memory/health`, { headers: { 'X-Forwarded-For': clientIp } });
  await response.arrayBuffer();
  return response.status;
}

beforeAll(() => {
  admin = connectRedis();
  prefix = randomPrefix('ratelimit');
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await Promise.all(clients.map(closeRedis));
  await deleteKeys(admin, prefix);
  admin.disconnect();
});

describe('createPublicRateLimiter', () => {
  it('counts one client across instances, and other clients separately (keyed by the forwarded IP)', async () => {
    // This test is about shared counting, not the Redis deadline: with the service's 250 ms one reply late on a
    // loaded machine is a store error, which lets that request through (the last test shows that), and the count
    // is off by one. A generous deadline keeps every hit counted; a store error still fails the test, by name.
    const generous = { commandTimeoutMs: 10_000 };
    const redisA = await connectServiceRedis(TEST_REDIS_URL, { name: 'rl-a', ...generous });
    const redisB = await connectServiceRedis(TEST_REDIS_URL, { name: 'rl-b', ...generous });
    clients.push(redisA, redisB);
    const a = await startApp(redisA, 5);
    const b = await startApp(redisB, 5);
    problems.length = 0;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i += 1) statuses.push(await hit(i % 2 ? b : a, '203.0.113.7'));
    expect(problems).toEqual([]);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(await hit(b, '198.51.100.9')).toBe(200);
    const limited = await fetch(`${a}/api/memory/health`, { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('ratelimit-policy')).toMatch(/q=5/);
    expect(await limited.json()).toEqual({ error: expect.stringMatching(/Too many requests/) });
  });

  it('without Redis, each instance counts alone', async () => {
    const a = await startApp(undefined, 2);
    const b = await startApp(undefined, 2);
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push(await hit(i % 2 ? b : a, '203.0.113.8'));
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(await hit(a, '203.0.113.8')).toBe(429);
  });

  it('lets requests through when Redis fails, instead of failing them', async () => {
    const redis = await connectServiceRedis(TEST_REDIS_URL, { name: 'rl-dead' });
    clients.push(redis);
    const a = await startApp(redis, 1);
    expect(await hit(a, '203.0.113.9')).toBe(200);
    redis.disconnect();
    expect(await hit(a, '203.0.113.9')).toBe(200);
    expect(await hit(a, '203.0.113.9')).toBe(200);
  });
});

describe('createPublicRateLimiter when Redis starts late', () => {
  it('limits once Redis is up, although its scripts could not be loaded at start', async () => {
    const late = createRedisClient(TEST_REDIS_URL, { name: 'rl-late' });
    clients.push(late);
    // Built before the connection is ready, as the service does at boot.
    const base = await startApp(late, 2);
    await whenRedisReady(late, 5_000);
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push(await hit(base, '192.0.2.44'));
    expect(statuses).toEqual([200, 200, 429, 429]);
  });
});

describe('createPublicRateLimiter problems', () => {
  it('reports store failures to the given callback instead of the console', async () => {
    const problems: string[] = [];
    const redis = await connectServiceRedis(TEST_REDIS_URL, { name: 'rl-problems' });
    clients.push(redis);
    const app = express();
    app.set('trust proxy', 1);
    app.use(createPublicRateLimiter({ windowMs: 60_000, limit: 5, redis, keyPrefix: prefix, onProblem: (message) => problems.push(message) }));
    app.get('/x', (_req, res) => {
      res.json({ ok: true });
    });
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    servers.push(server);
    redis.disconnect();
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`);
    expect(response.status).toBe(200);
    expect(problems.length).toBeGreaterThan(0);
  });
});

describe('the memory service behind Render’s proxy (two instances sharing Redis)', () => {
  it('limits /api/memory/* per forwarded client IP across instances, and never limits the health routes', async () => {
    const services: MemoryService[] = [];
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ratelimit-svc-'));
    try {
      const urls: string[] = [];
      for (const id of ['rl-a', 'rl-b']) {
        const env = { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: `${prefix}svc:`, RATE_LIMIT_MAX: '3', DATA_DIR: path.join(dataDir, id), RENDER_INSTANCE_ID: id, LOG_LEVEL: 'silent', RENDER: 'true' };
        const config = loadConfig(env);
        const logger = createServiceLogger({ level: 'silent', secrets: [] });
        const service = createMemoryService(config, { logger, dataPlane: createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger }) });
        services.push(service);
        urls.push((await service.start(0, '127.0.0.1')).url);
      }
      const [a, b] = urls as [string, string];
      // Render's proxy appends the address it saw to whatever X-Forwarded-For the client sent (possibly forged).
      let forged = 0;
      const get = async (base: string, route: string, clientIp: string) => {
        forged += 1;
        const response = await fetch(`${base}${route}`, { headers: { 'X-Forwarded-For': `203.0.113.${forged}, ${clientIp}` } });
        return { status: response.status, body: (await response.json()) as { error?: string } };
      };
      // On Render (RENDER=true) TRUST_PROXY_HOPS defaults to its one proxy: the client is the address it appended, and a forged
      // entry in front of it cannot buy a fresh quota.
      const statuses = [];
      for (const base of [a, b, a, b]) statuses.push((await get(base, '/api/memory/health', '198.51.100.7')).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limited = await get(a, '/api/memory/health', '198.51.100.7');
      expect(limited.status).toBe(429);
      expect(limited.body.error).toMatch(/Too many requests/);
      expect((await get(b, '/api/memory/health', '198.51.100.8')).status).toBe(200);
      expect((await get(a, '/readyz', '198.51.100.7')).status).toBe(200);
      expect((await get(b, '/api/config', '198.51.100.7')).status).toBe(200);
    } finally {
      await Promise.all(services.map((service) => service.stop()));
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the load-test token with two instances sharing Redis', () => {
  it('lets load-test scopes through on every instance, and counts customer scopes across them as before', async () => {
    const services: MemoryService[] = [];
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ratelimit-token-'));
    const token = 'fleet-load-test-token-0123456789';
    try {
      const urls: string[] = [];
      for (const id of ['lt-a', 'lt-b']) {
        const env = {
          REDIS_URL: TEST_REDIS_URL,
          REDIS_KEY_PREFIX: `${prefix}lt:`,
          RATE_LIMIT_MAX: '3',
          LOAD_TEST_TOKEN: token,
          MEMORY_AUTH: 'open', // the limiter, not caller credentials, is under test
          DATA_DIR: path.join(dataDir, id),
          RENDER_INSTANCE_ID: id,
          LOG_LEVEL: 'silent',
        };
        const config = loadConfig(env);
        const logger = createServiceLogger({ level: 'silent', secrets: [] });
        const service = createMemoryService(config, { logger, dataPlane: createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger }) });
        services.push(service);
        urls.push((await service.start(0, '127.0.0.1')).url);
      }
      const read = async (base: string, scopeId: string, sendToken: boolean) => {
        const headers: Record<string, string> = { 'content-type': 'application/json', 'X-Forwarded-For': '198.51.100.20' };
        if (sendToken) headers['X-Load-Test-Token'] = token;
        const response = await fetch(`${base}/api/memory/snippets`, { method: 'POST', headers, body: JSON.stringify({ scopeId }) });
        await response.arrayBuffer();
        return response.status;
      };
      const loadScope = generateScopeIdSync({ locationId: 'loadtest-07', agentId: 'agent-1', promptText: 'load' });
      const customerScope = generateScopeIdSync({ locationId: 'acme', agentId: 'agent-1', promptText: 'customer' });
      const statuses: number[] = [];
      for (const base of [...urls, ...urls]) statuses.push(await read(base, customerScope, true));
      expect(statuses).toEqual([200, 200, 200, 429]);
      const exempt: number[] = [];
      for (const base of [...urls, ...urls, ...urls]) exempt.push(await read(base, loadScope, true));
      expect(exempt).toEqual(Array(6).fill(200));
      expect(await read(urls[0]!, loadScope, false)).toBe(429);
    } finally {
      await Promise.all(services.map((service) => service.stop()));
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
