/**
 * The real process (`dist/service/main.js`, compiled from `service/main.ts` by test/global-setup.ts) against a
 * hung PostgreSQL: a start gives up with a clear message and a non-zero exit, and SIGTERM exits within its budget
 * while the store hangs. Deadlines are short for the test; the time bounds asserted are generous limits that prove
 * "bounded" (a hang used to last 40 s and more).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { scope, waitFor } from '../service/support/harness';
import { startStallProxy, type StallProxy } from '../support/stall-proxy';
import { SHORT_DEADLINES } from './support/hang';
import { createTestDatabase, type TestDatabase } from './support/postgres';

let db: TestDatabase;
const children: ChildProcess[] = [];
const proxies: StallProxy[] = [];

beforeAll(async () => {
  db = await createTestDatabase('pghangproc');
  const seed = new PostgresMemoryStore({ connectionString: db.url, maxConnections: 1 });
  await seed.migrate();
  await seed.close();
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

afterAll(async () => {
  await db?.drop();
});

async function proxyToPostgres(): Promise<StallProxy> {
  const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
  proxies.push(proxy);
  return proxy;
}

function spawnService(databaseUrl: string) {
  // The compiled service (dist/, built by test/global-setup.ts), as Render runs it: no TypeScript loader to start.
  const child = spawn(process.execPath, ['--enable-source-maps', 'dist/service/main.js'], {
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ENABLE_CONTEXT7_MEMORY: 'false',
      MEMORY_AUTH: 'open', // deadlines, not credentials, are under test
      RENDER_INSTANCE_ID: 'pg-hang-process',
      DATABASE_URL: databaseUrl,
      ...SHORT_DEADLINES,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
  return { child, output: () => output, exited };
}

describe('the service process against a hung PostgreSQL', () => {
  it('a start logs what it waits for and gives up after DATABASE_START_TIMEOUT_MS with exit 1', async () => {
    const proxy = await proxyToPostgres();
    proxy.pause();
    const started = Date.now();
    const run = spawnService(proxy.url(db.url));
    const { code, at } = await run.exited;
    expect(code).toBe(1);
    // 1.5 s start budget plus process start-up; it used to sit in "starting" for ever.
    expect(at - started).toBeLessThan(15_000);
    const output = run.output();
    expect(output).toMatch(/\[MEMORY_ERROR\] Waiting for PostgreSQL at start: connecting and applying migrations/);
    expect(output).toMatch(/\[MEMORY_ERROR\] Startup failed: PostgreSQL did not answer within 1500 ms at start/);
    expect(output).not.toContain(db.url);
  });

  it('SIGTERM exits within its budget while the store hangs, answering the in-flight write 503', async () => {
    const proxy = await proxyToPostgres();
    const run = spawnService(proxy.url(db.url));
    const port = await waitFor('the child to listen', () => {
      if (run.child.exitCode !== null) throw new Error(`service exited early: ${run.output()}`);
      return /Memory service listening on 127\.0\.0\.1:(\d+)/.exec(run.output())?.[1];
    }, 30_000);
    const url = `http://127.0.0.1:${port}`;
    await waitFor('readiness', async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 30_000);

    proxy.pause();
    const inFlight = fetch(`${url}/api/memory/patterns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scopeId: scope('pg-sigterm', 'w', 'p'), patterns: ['in flight during the hang'] }),
    }).then(async (response) => ({ status: response.status, body: await response.json() }));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the write is waiting on PostgreSQL
    const signalledAt = Date.now();
    run.child.kill('SIGTERM');
    const { code, at } = await run.exited;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeLessThan(5_000);
    expect(await inFlight).toEqual({ status: 503, body: { error: 'The memory store is unavailable: retry later' } });
    expect(run.output()).toMatch(/Memory service stopped/);
  });
});
