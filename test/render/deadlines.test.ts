/**
 * Every Render API call has a total deadline, body included, and one operation's retries fit a budget (issue 22 §2).
 * Three hostile loopback servers: one that drips its answer a byte at a time (an idle timeout never fires), one that
 * sends the headers and then nothing, and one whose connections are never read (as a listener that never accepts:
 * the kernel completes the handshake, the request sits unread). Each call must end with a typed error that names
 * the deadline; the drip server sees every attempt's connection closed by the client.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RENDER_ATTEMPT_DEADLINE_MS, RENDER_OPERATION_BUDGET_MS, RenderClient } from '../../render/client';
import { RenderApiError } from '../../render/errors';
import { executeRollback } from '../../canary/actions/rollback';
import { newCanaryState } from '../../canary/actions/state-file';
import { fakeTime } from './support/helpers';

const API_KEY = 'rnd_deadline_test_key';
const ATTEMPT_MS = 400;
const BUDGET_MS = 1_500;

const servers: (HttpServer | NetServer)[] = [];
const sockets = new Set<Socket>();
const timers = new Set<NodeJS.Timeout>();

afterEach(async () => {
  for (const timer of timers) clearInterval(timer);
  timers.clear();
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((done) => server.close(() => done()))));
});

async function listen(server: HttpServer | NetServer): Promise<string> {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}/v1`;
}

function client(baseUrl: string): RenderClient {
  return new RenderClient({ apiKey: API_KEY, baseUrl, requestTimeoutMs: ATTEMPT_MS, operationBudgetMs: BUDGET_MS, backoffBaseMs: 50, backoffCapMs: 100, random: () => 0.5 });
}

/**
 * The call's error, which must be a RenderApiError with no response: the deadline, not an answer. The servers
 * below would never finish an answer, so ending at all shows the deadline; the bound checked is the budget plus a
 * wide margin for a loaded machine (a "ends within its bound" check, not a speed figure).
 */
async function failure(call: Promise<unknown>): Promise<RenderApiError> {
  const started = performance.now();
  const error = await call.then(
    () => new Error('the call succeeded against a server that never finishes an answer'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RenderApiError);
  expect(error).toMatchObject({ operation: 'getService', status: 0 });
  expect(performance.now() - started).toBeLessThan(BUDGET_MS + 10_000);
  return error as RenderApiError;
}

describe('Render API calls end within their deadline', () => {
  it('a server that drips its answer one byte at a time is cut off at the attempt deadline, and retries stop at the budget', async () => {
    let attempts = 0;
    let closedByClient = 0;
    const url = await listen(
      createHttpServer((req, res) => {
        attempts++;
        res.writeHead(200, { 'content-type': 'application/json' });
        // A byte every 50 ms: the socket is never idle long enough for an idle timeout.
        const drip = setInterval(() => res.write(' '), 50);
        timers.add(drip);
        req.socket.on('close', () => {
          clearInterval(drip);
          closedByClient++;
        });
      }),
    );
    const error = await failure(client(url).getService('srv-drip'));
    expect(error.message).toMatch(new RegExp(`operation budget of ${BUDGET_MS} ms used up after \\d+ attempt\\(s\\); last: no complete answer within \\d+ ms \\(attempt deadline\\)`));
    expect(error.attempts).toBeGreaterThanOrEqual(1);
    expect(error.attempts).toBe(attempts);
    // Every attempt's connection was closed by the client, not left dripping.
    await expect.poll(() => closedByClient).toBe(attempts);
  });

  it('a server that sends the headers and then nothing ends at the deadline', async () => {
    const url = await listen(
      createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
      }),
    );
    const error = await failure(client(url).getService('srv-silent'));
    expect(error.message).toMatch(/no complete answer within \d+ ms \(attempt deadline\)/);
  });

  it('a listener that never reads the request ends at the deadline', async () => {
    // pauseOnConnect and never resumed: nothing is read and nothing written, as with a process that never accept()s.
    const url = await listen(createNetServer({ pauseOnConnect: true }, () => {}));
    const error = await failure(client(url).getService('srv-never'));
    expect(error.message).toMatch(/no complete answer within \d+ ms \(attempt deadline\)/);
  });

  it('a non-idempotent call is not retried after its deadline: one attempt, the action unconfirmed', async () => {
    let attempts = 0;
    const url = await listen(
      createHttpServer(() => {
        attempts++;
      }),
    );
    const error = await client(url).triggerDeploy('srv-x').catch((e: unknown) => e);
    expect(error).toMatchObject({ operation: 'triggerDeploy', status: 0, attempts: 1 });
    expect(attempts).toBe(1);
  });

  it('with the defaults, 503s retried with backoff stop inside the operation budget (fake clock)', async () => {
    const url = await listen(
      createHttpServer((_req, res) => {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"message":"unavailable"}');
      }),
    );
    const time = fakeTime();
    const start = time.clock.now();
    const c = new RenderClient({ apiKey: API_KEY, baseUrl: url, clock: time.clock, sleep: time.sleep, random: () => 0.99, maxRetries: 50 });
    const error = await c.getService('srv-503').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RenderApiError);
    expect((error as Error).message).toMatch(new RegExp(`operation budget of ${RENDER_OPERATION_BUDGET_MS} ms used up .*HTTP 503`));
    expect(time.clock.now() - start).toBeLessThanOrEqual(RENDER_OPERATION_BUDGET_MS);
    expect(RENDER_ATTEMPT_DEADLINE_MS).toBeLessThan(RENDER_OPERATION_BUDGET_MS);
  });

  it('a Retry-After longer than the budget is not waited for', async () => {
    let attempts = 0;
    const url = await listen(
      createHttpServer((_req, res) => {
        attempts++;
        res.writeHead(429, { 'retry-after': '600' }).end();
      }),
    );
    const time = fakeTime();
    const c = new RenderClient({ apiKey: API_KEY, baseUrl: url, clock: time.clock, sleep: time.sleep });
    const error = await c.getService('srv-429').catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/operation budget of \d+ ms used up after 1 attempt\(s\); last: HTTP 429/);
    expect(attempts).toBe(1);
    expect(time.sleeps).toEqual([]);
  });
});

describe('a Render deadline in the canary is an unconfirmed action', () => {
  it('a rollback whose Render call hangs ends unverified (the flag still latched off), never as done', async () => {
    const url = await listen(createHttpServer(() => {}));
    const dir = mkdtempSync(join(tmpdir(), 'render-deadline-rollback-'));
    try {
      copyFileSync(join(__dirname, '../../Pulumi.production.yaml'), join(dir, 'Pulumi.production.yaml'));
      const state = newCanaryState({ stack: 'production', baseUrl: 'http://127.0.0.1:9', serviceId: 'srv-hung' }, Date.now());
      const records: { action: string; ok: boolean; detail: string }[] = [];
      const result = await executeRollback({
        state,
        save: () => {},
        render: client(url),
        serviceId: 'srv-hung',
        stackFile: join(dir, 'Pulumi.production.yaml'),
        deployTimeoutMs: 1_000,
        deployPollMs: 10,
        verify: async () => ({ ok: true, checks: [] }),
        record: (action, ok, detail) => records.push({ action, ok, detail }),
        now: () => new Date(),
      });
      expect(result.verified).toBe(false);
      expect(state.rollback?.envSetAt).toBeUndefined();
      expect(state.rollback?.latchedAt).toEqual(expect.any(String));
      expect(records.find((r) => r.action === 'render')).toMatchObject({ ok: false, detail: expect.stringMatching(/setEnvVar.*(attempt deadline|operation budget)/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
