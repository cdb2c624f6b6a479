/**
 * Test harness: a real memory service on 127.0.0.1:0 (in-process), optionally with the real Context7
 * emulator behind it, a private DATA_DIR, and every log line captured as parsed JSON.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll } from 'vitest';
import { loadConfig, type ServiceConfig } from '../../../service/config';
import { createMemoryService, type MemoryService, type MemoryServiceOverrides } from '../../../service/compose';
import { startContext7Emulator, type Context7Emulator, type EmulatorOptions } from '../../../service/context7/emulator';
import { generateScopeIdSync } from '../../../service/domain/scope-id';

export const TEST_API_KEY = 'c7-test-key-0123456789abcdef';
export const TEST_ADMIN_TOKEN = 'admin-test-token-fedcba9876543210';
/** The caller key every harness configures (MEMORY_API_KEYS) and sends on /api/memory/* unless told otherwise. */
export const TEST_CALLER_KEY = 'caller-test-key-00112233445566778899';
/**
 * The reserved locations' keys (service/domain/scope-id.ts RESERVED_LOCATION_PREFIXES): a key without locations
 * never reaches them, so the harness also configures a probe key and a load-test key, and sends the one a request's
 * scope needs (a request that names its own Authorization keeps it).
 */
export const TEST_PROBE_CALLER_KEY = 'probe-test-key-00112233445566778899';
export const TEST_LOAD_CALLER_KEY = 'load-test-caller-key-0011223344556677';
export const TEST_CALLER_KEYS = `test-caller:${TEST_CALLER_KEY};test-probe:${TEST_PROBE_CALLER_KEY}:canaryprobe-*;test-load:${TEST_LOAD_CALLER_KEY}:loadtest-*`;
export const CALLER_AUTH = { authorization: `Bearer ${TEST_CALLER_KEY}` } as const;

/** The harness key for a request body's scope: the reserved prefixes' own keys, else the customer key. */
function defaultKeyFor(body: unknown): string {
  const scopeId = typeof body === 'object' && body !== null ? (body as { scopeId?: unknown }).scopeId : undefined;
  if (typeof scopeId === 'string' && scopeId.startsWith('scope:canaryprobe-')) return TEST_PROBE_CALLER_KEY;
  if (typeof scopeId === 'string' && scopeId.startsWith('scope:loadtest-')) return TEST_LOAD_CALLER_KEY;
  return TEST_CALLER_KEY;
}

/** Whether a request already names its credential (a test of the auth itself, or of another key). */
function hasAuthorization(headers: Record<string, string>): boolean {
  return Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
}

export class LogCapture extends Writable {
  readonly raw: string[] = [];
  constructor() {
    super({ decodeStrings: false });
  }
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line.trim() !== '') this.raw.push(line);
    callback();
  }
  lines(): Record<string, unknown>[] {
    return this.raw.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  messages(): string[] {
    return this.lines().map((line) => String(line.msg));
  }
  text(): string {
    return this.raw.join('\n');
  }
}

export interface HarnessOptions {
  /** Extra environment; the harness sets DATA_DIR, PORT and, with an emulator, the Context7 variables. */
  env?: Record<string, string>;
  /** Start the Context7 emulator (with these options) and point the service at it. */
  emulator?: EmulatorOptions | false;
  overrides?: MemoryServiceOverrides;
  dataDir?: string;
  /**
   * The credential sent on /api/memory/* when a request sets no Authorization header: the harness's own test key
   * by default; null sends none (tests of the credential check itself).
   */
  callerKey?: string | null;
}

export interface Harness {
  service: MemoryService;
  config: ServiceConfig;
  url: string;
  emulator: Context7Emulator | null;
  logs: LogCapture;
  dataDir: string;
  request(method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; text: string; headers: Headers }>;
  close(): Promise<void>;
}

/** Every data directory tempDataDir made in this test file, removed after its last test (a test may remove it sooner). */
const tempDataDirs: string[] = [];
export function removeTempDataDirs(): void {
  for (const dir of tempDataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
// Registers in the first file that imports this module only: files sharing a worker (isolate: false) import it once,
// so the shared-servers project registers it again for each file (test/support/shared-servers-setup.ts).
afterAll(removeTempDataDirs);

export function tempDataDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `memory-${label}-`));
  tempDataDirs.push(dir);
  return dir;
}

export function scope(location = 'test', agent = 'agent-1', prompt = 'You are a helpful assistant'): string {
  return generateScopeIdSync({ locationId: location, agentId: agent, promptText: prompt });
}

/** Fast breaker/retry settings so fault tests take milliseconds, not seconds. */
export const FAST_CLIENT = {
  maxRetries: 1,
  retryInitialDelayMs: 5,
  retryMaxDelayMs: 20,
  breakerThreshold: 1_000,
  breakerHalfOpenAfterMs: 60_000,
} as const;

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const emulator = options.emulator === undefined || options.emulator === false
    ? null
    : await startContext7Emulator({ apiKey: TEST_API_KEY, seed: 7, ...options.emulator });
  const dataDir = options.dataDir ?? tempDataDir('svc');
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    PORT: '0',
    LOG_LEVEL: 'debug',
    RENDER_INSTANCE_ID: 'test-instance',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    // Memory routes need a caller credential since issue 13: the harness configures one and sends it by default.
    ...(options.env?.MEMORY_AUTH === undefined ? { MEMORY_API_KEYS: TEST_CALLER_KEYS } : {}),
    ...(emulator ? { ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_API_KEY: TEST_API_KEY, CONTEXT7_BASE_URL: emulator.url } : {}),
    ...options.env,
  };
  const config = loadConfig(env);
  const logs = new LogCapture();
  const service = createMemoryService(config, {
    logDestination: logs,
    healthCacheMs: 0,
    enableSchedule: false,
    context7ClientOptions: { timeoutMs: 500, ...FAST_CLIENT },
    // No client here races the drain: close idle keep-alive sockets (fetch's pool) without the 500 ms wait.
    drainQuietMs: 20,
    ...options.overrides,
  });
  let started: { url: string };
  try {
    started = await service.start(0, '127.0.0.1');
  } catch (error) {
    await service.stop().catch(() => undefined);
    await emulator?.close();
    throw error;
  }
  const url = started.url;
  return {
    service,
    config,
    url,
    emulator,
    logs,
    dataDir,
    async request(method, route, body, headers = {}) {
      const callerKey = options.callerKey === undefined ? defaultKeyFor(body) : options.callerKey;
      const sendsCaller = route.startsWith('/api/memory/') && callerKey !== null && !hasAuthorization(headers);
      const init: RequestInit = { method, headers: { ...(sendsCaller ? { authorization: `Bearer ${callerKey}` } : {}), ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) {
          (init.headers as Record<string, string>)['content-type'] = 'application/json';
        }
      }
      const response = await fetch(`${url}${route}`, init);
      const text = await response.text();
      let parsed: unknown = undefined;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: response.status, body: parsed as any, text, headers: response.headers };
    },
    async close() {
      await service.stop();
      await emulator?.close();
      if (!options.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a truthy value (no fixed sleeps); fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
