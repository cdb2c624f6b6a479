/**
 * Answer times of one memory service in fleet mode while its Redis is live, hangs, refuses, or is slow: the
 * figures in README's "When Redis hangs" table. Redis is reached through a loopback proxy that can stall
 * (test/support/stall-proxy.ts) or delay every chunk; the service runs with its default deadlines unless the
 * environment says otherwise (REDIS_COMMAND_TIMEOUT_MS, FLEET_METRICS_TIMEOUT_MS).
 *
 *   npx tsx bench/redis-faults.ts [--requests 20]
 *
 * Needs Redis at TEST_REDIS_URL (default redis://127.0.0.1:6379); uses a random key prefix and deletes it after.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { createMemoryService } from '../service/compose';
import { loadConfig } from '../service/config';
import { startContext7Emulator } from '../service/context7/emulator';
import { createDataPlane } from '../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../service/fleet/data-plane-config';
import { createServiceLogger } from '../service/logging';
import { startStallProxy } from '../test/support/stall-proxy';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const upstream = { host: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port || 6379) };
const requestsArg = process.argv.indexOf('--requests');
const REQUESTS = requestsArg > 0 ? Number(process.argv[requestsArg + 1]) : 20;
const API_KEY = 'bench-redis-faults';

/** A proxy that forwards every chunk `delayMs` late, in both directions (a slow Redis or network path). */
async function startDelayProxy(delayMs: number): Promise<{ url(u: string): string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstreamSocket = net.connect(upstream.port, upstream.host);
    sockets.add(client).add(upstreamSocket);
    const forget = () => {
      client.destroy();
      upstreamSocket.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstreamSocket.on('error', forget).on('close', forget);
    client.on('data', (chunk) => setTimeout(() => upstreamSocket.write(chunk), delayMs));
    upstreamSocket.on('data', (chunk) => setTimeout(() => client.write(chunk), delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url(u) {
      const url = new URL(u);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Scenario {
  name: string;
  /** Redis URL for the service, and what to do once it is ready (the fault starts after a clean start). */
  setUp(): Promise<{ url: string; fault(): Promise<void>; close(): Promise<void> }>;
}

const scenarios: Scenario[] = [
  {
    name: 'live',
    async setUp() {
      const proxy = await startStallProxy(upstream);
      return { url: proxy.url(REDIS_URL), fault: async () => {}, close: () => proxy.close() };
    },
  },
  {
    name: 'hangs (accepts, answers nothing)',
    async setUp() {
      const proxy = await startStallProxy(upstream);
      return { url: proxy.url(REDIS_URL), fault: async () => proxy.pause(), close: () => proxy.close() };
    },
  },
  {
    name: 'refused (connection reset, port closed)',
    async setUp() {
      const proxy = await startStallProxy(upstream);
      return { url: proxy.url(REDIS_URL), fault: () => proxy.refuse(), close: () => proxy.close() };
    },
  },
  ...[50, 400].map((delayMs) => ({
    name: `slow (+${2 * delayMs} ms per round trip)`,
    async setUp() {
      const proxy = await startDelayProxy(delayMs);
      return { url: proxy.url(REDIS_URL), fault: async () => {}, close: () => proxy.close() };
    },
  })),
];

function summary(times: number[]): string {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  return `p50 ${at(50).toFixed(0).padStart(4)} ms  max ${sorted[sorted.length - 1]!.toFixed(0).padStart(4)} ms`;
}

async function measure(scenario: Scenario, prefix: string, emulatorUrl: string, dataDir: string): Promise<void> {
  const redis = await scenario.setUp();
  const env = {
    ENABLE_CONTEXT7_MEMORY: 'true',
    MEMORY_AUTH: 'open',
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: emulatorUrl,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
    DATA_DIR: fs.mkdtempSync(path.join(dataDir, 'svc-')),
    LOG_LEVEL: 'silent',
    RATE_LIMIT_MAX: '100000',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    BACKFILL_WATCHDOG_MS: '3600000',
    ...Object.fromEntries(['REDIS_COMMAND_TIMEOUT_MS', 'FLEET_METRICS_TIMEOUT_MS'].filter((k) => process.env[k]).map((k) => [k, process.env[k]!])),
  };
  const config = loadConfig(env);
  const logger = createServiceLogger({ level: 'silent', secrets: [] });
  const service = createMemoryService(config, {
    logger,
    enableSchedule: false,
    dataPlane: createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger }),
  });
  const { url } = await service.start(0, '127.0.0.1');
  await redis.fault();
  const timed = async (method: string, route: string, body?: unknown): Promise<{ ms: number; scope?: string }> => {
    const started = performance.now();
    const response = await fetch(`${url}${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const parsed = (await response.json()) as { scope?: string };
    if (response.status >= 500) throw new Error(`${route} answered ${response.status}`);
    return { ms: performance.now() - started, scope: parsed.scope };
  };
  const metrics: number[] = [];
  const reads: number[] = [];
  const writes: number[] = [];
  const scopes = new Set<string>();
  for (let i = 0; i < REQUESTS; i += 1) {
    const scopeId = `scope:bench:faults:${i.toString(16).padStart(16, '0')}`;
    const m = await timed('GET', '/api/metrics/memory');
    metrics.push(m.ms);
    if (m.scope) scopes.add(m.scope);
    reads.push((await timed('POST', '/api/memory/snippets', { scopeId, query: 'retry' })).ms);
    writes.push((await timed('POST', '/api/memory/patterns', { scopeId, patterns: [`pattern ${i}`] })).ms);
  }
  console.log(`${scenario.name}`);
  console.log(`  GET /api/metrics/memory    ${summary(metrics)}  scope ${[...scopes].join('/')}`);
  console.log(`  POST /api/memory/snippets  ${summary(reads)}`);
  console.log(`  POST /api/memory/patterns  ${summary(writes)}`);
  const stopping = performance.now();
  await service.stop();
  console.log(`  stop()                     ${(performance.now() - stopping).toFixed(0)} ms`);
  await redis.close();
}

async function main(): Promise<void> {
  const prefix = `bench:faults:${randomBytes(4).toString('hex')}:`;
  const emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 5 });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-faults-'));
  const admin = new Redis(REDIS_URL);
  try {
    console.log(`${REQUESTS} sequential rounds per scenario (metrics, read, write), one client, loopback`);
    for (const scenario of scenarios) await measure(scenario, prefix, emulator.url, dataDir);
  } finally {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    admin.disconnect();
    await emulator.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
