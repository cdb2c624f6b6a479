/**
 * SIGTERM under keep-alive load (issue 10 §3): busy keep-alive clients hammer a real service process while it
 * receives SIGTERM. Every request that reached the server must get an answer: no ECONNRESET or "socket hang up",
 * no 5xx other than a 503 during the drain, and every acknowledged write is in the store afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { scope, tempDataDir, waitFor } from './support/harness';

const CLIENTS = 16;
const ROUNDS = 3;

const children: ChildProcess[] = [];
const dataDirs: string[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function startChild(dataDir: string): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null>; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'service/main.ts'], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', DATA_DIR: dataDir, ENABLE_CONTEXT7_MEMORY: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const port = Number(
    await waitFor(
      'the child service to listen',
      () => {
        if (child.exitCode !== null) throw new Error(`service exited early: ${output}`);
        return /Memory service listening on 127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      },
      30_000,
    ),
  );
  return { child, port, exited, output: () => output };
}

interface Outcome {
  status?: number;
  errorCode?: string;
  errorMessage?: string;
  reusedSocket: boolean;
  afterSigterm: boolean;
  connectionClose: boolean;
  keepAlive?: string;
}

function send(agent: http.Agent, port: number, method: string, path: string, body?: unknown): Promise<Omit<Outcome, 'afterSigterm'>> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            reusedSocket: req.reusedSocket,
            connectionClose: res.headers.connection === 'close',
            keepAlive: res.headers['keep-alive'],
          }),
        );
        res.on('error', (error: NodeJS.ErrnoException) =>
          resolve({ errorCode: error.code, errorMessage: error.message, reusedSocket: req.reusedSocket, connectionClose: false }),
        );
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ errorCode: error.code, errorMessage: error.message, reusedSocket: req.reusedSocket, connectionClose: false }),
    );
    req.end(payload);
  });
}

describe('SIGTERM with busy keep-alive clients', () => {
  it(`${CLIENTS} keep-alive clients through ${ROUNDS} SIGTERMs: no reset, no unexpected 5xx, every acknowledged write stored`, async () => {
    const dataDir = tempDataDir('sigterm-keepalive');
    dataDirs.push(dataDir);
    const scopes = [scope('ka', 'a', '1'), scope('ka', 'b', '2')];
    const acked: { scopeId: string; content: string }[] = [];
    const outcomes: Outcome[] = [];

    for (let round = 0; round < ROUNDS; round += 1) {
      const service = await startChild(dataDir);
      const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
      let signalled = false;
      let exited = false;
      void service.exited.then(() => (exited = true));

      // Each client loops until the server refuses its connection (it stopped listening) or has exited.
      const client = async (id: number) => {
        for (let n = 0; n < 50_000 && !exited; n += 1) {
          const scopeId = scopes[n % scopes.length];
          const content = `round ${round} client ${id} pattern ${n}`;
          const outcome =
            n % 4 === 3
              ? await send(agent, service.port, 'GET', '/api/config')
              : await send(agent, service.port, 'POST', '/api/memory/patterns', { scopeId, patterns: [content] });
          outcomes.push({ ...outcome, afterSigterm: signalled });
          if (outcome.status === 200 && n % 4 !== 3) acked.push({ scopeId, content });
          if (outcome.errorCode === 'ECONNREFUSED') return;
        }
      };
      const clients = Array.from({ length: CLIENTS }, (_, id) => client(id));
      const ackedBefore = acked.length;
      await waitFor('busy keep-alive traffic', () => acked.length >= ackedBefore + 300, 15_000);
      signalled = true;
      service.child.kill('SIGTERM');
      expect(await service.exited, service.output()).toBe(0);
      await Promise.all(clients);
      agent.destroy();
    }

    const resets = outcomes.filter((o) => o.errorCode !== undefined && o.errorCode !== 'ECONNREFUSED');
    const unexpected5xx = outcomes.filter((o) => o.status !== undefined && o.status >= 500 && !(o.status === 503 && o.afterSigterm));
    const summary = {
      requests: outcomes.length,
      resets: resets.length,
      resetsOnReusedSockets: resets.filter((o) => o.reusedSocket).length,
      resetSamples: resets.slice(0, 5),
      unexpected5xx: unexpected5xx.length,
      closedDuringDrain: outcomes.filter((o) => o.afterSigterm && o.connectionClose).length,
    };
    expect(summary, JSON.stringify(summary)).toMatchObject({ resets: 0, unexpected5xx: 0 });
    // The drain really was exercised: clients got answers carrying Connection: close after the SIGTERM.
    expect(summary.closedDuringDrain).toBeGreaterThan(0);
    // Well-behaved clients learn how long an idle socket is kept (the server's keepAliveTimeout, 65 s).
    expect(outcomes.find((o) => o.status === 200 && !o.connectionClose)?.keepAlive).toBe('timeout=65');

    const store = createSqliteStore({ dataDir });
    await store.migrate();
    try {
      for (const scopeId of scopes) {
        const stored = new Set((await store.exportScope(scopeId, new Date())).patterns.map((p) => p.content));
        expect(acked.filter((a) => a.scopeId === scopeId && !stored.has(a.content))).toEqual([]);
      }
    } finally {
      await store.close();
    }
  }, 60_000);
});
