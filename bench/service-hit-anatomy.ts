/**
 * What a cache hit costs the framework, counted rather than timed (issue 29's fourth round): per request, the router
 * layers Express matches the path against and the handlers it runs, and the async resources (promises above all)
 * the process creates, for the bare Express route of bench/service-child.ts and for a cache hit of the service. A
 * count does not depend on the machine's load, so it holds on a busy machine where a time does not. Then, with the
 * counting off, the process's CPU time per request in alternated rounds, and a hit's difference to the bare route.
 *
 *   npx tsx bench/service-hit-anatomy.ts     # BENCH_ANATOMY_REQUESTS (200) sequential requests per case
 *
 * Also bytes allocated per request (V8's sampling heap profiler, objects already collected included), in total and
 * by the allocating function: garbage is CPU too (scavenges, on the main thread and V8's helper threads), and it
 * does not show in a CPU profile of the request's own steps. BENCH_ANATOMY_ALLOC_REQUESTS (3000) per case.
 *
 * Everything runs in this one process on loopback: the Context7 emulator (it answers the one miss that fills the
 * cache), the service as createMemoryService builds it, the bare route, and a client of plain callbacks (it creates
 * no promise of its own; its sockets and request objects are the same for both cases).
 */
import { createHook } from 'node:async_hooks';
import { Session } from 'node:inspector/promises';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import pino from 'pino';
import { startContext7Emulator } from '../service/context7/emulator';
import { createMemoryService } from '../service/compose';
import { loadConfig } from '../service/config';
import { generateScopeIdSync } from '../service/domain/scope-id';

const REQUESTS = Number(process.env.BENCH_ANATOMY_REQUESTS ?? 200);
/** CPU time: BENCH_ANATOMY_CPU_ROUNDS (7) alternated rounds of BENCH_ANATOMY_CPU_REQUESTS (3000) per case. */
const CPU_ROUNDS = Number(process.env.BENCH_ANATOMY_CPU_ROUNDS ?? 7);
const CPU_REQUESTS = Number(process.env.BENCH_ANATOMY_CPU_REQUESTS ?? 3000);
const ALLOC_REQUESTS = Number(process.env.BENCH_ANATOMY_ALLOC_REQUESTS ?? 3000);
/** Bytes between two heap samples: small, so a few hundred bytes per request still get sampled often. */
const ALLOC_SAMPLING_BYTES = 256;

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** The heap samples' bytes by allocating function (`name url:line`), collected objects included. */
function allocationsByFunction(root: HeapNode): Map<string, number> {
  const byFunction = new Map<string, number>();
  const walk = (node: HeapNode) => {
    if (node.selfSize > 0) {
      const { functionName, url, lineNumber } = node.callFrame;
      const where = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^.*\/(service|bench)\//, '$1/')}:${lineNumber + 1}`;
      byFunction.set(where, (byFunction.get(where) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child);
  };
  walk(root);
  return byFunction;
}
const CONTEXT7_KEY = 'anatomy-context7-key-0123456789';
const CALLER_KEY = 'anatomy-caller-key-0123456789';

// The router's own Layer, as Express loads it: each match of a path against a layer, and each handler it runs.
const require = createRequire(path.join(path.dirname(require_resolve_express()), 'package.json'));
function require_resolve_express(): string {
  return createRequire(__filename).resolve('express');
}
const Layer = require('router/lib/layer.js') as { prototype: { match(path: string): boolean; handleRequest(...args: unknown[]): unknown } };

const counts = new Map<string, number>();
let counting = false;
const count = (name: string) => {
  if (counting) counts.set(name, (counts.get(name) ?? 0) + 1);
};
const originalMatch = Layer.prototype.match;
Layer.prototype.match = function match(this: unknown, pathname: string) {
  count('router: layers matched against the path');
  return originalMatch.call(this, pathname);
};
const originalHandle = Layer.prototype.handleRequest;
Layer.prototype.handleRequest = function handleRequest(this: unknown, ...args: unknown[]) {
  count('router: handlers run (one per layer entered)');
  return originalHandle.apply(this, args);
};
const hook = createHook({ init: (_id, type) => count(`async resources: ${type}`) }).enable();

function sum(byFunction: Map<string, number>): number {
  let total = 0;
  for (const bytes of byFunction.values()) total += bytes;
  return total;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** `amount` sequential POSTs on one keep-alive socket, with callbacks only; resolves once all are answered. */
function sequential(agent: http.Agent, url: string, headers: Record<string, string>, body: string, amount: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = amount;
    const once = () => {
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${url}: ${res.statusCode}`));
        res.resume();
        // The next request one turn later, once the agent has the socket back (keep-alive: no connection per request).
        res.on('end', () => (--left === 0 ? resolve() : setImmediate(once)));
      });
      req.on('error', reject);
      req.end(body);
    };
    once();
  });
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-anatomy-'));
  const emulator = await startContext7Emulator({ apiKey: CONTEXT7_KEY });
  const service = createMemoryService(
    loadConfig({
      DATA_DIR: dataDir,
      ENABLE_CONTEXT7_MEMORY: 'true',
      CONTEXT7_API_KEY: CONTEXT7_KEY,
      CONTEXT7_BASE_URL: emulator.url,
      LOG_LEVEL: 'info',
      RENDER_INSTANCE_ID: 'anatomy',
      MEMORY_API_KEYS: `anatomy:${CALLER_KEY}`,
    }),
    { logDestination: pino.destination({ dest: '/dev/null', sync: false }), enableSchedule: false },
  );
  const { url: serviceUrl } = await service.start(0, '127.0.0.1');
  const bareApp = express();
  bareApp.post('/bare', express.json(), (_req, res) => {
    res.json({ snippets: [], source: 'bare' });
  });
  const bare = http.createServer(bareApp);
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
  const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/bare`;

  const scopeId = generateScopeIdSync({ locationId: 'bench', agentId: 'agent-1', promptText: 'You are a helpful assistant' });
  const body = JSON.stringify({ scopeId, query: 'greeting' });
  const auth = { authorization: `Bearer ${CALLER_KEY}` };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const cases = [
    { name: 'bare Express route', url: bareUrl },
    { name: 'cache hit', url: `${serviceUrl}/api/memory/snippets` },
  ];
  const perCase = new Map<string, Map<string, number>>();
  const cpuUs = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const allocations = new Map<string, Map<string, number>>();
  try {
    // Warm-up: the hit's first request is the miss that fills the cache; the JIT settles on both.
    for (const c of cases) await sequential(agent, c.url, auth, body, 500);
    for (const c of cases) {
      counts.clear();
      counting = true;
      await sequential(agent, c.url, auth, body, REQUESTS);
      counting = false;
      perCase.set(c.name, new Map(counts));
    }
    // Then CPU time, with the counting taken out: this process's CPU (client, both servers) per request, rounds
    // alternated. The client's share is the same for both cases, so the difference is what a hit adds to the bare
    // route, on one thread, without the scheduler's share in it (a descheduled process spends no CPU).
    hook.disable();
    Layer.prototype.match = originalMatch;
    Layer.prototype.handleRequest = originalHandle;
    for (let round = 0; round < CPU_ROUNDS; round += 1) {
      for (const c of cases) {
        const before = process.cpuUsage();
        await sequential(agent, c.url, auth, body, CPU_REQUESTS);
        const used = process.cpuUsage(before);
        cpuUs.get(c.name)!.push((used.user + used.system) / CPU_REQUESTS);
      }
    }
    // Then allocations, with the sampling heap profiler; the client's share is the same for both cases.
    const session = new Session();
    session.connect();
    for (const c of cases) {
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: ALLOC_SAMPLING_BYTES,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      await sequential(agent, c.url, auth, body, ALLOC_REQUESTS);
      const { profile } = await session.post('HeapProfiler.getSamplingProfile');
      await session.post('HeapProfiler.stopSampling');
      allocations.set(c.name, allocationsByFunction(profile.head as unknown as HeapNode));
    }
    session.disconnect();
  } finally {
    agent.destroy();
    bare.closeAllConnections();
    await new Promise((resolve) => bare.close(resolve));
    await service.stop();
    await emulator.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }

  const names = [...new Set([...perCase.values()].flatMap((m) => [...m.keys()]))].sort();
  const lines = [
    '',
    `per request, ${REQUESTS} sequential requests on one keep-alive socket, after 500 of warm-up (node ${process.version}; counts, not times)`,
    `${'what'.padEnd(58)}${cases.map((c) => c.name.padStart(20)).join('')}`,
    ...names.map((name) => `${name.padEnd(58)}${cases.map((c) => ((perCase.get(c.name)!.get(name) ?? 0) / REQUESTS).toFixed(2).padStart(20)).join('')}`),
    '',
    ...(CPU_ROUNDS > 0 ? [
      `CPU µs per request of this process (client and servers), ${CPU_ROUNDS} alternated rounds of ${CPU_REQUESTS}; load average ${os.loadavg()[0].toFixed(1)}`,
      ...cases.map((c) => `${c.name.padEnd(24)}${cpuUs.get(c.name)!.map((us) => us.toFixed(1).padStart(8)).join('')}   median ${median(cpuUs.get(c.name)!).toFixed(1)}`),
      `${'hit - bare'.padEnd(24)}${cpuUs.get(cases[1]!.name)!.map((us, i) => (us - cpuUs.get(cases[0]!.name)![i]!).toFixed(1).padStart(8)).join('')}   median ${median(cpuUs.get(cases[1]!.name)!.map((us, i) => us - cpuUs.get(cases[0]!.name)![i]!)).toFixed(1)}`,
    ] : []),
    '',
    `bytes allocated per request (sampling heap profiler every ${ALLOC_SAMPLING_BYTES} B, collected objects included; ${ALLOC_REQUESTS} sequential requests per case; this process: client and servers)`,
    ...cases.map((c) => `${c.name.padEnd(24)}${(sum(allocations.get(c.name)!) / ALLOC_REQUESTS).toFixed(0).padStart(8)} B`),
    ...cases.flatMap((c) => [
      `  top allocating functions, ${c.name} (B per request)`,
      ...[...allocations.get(c.name)!]
        .sort((a, b) => b[1] - a[1])
        .slice(0, Number(process.env.BENCH_ANATOMY_ALLOC_TOP ?? 25))
        .map(([where, bytes]) => `  ${(bytes / ALLOC_REQUESTS).toFixed(0).padStart(8)}  ${where}`),
    ]),
'',
  ];
  process.stdout.write(lines.join('\n'));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
