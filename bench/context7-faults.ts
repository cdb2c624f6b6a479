/**
 * Measures what a memory request costs when Context7 hangs, refuses, fails or is slow, with the DEFAULT client
 * settings (2 s timeout, 2 retries, a breaker that opens after 5 failed calls for 10 s): the Context7 rows of the
 * service README's Reliability table come from this. Run by hand: `npx tsx bench/context7-faults.ts`.
 * The service runs in process on its embedded defaults (SQLite), the Context7 emulator on loopback with the fault
 * under test; each row is 20 sequential snippet reads that miss the cache, then 20 learning writes.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createMemoryService } from '../service/compose';
import { loadConfig } from '../service/config';
import { startContext7Emulator, type Context7FaultsPatch } from '../service/context7/emulator';
import { generateScopeIdSync } from '../service/domain/scope-id';
import { createServiceLogger } from '../service/logging';

const API_KEY = 'c7-measure-key-0123456789abcdef';
const ROUNDS = 20;
const scopeId = generateScopeIdSync({ locationId: 'measure', agentId: 'a', promptText: 'p' });

interface Row {
  fault: string;
  read: string;
  write: string;
  sources: string;
}

async function closedPortUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function summary(samples: number[], statuses: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)]!;
  const byStatus = [...new Set(statuses)].map((status) => `${statuses.filter((s) => s === status).length}×${status}`).join(' ');
  return `first ${samples[0]!.toFixed(0)} ms, p50 ${p50.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms (${byStatus})`;
}

async function measure(fault: string, context7Url: string, apply: () => void): Promise<Row> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c7-faults-'));
  const env = {
    DATA_DIR: dataDir,
    ENABLE_CONTEXT7_MEMORY: 'true',
    CONTEXT7_API_KEY: API_KEY,
    CONTEXT7_BASE_URL: context7Url,
    LOG_LEVEL: 'silent',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    MEMORY_AUTH: 'open',
  };
  const config = loadConfig(env);
  const service = createMemoryService(config, { logger: createServiceLogger({ level: 'silent', secrets: [] }), enableSchedule: false, dataPlane: null });
  const { url } = await service.start(0, '127.0.0.1');
  apply();
  const post = async (route: string, body: unknown) => {
    const started = performance.now();
    const response = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await response.json()) as { source?: string };
    return { ms: performance.now() - started, status: response.status, source: json.source ?? '' };
  };
  const reads: Array<{ ms: number; status: number; source: string }> = [];
  for (let i = 0; i < ROUNDS; i += 1) reads.push(await post('/api/memory/snippets', { scopeId, query: `${fault} question ${i}` }));
  const writes: Array<{ ms: number; status: number; source: string }> = [];
  for (let i = 0; i < ROUNDS; i += 1) writes.push(await post('/api/memory/patterns', { scopeId, patterns: [`${fault} pattern ${i}`] }));
  await service.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
  const sources = [...new Set(reads.map((r) => r.source))].map((source) => `${reads.filter((r) => r.source === source).length}×${source}`).join(' ');
  return {
    fault,
    read: summary(reads.map((r) => r.ms), reads.map((r) => r.status)),
    write: summary(writes.map((r) => r.ms), writes.map((r) => r.status)),
    sources,
  };
}

async function main(): Promise<void> {
  const emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 3 });
  const cases: Array<[string, Context7FaultsPatch]> = [
    ['healthy', {}],
    ['hangs (accepts, never answers)', { hang: true }],
    ['drops the connection', { outage: true }],
    ['answers 5xx', { errorRate: 1 }],
    ['answers 429', { rateLimit: { retryAfterSeconds: 1 } }],
    ['answers 401 (key revoked)', { wrongKey: true }],
    ['slow, +300 ms', { latencyMs: 300 }],
    ['slow, +2500 ms (past the 2 s timeout)', { latencyMs: 2_500 }],
  ];
  const rows: Row[] = [];
  try {
    for (const [name, faults] of cases) {
      process.stderr.write(`measuring: Context7 ${name}\n`);
      rows.push(await measure(name, emulator.url, () => {
        emulator.resetFaults();
        emulator.setFaults(faults);
      }));
    }
    process.stderr.write('measuring: Context7 refused (nothing listens)\n');
    rows.push(await measure('refused (nothing listens)', await closedPortUrl(), () => undefined));
  } finally {
    await emulator.close();
  }
  process.stdout.write('| Context7 | snippet read (cache miss) | answered from | learning write |\n|---|---|---|---|\n');
  for (const row of rows) process.stdout.write(`| ${row.fault} | ${row.read} | ${row.sources} | ${row.write} |\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`context7-faults: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
