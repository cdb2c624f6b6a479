/**
 * The memory service on loopback for local load runs (bench:load, load:local, load:verify): the Context7 emulator
 * and the service (flag on, embedded SQLite in a scratch folder, in-process cache, LOG_LEVEL=warn) as child
 * processes on 127.0.0.1, with a caller key and a load-test token made per run. Nothing here is printed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startTsxChild, waitUntil, type RunningChild } from './processes';

const ROOT = resolve(__dirname, '..', '..');

export interface LocalStack {
  /** the service's base URL, http://127.0.0.1:<port> */
  url: string;
  /** the caller key the service accepts (MEMORY_API_KEY for the load generator) */
  memoryApiKey: string;
  /** the service's LOAD_TEST_TOKEN (sent on every load request, as in a deployed run) */
  loadTestToken: string;
  context7LatencyMs: number;
  /** the service's own counters (cache hit rate, fallbacks, Context7 errors), rounded */
  serviceMetrics(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startLocalStack(options: { context7LatencyMs: number; log?: (line: string) => void }): Promise<LocalStack> {
  const log = options.log ?? (() => undefined);
  const dataDir = mkdtempSync(join(tmpdir(), 'load-local-data-'));
  // A random key per run: the emulator checks it, nothing prints it.
  const apiKey = randomBytes(16).toString('hex');
  const memoryApiKey = randomBytes(24).toString('hex');
  const loadTestToken = randomBytes(16).toString('hex');
  // The embedded defaults: SQLite in a scratch dir and the in-process cache, whatever the caller's env says.
  const baseEnv: NodeJS.ProcessEnv = { ...process.env };
  delete baseEnv.DATABASE_URL;
  delete baseEnv.REDIS_URL;
  delete baseEnv.PORT;
  const children: RunningChild[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => c.stop()));
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    log(`starting the Context7 emulator (${options.context7LatencyMs} ms added latency)`);
    const emulator = await startTsxChild(
      'Context7 emulator',
      join(ROOT, 'service', 'context7', 'emulator-main.ts'),
      ['--port', '0', '--host', '127.0.0.1', '--latency-ms', String(options.context7LatencyMs)],
      { ...baseEnv, CONTEXT7_API_KEY: apiKey },
      'listening',
    );
    children.push(emulator);
    log('starting the memory service (ENABLE_CONTEXT7_MEMORY=true, SQLite)');
    const service = await startTsxChild(
      'memory service',
      join(ROOT, 'load', 'bench', 'service-child.ts'),
      [],
      {
        ...baseEnv,
        NODE_ENV: 'production',
        LOG_LEVEL: 'warn',
        ENABLE_CONTEXT7_MEMORY: 'true',
        CONTEXT7_API_KEY: apiKey,
        CONTEXT7_BASE_URL: emulator.url,
        LOAD_TEST_TOKEN: loadTestToken,
        DATA_DIR: dataDir,
        MEMORY_API_KEYS: `load-local:${memoryApiKey}:loadtest-*`, // the load tests' reserved locations only (service/domain/scope-id.ts)
        MEMORY_AUTH: '',
      },
      'load-bench-service-listening',
    );
    children.push(service);
    await waitUntil(`${service.url}/api/memory/health`, (status, body) => status === 200 && body.includes('"available":true'));
    log(`service ready at ${service.url}, Context7 available`);
    return {
      url: service.url,
      memoryApiKey,
      loadTestToken,
      context7LatencyMs: options.context7LatencyMs,
      async serviceMetrics() {
        const res = await fetch(`${service.url}/api/metrics/memory`, { signal: AbortSignal.timeout(5_000) });
        const m = (await res.json()) as Record<string, unknown>;
        const out: Record<string, number> = {};
        for (const key of ['cacheHitRate', 'fallbackRate', 'errorRate', 'avgLatency', 'context7Requests']) {
          if (typeof m[key] === 'number') out[key] = Number((m[key] as number).toFixed(4));
        }
        return out;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
