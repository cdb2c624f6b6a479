/**
 * Measures what a request costs when PostgreSQL hangs, refuses or is slow, with the DEFAULT deadlines (the
 * README's Reliability table comes from this). Run by hand: `npx tsx bench/store-faults.ts` against the local
 * PostgreSQL (TEST_PG_ADMIN_URL or postgres@127.0.0.1:5432). Not part of the test suite: it waits out real
 * multi-second deadlines (about 2 minutes in all, most of it the 60 s start deadline).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createMemoryService } from '../service/compose';
import { loadConfig } from '../service/config';
import { startContext7Emulator } from '../service/context7/emulator';
import { PostgresMemoryStore } from '../service/data-access/postgres-store';
import { generateScopeIdSync } from '../service/domain/scope-id';
import { createDataPlane } from '../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../service/fleet/data-plane-config';
import { createServiceLogger } from '../service/logging';
import { createTestDatabase } from '../test/data-plane/support/postgres';
import { startStallProxy, type StallProxy } from '../test/support/stall-proxy';

const API_KEY = 'c7-measure-key-0123456789abcdef';
const scopeId = generateScopeIdSync({ locationId: 'measure', agentId: 'a', promptText: 'p' });

/** A proxy that delays every chunk by `delayMs` each way: a slow but answering database. */
async function startDelayProxy(port: number, delayMs: number): Promise<{ url(u: string): string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end).on('data', (chunk) => setTimeout(() => upstream.write(chunk), delayMs));
    upstream.on('error', end).on('close', end).on('data', (chunk) => setTimeout(() => client.write(chunk), delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const own = (server.address() as net.AddressInfo).port;
  return {
    url(u) {
      const url = new URL(u);
      url.hostname = '127.0.0.1';
      url.port = String(own);
      return url.toString();
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

async function serviceAt(databaseUrl: string, context7Url?: string) {
  const env = {
    DATABASE_URL: databaseUrl,
    ENABLE_CONTEXT7_MEMORY: 'true',
    MEMORY_AUTH: 'open',
    ...(context7Url ? { CONTEXT7_API_KEY: API_KEY, CONTEXT7_BASE_URL: context7Url } : {}),
    LOG_LEVEL: 'silent',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
  };
  const config = loadConfig(env);
  const logger = createServiceLogger({ level: 'silent', secrets: [] });
  const service = createMemoryService(config, { logger, dataPlane: createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger }), enableSchedule: false });
  const { url } = await service.start(0, '127.0.0.1');
  return { service, url };
}

async function timedPost(url: string, route: string, body: unknown): Promise<string> {
  const started = performance.now();
  const response = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await response.arrayBuffer();
  return `${response.status} in ${((performance.now() - started) / 1000).toFixed(2)} s`;
}

async function main(): Promise<void> {
  const db = await createTestDatabase('measure');
  const seed = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 1 });
  await seed.migrate();
  await seed.close();
  const emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 3 });
  const results: Record<string, string> = {};
  const write = (url: string, content: string) => timedPost(url, '/api/memory/patterns', { scopeId, patterns: [content] });
  const read = (url: string) => timedPost(url, '/api/memory/snippets', { scopeId });
  try {
    // Hung: the proxy accepts and reads, forwards nothing.
    for (const withContext7 of [false, true]) {
      const proxy: StallProxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
      const { service, url } = await serviceAt(proxy.url(db.url), withContext7 ? emulator.url : undefined);
      await write(url, `warm ${withContext7}`);
      proxy.pause();
      const label = withContext7 ? 'hung, Context7 on' : 'hung, Context7 off/no key';
      results[`${label}: read`] = await read(url);
      results[`${label}: write`] = await write(url, `hung ${withContext7}`);
      await service.stop();
      await proxy.close();
    }
    // Refused: nothing listens any more.
    {
      const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
      const { service, url } = await serviceAt(proxy.url(db.url));
      await write(url, 'warm refused');
      await proxy.refuse();
      results['refused: read'] = await read(url);
      results['refused: write'] = await write(url, 'refused');
      await service.stop();
    }
    // Slow: every byte delayed each way.
    for (const delayMs of [100, 600]) {
      const proxy = await startDelayProxy(5432, delayMs);
      const { service, url } = await serviceAt(proxy.url(db.url));
      await write(url, `warm slow ${delayMs}`);
      results[`slow (+${delayMs} ms each way): read`] = await read(url);
      results[`slow (+${delayMs} ms each way): write`] = await write(url, `slow ${delayMs}`);
      await service.stop();
      await proxy.close();
    }
    // The real process: SIGTERM while a write waits on a hung PostgreSQL, and a start against one.
    {
      const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
      const child = spawn(process.execPath, ['--import', 'tsx', 'service/main.ts'], {
        env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ENABLE_CONTEXT7_MEMORY: 'false', DATABASE_URL: proxy.url(db.url) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (chunk) => (output += chunk));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      let port: string | undefined;
      while (!(port = /listening on 127\.0\.0\.1:(\d+)/.exec(output)?.[1])) await new Promise((r) => setTimeout(r, 50));
      const url = `http://127.0.0.1:${port}`;
      await write(url, 'warm sigterm');
      proxy.pause();
      const inFlight = write(url, 'in flight');
      await new Promise((r) => setTimeout(r, 200));
      const signalled = performance.now();
      child.kill('SIGTERM');
      const code = await exited;
      results['SIGTERM while hung: exit'] = `code ${code} after ${((performance.now() - signalled) / 1000).toFixed(2)} s`;
      results['SIGTERM while hung: in-flight write'] = await inFlight.catch((error: Error) => error.message);
      await proxy.close();
    }
    {
      const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
      proxy.pause();
      const started = performance.now();
      const child = spawn(process.execPath, ['--import', 'tsx', 'service/main.ts'], {
        env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ENABLE_CONTEXT7_MEMORY: 'false', DATABASE_URL: proxy.url(db.url) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (chunk) => (output += chunk));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      const waiting = output.split('\n').filter((line) => line.includes('Waiting for PostgreSQL')).length;
      results['start against hung'] = `exit ${code} after ${((performance.now() - started) / 1000).toFixed(1)} s (incl. process start), ${waiting} waiting lines`;
      await proxy.close();
    }
  } finally {
    await emulator.close();
    await db.drop();
  }
  for (const [name, value] of Object.entries(results)) console.log(`${name.padEnd(45)} ${value}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
