/**
 * The service process of `npm run bench:service`: the memory service and a bare Express route beside it, in one
 * process of their own. The bench compiles this file as `npm run build` compiles the service (scripts/build.mjs's
 * BUNDLE_OPTIONS) and runs it as `npm start` runs dist/service/main.js (`node --enable-source-maps`), so it measures
 * the code Render runs; BENCH_SERVICE_RUNTIME=tsx runs it under the tsx loader instead, for comparison.
 *
 * Prints one JSON line ({ serviceUrl, bareUrl }) once both listen; stops on SIGTERM.
 */
import fs from 'node:fs';
import http from 'node:http';
import { findSourceMap } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import pino from 'pino';
import { loadConfig } from '../service/config';
import { createMemoryService } from '../service/compose';
import { CONTEXT7_HTTP_CLIENTS, type Context7HttpClient } from '../service/context7/client';
import { createMissMarks } from './service-miss-marks';
import { startCpuProfile, type CpuProfile } from './service-profile';

/** Values the parent sends too (bench/service.ts). */
export const BENCH_CONTEXT7_API_KEY = 'bench-context7-key-0123456789';
/** The service's caller key (issue 13): a local bench value, sent on every memory request. */
export const BENCH_CALLER_KEY = 'bench-service-caller-key-0123456789';
/** Profiler sampling interval (µs) in --profile mode. */
export const PROFILE_SAMPLING_US = 100;

async function listen(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A compiled child's profile names the bundle; the profile's steps (service-profile.ts) go by source file, so each
 * frame is mapped back through the bundle's source map (present under --enable-source-maps).
 */
function toSourceFrames(profile: CpuProfile): CpuProfile {
  for (const { callFrame } of profile.nodes) {
    if (!callFrame.url.startsWith('file://') || callFrame.url.includes('/node_modules/')) continue;
    const map = findSourceMap(fileURLToPath(callFrame.url));
    const entry = map?.findEntry(callFrame.lineNumber, (callFrame as { columnNumber?: number }).columnNumber ?? 0);
    if (entry && 'originalSource' in entry && entry.originalSource) {
      callFrame.url = entry.originalSource.startsWith('file://') ? entry.originalSource : `file://${path.resolve(path.dirname(fileURLToPath(callFrame.url)), entry.originalSource)}`;
      callFrame.lineNumber = entry.originalLine;
    }
  }
  return profile;
}

async function serve(): Promise<void> {
  const emulatorUrl = process.env.BENCH_EMULATOR_URL;
  if (!emulatorUrl) throw new Error('BENCH_EMULATOR_URL is required');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-service-'));
  const configIn = (dir: string) => loadConfig({
    DATA_DIR: dir,
    ENABLE_CONTEXT7_MEMORY: 'true',
    CONTEXT7_API_KEY: BENCH_CONTEXT7_API_KEY,
    CONTEXT7_BASE_URL: emulatorUrl,
    CONTEXT7_TIMEOUT_MS: process.env.BENCH_CONTEXT7_TIMEOUT_MS ?? '1000',
    LOG_LEVEL: 'info',
    RENDER_INSTANCE_ID: 'bench',
    MEMORY_API_KEYS: `bench:${BENCH_CALLER_KEY}`,
    // The library under the Context7 client: the default unless the bench is run with one.
    ...(process.env.CONTEXT7_HTTP_CLIENT ? { CONTEXT7_HTTP_CLIENT: process.env.CONTEXT7_HTTP_CLIENT } : {}),
  });
  // As `npm start` builds it, logging at info to /dev/null (the same serialization work, no terminal).
  const build = (dir: string, httpClient: Context7HttpClient) =>
    createMemoryService(configIn(dir), {
      logDestination: pino.destination({ dest: '/dev/null', sync: false }),
      enableSchedule: false,
      // A long half-open delay keeps the breaker open for the whole hung case.
      context7ClientOptions: { breakerThreshold: 5, breakerHalfOpenAfterMs: 120_000, httpClient },
    });
  // The library CONTEXT7_HTTP_CLIENT gives by default (what Render runs), and the other one.
  const httpClient = configIn(dataDir).context7HttpClient;
  const otherHttpClient = CONTEXT7_HTTP_CLIENTS.find((library) => library !== httpClient)!;
  const service = build(dataDir, httpClient);
  const { url } = await service.start(0, '127.0.0.1');
  // The same service with the other library under its Context7 client (issue 29's seventh round): only the timed
  // misses use it, alternated with the others, so a miss through each library is measured in the same run.
  const otherDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-service-other-'));
  const otherService = build(otherDataDir, otherHttpClient);
  const { url: otherUrl } = await otherService.start(0, '127.0.0.1');

  // The baseline: the same body parsing and a fixed answer. /breaker reports the service's breaker.
  const bareApp = express();
  bareApp.post('/bare', express.json(), (_req, res) => {
    res.json({ snippets: [], source: 'bare' });
  });
  bareApp.get('/breaker', (_req, res) => {
    res.json({ state: service.context7?.circuitState() ?? 'none' });
  });
  // The timed misses: where each one's time goes inside this process (service-miss-marks.ts).
  const missMarks = createMissMarks('/api/memory/snippets', '/v1/snippets/search');
  // BENCH_MISS_PROFILE=<file>: a CPU profile of the timed misses too (10 µs sampling), for Chrome DevTools.
  let stopMissProfile: (() => Promise<CpuProfile>) | null = null;
  bareApp.post('/__marks/start', async (_req, res) => {
    if (process.env.BENCH_MISS_PROFILE) stopMissProfile = await startCpuProfile(10);
    missMarks.start();
    res.json({ started: true });
  });
  bareApp.post('/__marks/stop', async (_req, res) => {
    const segments = missMarks.stop();
    if (stopMissProfile) fs.writeFileSync(process.env.BENCH_MISS_PROFILE!, JSON.stringify(toSourceFrames(await stopMissProfile())));
    stopMissProfile = null;
    res.json(segments);
  });
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    // --instructions (node --expose-gc): a full collection before each counted round.
    bareApp.post('/__gc', (_req, res) => {
      collect();
      res.json({ collected: true });
    });
  }
  if (process.env.BENCH_PROFILE) {
    // --profile: the parent starts and stops the profiler around each measured run (after its warm-up).
    let stopProfile: (() => Promise<CpuProfile>) | null = null;
    bareApp.post('/__profile/start', async (_req, res) => {
      stopProfile = await startCpuProfile(PROFILE_SAMPLING_US);
      res.json({ started: true });
    });
    bareApp.post('/__profile/stop', async (_req, res) => {
      const profile = await stopProfile!();
      stopProfile = null;
      res.json(toSourceFrames(profile));
    });
  }
  const bare = await listen(bareApp);
  process.stdout.write(`${JSON.stringify({ serviceUrl: url, httpClient, otherServiceUrl: otherUrl, otherHttpClient, bareUrl: bare.url })}\n`);
  process.once('SIGTERM', () => {
    void Promise.all([service.stop(), otherService.stop(), bare.close()]).finally(() => {
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(otherDataDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

if (process.env.BENCH_SERVICE_CHILD) {
  serve().catch((error: unknown) => {
    process.stderr.write(`[bench:service child] failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
