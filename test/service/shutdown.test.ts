/**
 * Graceful shutdown: readiness turns 503, in-flight requests finish, job state is persisted as
 * "interrupted" and resumed, and a restart under concurrent writes loses no acknowledged pattern.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import type { MemoryStore } from '../../service/data-access/memory-store';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { BACKFILL_JOB_NAME } from '../../service/domain/backfill';
import { CALLER_AUTH, TEST_ADMIN_TOKEN, TEST_CALLER_KEYS, scope, startHarness, tempDataDir, waitFor, type Harness } from './support/harness';

const children: ChildProcess[] = [];
const harnesses: Harness[] = [];
const dataDirs: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
  for (const dir of dataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

interface RunningService {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

async function startChild(env: Record<string, string>): Promise<RunningService> {
  // The compiled service, as Render runs it (dist/ is built by test/global-setup.ts).
  const child = spawn(process.execPath, ['--enable-source-maps', 'dist/service/main.js'], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const port = await waitFor(
    'the child service to listen',
    () => {
      if (child.exitCode !== null) throw new Error(`service exited early: ${output}`);
      return /Memory service listening on 127\.0\.0\.1:(\d+)/.exec(output)?.[1];
    },
    30_000,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor('readiness', async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 30_000);
  return { child, url, output: () => output, exited };
}

describe('restart under load', () => {
  it('every 2xx-acknowledged pattern survives SIGTERM and restart on the same DATA_DIR', async () => {
    const dataDir = tempDataDir('restart');
    const env = { DATA_DIR: dataDir, ENABLE_CONTEXT7_MEMORY: 'false', MEMORY_API_KEYS: TEST_CALLER_KEYS };
    const scopes = [scope('rs', 'a', '1'), scope('rs', 'b', '2'), scope('rs', 'c', '3')];
    const acked: { scopeId: string; content: string }[] = [];
    let failures = 0;
    let baseUrl = '';
    let writing = true;

    const writer = async (id: number) => {
      for (let n = 0; writing; n += 1) {
        const scopeId = scopes[n % scopes.length];
        const content = `writer ${id} pattern ${n}`;
        try {
          const res = await fetch(`${baseUrl}/api/memory/patterns`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...CALLER_AUTH },
            body: JSON.stringify({ scopeId, patterns: [content] }),
          });
          await res.arrayBuffer();
          if (res.status === 200) acked.push({ scopeId, content });
          else failures += 1;
        } catch {
          failures += 1;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    };

    try {
      const first = await startChild(env);
      baseUrl = first.url;
      const writers = Array.from({ length: 8 }, (_, i) => writer(i));
      await waitFor('writes before SIGTERM', () => acked.length >= 80, 30_000);
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain('SIGTERM received');
      expect(first.output()).toContain('Memory service stopped');
      const ackedBeforeRestart = acked.length;

      const second = await startChild(env);
      baseUrl = second.url;
      await waitFor('writes after restart', () => acked.length >= ackedBeforeRestart + 40, 30_000);
      writing = false;
      await Promise.all(writers);
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);

      const store = createSqliteStore({ dataDir });
      await store.migrate();
      try {
        for (const scopeId of scopes) {
          const stored = new Set((await store.exportScope(scopeId, new Date())).patterns.map((p) => p.content));
          const missing = acked.filter((a) => a.scopeId === scopeId && !stored.has(a.content));
          expect(missing).toEqual([]);
        }
      } finally {
        await store.close();
      }
      expect(acked.length).toBeGreaterThanOrEqual(120);
      // Writers kept writing through the restart window; refused requests were never acknowledged.
      expect(failures).toBeGreaterThan(0);
    } finally {
      writing = false;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('graceful stop (in-process)', () => {
  it('readiness turns 503, an in-flight request still completes, and a running backfill is persisted then resumed', async () => {
    const dataDir = tempDataDir('graceful');
    dataDirs.push(dataDir);
    const h = await startHarness({
      dataDir,
      emulator: {},
      env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN },
      overrides: { backfillOptions: { batchSize: 2, concurrency: 1 } },
    });
    harnesses.push(h);
    h.emulator!.setFaults({ outage: true });
    const scopeId = scope('gs', 'a', 'p');
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: Array.from({ length: 12 }, (_, i) => `p${i}`) });
    // 250 ms per batch: after the first batch, the rest need over a second, ample margin for stop() to land mid-run.
    h.emulator!.setFaults({ outage: false, latencyMs: 250 });

    expect((await h.request('POST', '/api/admin/sync-context7', {}, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` })).status).toBe(202);
    await waitFor('first batch synced', async () => ((await h.service.backfill!.status())?.synced ?? 0) >= 2);

    // A read in flight (the emulator adds 250 ms) when stop() begins.
    const inFlight = h.request('POST', '/api/memory/snippets', { scopeId, query: 'in flight' });
    await waitFor('the read to reach Context7', () => h.emulator!.stats().requests.searchSnippets >= 1);
    const stopping = h.service.stop();
    expect(h.service.state()).toBe('shutting_down');
    const res = await inFlight;
    expect(res.status).toBe(200);
    await stopping;

    const store = createSqliteStore({ dataDir });
    await store.migrate();
    const persisted = await store.loadJobState(BACKFILL_JOB_NAME);
    await store.close();
    expect(persisted).toMatchObject({ status: 'interrupted' });
    expect(persisted!.cursor).not.toBeNull();
    expect(persisted!.synced).toBeLessThan(12);

    // The next process resumes from the cursor and completes the rest.
    const emulator = h.emulator!;
    emulator.resetFaults();
    const next = await startHarness({
      dataDir,
      env: { ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_API_KEY: h.config.context7ApiKey!, CONTEXT7_BASE_URL: emulator.url },
    });
    harnesses.push(next);
    const complete = await waitFor('[SYNC] Complete after resume', () => next.logs.messages().find((m) => m.startsWith('[SYNC] Complete:')));
    expect(complete).toMatch(/^\[SYNC\] Complete: 12 synced, 0 errors in \d+ms$/);
    expect(next.logs.messages().some((m) => m.startsWith('[SYNC] Full sync resumed (resume)'))).toBe(true);
    expect(emulator.patterns(scopeId)).toHaveLength(12);
  });

  it('while the store migrates, readiness and the API answer 503 (Retry-After), and 200 once it is done', async () => {
    const dataDir = tempDataDir('starting');
    dataDirs.push(dataDir);
    const real = createSqliteStore({ dataDir });
    let releaseMigration!: () => void;
    const migrationGate = new Promise<void>((resolve) => (releaseMigration = resolve));
    let migrating = false;
    const gated: MemoryStore = new Proxy(real, {
      get(target, property, receiver) {
        if (property === 'migrate') {
          return async () => {
            migrating = true;
            await migrationGate;
            await target.migrate();
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const service = createMemoryService(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent' }), { store: gated, enableSchedule: false });
    const side = http.createServer(service.app);
    await new Promise<void>((resolve) => side.listen(0, '127.0.0.1', resolve));
    const sideUrl = `http://127.0.0.1:${(side.address() as AddressInfo).port}`;
    try {
      const starting = service.start(0, '127.0.0.1');
      await waitFor('the migration to begin', () => migrating);
      const ready = await fetch(`${sideUrl}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'starting' });
      const api = await fetch(`${sideUrl}/api/config`);
      expect(api.status).toBe(503);
      expect(api.headers.get('retry-after')).toBe('1');
      // The memory routes run the same readiness check in their own chain (issue 29): 503 before auth or the body.
      const read = await fetch(`${sideUrl}/api/memory/snippets`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      expect(read.status).toBe(503);
      expect(read.headers.get('retry-after')).toBe('1');
      expect((await fetch(`${sideUrl}/healthz`)).status).toBe(200);
      releaseMigration();
      await starting;
      expect((await fetch(`${sideUrl}/readyz`)).status).toBe(200);
      expect((await fetch(`${sideUrl}/api/config`)).status).toBe(200);
    } finally {
      releaseMigration();
      side.closeAllConnections();
      await new Promise((resolve) => side.close(resolve));
      await service.stop();
    }
  });

  it('readiness is 503 while shutting down (and 200 before)', async () => {
    const h = await startHarness({});
    harnesses.push(h);
    // A side server over the same request listener stays reachable after the service stops accepting.
    const side = http.createServer(h.service.app);
    await new Promise<void>((resolve) => side.listen(0, '127.0.0.1', resolve));
    const sideUrl = `http://127.0.0.1:${(side.address() as AddressInfo).port}`;
    try {
      expect((await fetch(`${sideUrl}/readyz`)).status).toBe(200);
      await h.service.stop();
      const res = await fetch(`${sideUrl}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: 'shutting_down' });
      expect((await fetch(`${sideUrl}/healthz`)).status).toBe(200);
    } finally {
      side.closeAllConnections();
      await new Promise((resolve) => side.close(resolve));
    }
  });
});
