/**
 * The Context7 client against a real emulator on 127.0.0.1:0 (no axios mocks): classification of every
 * fault, retry rules, Retry-After, circuit breaker, whole-call timeout, observer, batching, key redaction.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CONTEXT7_HTTP_CLIENTS,
  createContext7Client,
  parseRetryAfter,
  type Context7Client,
  type Context7ClientOptions,
  type Context7HttpClient,
} from '../../service/context7/client';
import { startContext7Emulator, type Context7Emulator, type Context7FaultsPatch } from '../../service/context7/emulator';
import { Context7Error, type Context7CallOutcome } from '../../service/context7/port';

const API_KEY = 'c7-test-KEY-must-never-leak-4f1d9a';
const SCOPE = 'scope:loc-1:agent-1:0123456789abcdef';

let emulator: Context7Emulator;
const clients: Context7Client[] = [];
/** The library the current block's clients use (set by the describe.each below). */
let httpClient: Context7HttpClient = 'axios';

beforeAll(async () => {
  emulator = await startContext7Emulator({ apiKey: API_KEY, seed: 11 });
});
afterEach(() => {
  emulator.resetFaults();
  for (const client of clients.splice(0)) client.close();
});
afterAll(async () => {
  await emulator.close();
});

interface Harness {
  client: Context7Client;
  outcomes: Context7CallOutcome[];
  waits: number[];
}

/** Fast retries, a breaker that stays out of the way unless a test configures it. */
function harness(overrides: Context7ClientOptions = {}): Harness {
  const outcomes: Context7CallOutcome[] = [];
  const waits: number[] = [];
  const client = createContext7Client(
    {
      baseUrl: emulator.url,
      apiKey: API_KEY,
      timeoutMs: 3_000,
      maxRetries: 2,
      retryInitialDelayMs: 1,
      retryMaxDelayMs: 5,
      breakerThreshold: 1_000,
      httpClient,
      ...overrides,
    },
    (outcome) => outcomes.push(outcome),
  );
  clients.push(client);
  return { client, outcomes, waits };
}

/** A sleeper that records each requested wait and resolves at once: tests count attempts, not time. */
function recordingSleeper(waits: number[], onWait?: () => void) {
  return async (ms: number) => {
    waits.push(ms);
    onWait?.();
  };
}

async function failure(promise: Promise<unknown>): Promise<Context7Error> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(Context7Error);
    return error as Context7Error;
  }
  throw new Error('expected the call to fail');
}

function healthCount(): number {
  return emulator.stats().requests.health;
}

// Every case below runs over each HTTP library the client can use (CONTEXT7_HTTP_CLIENT): the guards are the
// client's, whichever library carries the request.
describe.each(CONTEXT7_HTTP_CLIENTS)('over %s', (library) => {
  beforeAll(() => {
    httpClient = library;
  });

  describe('happy path', () => {
    it('upserts, searches the same scope back and reports one outcome per call', async () => {
      const { client, outcomes } = harness();
      const scope = 'scope:loc-1:agent-1:aaaaaaaaaaaaaaaa';
      await client.health();
      const result = await client.upsertPatterns({
        scopeId: scope,
        patterns: [
          { id: 'p-1', content: 'greet callers by name', metadata: { source: 'call-1' }, createdAt: '2026-01-01T00:00:00.000Z' },
          { id: 'p-2', content: 'confirm the appointment time' },
        ],
      });
      expect(result).toEqual({ upserted: 2 });
      const snippets = await client.searchSnippets({ scopeId: scope, query: 'appointment time', limit: 5 });
      expect(snippets[0]).toMatchObject({ id: 'p-2', content: 'confirm the appointment time' });
      // The emulator ranks like the local stores: only patterns whose tokens match the query.
      expect(snippets.map((s) => s.id)).toEqual(['p-2']);
      expect(outcomes.map((o) => [o.operation, o.ok, o.attempts])).toEqual([
        ['health', true, 1],
        ['upsertPatterns', true, 1],
        ['searchSnippets', true, 1],
      ]);
      expect(client.circuitState()).toBe('closed');
    });

    it('never returns another scope, even one sharing a prefix', async () => {
      const { client } = harness();
      await client.upsertPatterns({ scopeId: 'scope:loc-2:agent-9:bbbbbbbbbbbbbbbb', patterns: [{ id: 'x', content: 'secret of agent 9' }] });
      expect(await client.searchSnippets({ scopeId: 'scope:loc-2:agent-9:bbbbbbbbbbbbbbb', limit: 50 })).toEqual([]);
      expect(await client.searchSnippets({ scopeId: 'scope:loc-2:agent-9', limit: 50 })).toEqual([]);
      expect(await client.searchSnippets({ scopeId: 'scope:loc-2:agent-9:BBBBBBBBBBBBBBBB', limit: 50 })).toEqual([]);
    });

    it('re-sending a batch is idempotent by pattern id', async () => {
      const { client } = harness();
      const scope = 'scope:loc-1:agent-2:cccccccccccccccc';
      const patterns = [1, 2, 3].map((n) => ({ id: `stable-${n}`, content: `pattern ${n}` }));
      await client.upsertPatterns({ scopeId: scope, patterns });
      await client.upsertPatterns({ scopeId: scope, patterns });
      expect(emulator.patterns(scope).map((p) => p.id).sort()).toEqual(['stable-1', 'stable-2', 'stable-3']);
    });

    it('splits large upserts into batches, one logical call each, and skips empty lists', async () => {
      const { client, outcomes } = harness({ batchSize: 3 });
      const scope = 'scope:loc-1:agent-3:dddddddddddddddd';
      const before = emulator.stats().requests.upsertPatterns;
      const patterns = Array.from({ length: 7 }, (_, n) => ({ id: `b-${n}`, content: `batched ${n}` }));
      expect(await client.upsertPatterns({ scopeId: scope, patterns })).toEqual({ upserted: 7 });
      expect(await client.upsertPatterns({ scopeId: scope, patterns: [] })).toEqual({ upserted: 0 });
      expect(emulator.stats().requests.upsertPatterns - before).toBe(3);
      expect(outcomes).toHaveLength(3);
      expect(emulator.patterns(scope)).toHaveLength(7);
    });

    it('caps the batch size at the contract maximum', async () => {
      const { client } = harness({ batchSize: 10_000 });
      const scope = 'scope:loc-1:agent-4:eeeeeeeeeeeeeeee';
      const before = emulator.stats().requests.upsertPatterns;
      const patterns = Array.from({ length: 150 }, (_, n) => ({ id: `c-${n}`, content: `capped ${n}` }));
      expect(await client.upsertPatterns({ scopeId: scope, patterns })).toEqual({ upserted: 150 });
      expect(emulator.stats().requests.upsertPatterns - before).toBe(2);
    });
  });

  describe('failure classification', () => {
    const cases: Array<{ name: string; faults: Context7FaultsPatch; type: Context7Error['type']; extra?: object; retried: boolean }> = [
      { name: 'outage (socket destroyed)', faults: { outage: true }, type: 'network', retried: true },
      { name: 'server errors', faults: { errorRate: 1 }, type: 'api_error', retried: true },
      { name: 'wrong key', faults: { wrongKey: true }, type: 'api_error', extra: { status: 401, unauthorized: true }, retried: false },
      {
        name: '429 beyond the budget',
        faults: { rateLimit: { retryAfterSeconds: 60 } },
        type: 'rate_limited',
        extra: { status: 429, retryAfterMs: 60_000 },
        retried: false,
      },
    ];

    for (const c of cases) {
      it(`${c.name} -> ${c.type}${c.retried ? ', retried' : ', not retried'}`, async () => {
        const { client, outcomes } = harness({ maxRetries: 2 });
        emulator.setFaults(c.faults);
        const before = healthCount();
        const error = await failure(client.health());
        expect(error.type).toBe(c.type);
        expect(error.details).toMatchObject({ operation: 'health', ...(c.extra ?? {}) });
        expect(error.details.circuitOpen).toBeUndefined();
        const attempts = c.retried ? 3 : 1;
        expect(healthCount() - before).toBe(attempts);
        expect(outcomes).toEqual([expect.objectContaining({ operation: 'health', ok: false, attempts, errorType: c.type })]);
      });
    }

    it('hang -> timeout, the request aborted at the deadline', async () => {
      const { client, outcomes } = harness({ timeoutMs: 300 });
      emulator.setFaults({ hang: true });
      const before = healthCount();
      const error = await failure(client.health());
      expect(error.type).toBe('timeout');
      expect(healthCount() - before).toBe(1);
      expect(outcomes).toEqual([expect.objectContaining({ ok: false, attempts: 1, errorType: 'timeout' })]);
    });

    it('a missing key is unauthorized, not retried', async () => {
      const { client } = harness({ apiKey: undefined });
      const before = healthCount();
      const error = await failure(client.health());
      expect(error).toMatchObject({ type: 'api_error', details: { status: 401, unauthorized: true } });
      expect(healthCount() - before).toBe(1);
    });

    it('a refused connection is a network error', async () => {
      const closed = await startContext7Emulator();
      const url = closed.url;
      await closed.close();
      const { client } = harness({ baseUrl: url, maxRetries: 1 });
      expect((await failure(client.health())).type).toBe('network');
    });

    describe('a 2xx body that breaks the contract', () => {
      let server: http.Server;
      let url: string;
      let hits = 0;
      beforeAll(async () => {
        server = http.createServer((req, res) => {
          hits += 1;
          res.writeHead(200, { 'Content-Type': 'application/json' });
          if (req.url === '/v1/patterns/batch') {
            res.end(JSON.stringify({ upserted: 1, padding: 'x'.repeat(6 * 1024 * 1024) })); // over the 5 MB cap
            return;
          }
          res.end(req.url === '/v1/health' ? 'not json at all' : JSON.stringify({ snippets: [{ id: 42 }] }));
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      });
      afterAll(async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      });

      it('is an api_error, and is not retried', async () => {
        const { client } = harness({ baseUrl: url });
        hits = 0;
        expect(await failure(client.searchSnippets({ scopeId: SCOPE, limit: 3 }))).toMatchObject({
          type: 'api_error',
          details: { status: 200, operation: 'searchSnippets' },
        });
        expect((await failure(client.health())).type).toBe('api_error');
        const oversized = await failure(client.upsertPatterns({ scopeId: SCOPE, patterns: [{ id: 'o', content: 'o' }] }));
        expect(oversized.type).toBe('api_error');
        // Refused at the 5 MB cap, not read whole and failed by the schema check.
        expect(oversized.message).toMatch(/unreadable response \(ERR_BAD_RESPONSE\)/);
        expect(hits).toBe(3);
      });
    });
  });

  describe('on the wire', () => {
    /** Records each request (absolute-form target when it came through as a proxy) and answers as Context7 would. */
    let server: http.Server;
    let url: string;
    const seen: { url: string; contentType: string | undefined; body: string }[] = [];
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          seen.push({ url: req.url ?? '', contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(req.url?.endsWith('/v1/health') ? JSON.stringify({ status: 'ok' }) : JSON.stringify({ snippets: [] }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterEach(() => {
      vi.unstubAllEnvs();
      seen.length = 0;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('sends a body as JSON with its content type', async () => {
      const { client } = harness({ baseUrl: url });
      await client.searchSnippets({ scopeId: SCOPE, query: 'wire', limit: 3 });
      client.close();
      expect(seen).toEqual([{ url: '/v1/snippets/search', contentType: 'application/json', body: JSON.stringify({ scopeId: SCOPE, limit: 3, query: 'wire' }) }]);
    });

    it('goes through a proxy set in the environment when the client is created', async () => {
      for (const name of ['http_proxy', 'HTTP_PROXY']) vi.stubEnv(name, url);
      for (const name of ['no_proxy', 'NO_PROXY']) vi.stubEnv(name, '');
      // Unresolvable: only the proxy can answer for it.
      const { client } = harness({ baseUrl: 'http://context7.invalid' });
      await client.health();
      client.close();
      expect(seen.map((request) => request.url)).toEqual(['http://context7.invalid/v1/health']);
    });
  });

  describe('retries', () => {
    it('backs off with bounded jitter between attempts on server errors', async () => {
      const waits: number[] = [];
      const { client } = harness({ maxRetries: 3, retryInitialDelayMs: 10, retryMaxDelayMs: 40, sleep: recordingSleeper(waits) });
      emulator.setFaults({ errorRate: 1 });
      const before = emulator.stats().requests.searchSnippets;
      await failure(client.searchSnippets({ scopeId: SCOPE, limit: 3 }));
      expect(emulator.stats().requests.searchSnippets - before).toBe(4);
      expect(waits).toHaveLength(3);
      for (const wait of waits) {
        expect(wait).toBeGreaterThanOrEqual(0);
        expect(wait).toBeLessThanOrEqual(40);
      }
    });

    it('retries the idempotent upsert and then succeeds once the fault clears', async () => {
      const waits: number[] = [];
      const scope = 'scope:loc-1:agent-5:ffffffffffffffff';
      const { client, outcomes } = harness({ sleep: recordingSleeper(waits, () => emulator.resetFaults()) });
      emulator.setFaults({ outage: true });
      const before = emulator.stats().requests.upsertPatterns;
      expect(await client.upsertPatterns({ scopeId: scope, patterns: [{ id: 'r-1', content: 'retried write' }] })).toEqual({ upserted: 1 });
      expect(emulator.stats().requests.upsertPatterns - before).toBe(2);
      expect(outcomes).toEqual([expect.objectContaining({ operation: 'upsertPatterns', ok: true, attempts: 2 })]);
      expect(emulator.patterns(scope)).toHaveLength(1);
    });

    it('maxRetries 0 means exactly one attempt', async () => {
      const { client } = harness({ maxRetries: 0 });
      emulator.setFaults({ outage: true });
      const before = healthCount();
      await failure(client.health());
      expect(healthCount() - before).toBe(1);
    });
  });

  describe('429 and Retry-After', () => {
    it('waits exactly Retry-After when it fits the budget, then retries', async () => {
      const waits: number[] = [];
      const { client, outcomes } = harness({ timeoutMs: 5_000, sleep: recordingSleeper(waits, () => emulator.resetFaults()) });
      emulator.setFaults({ rateLimit: { retryAfterSeconds: 1 } });
      const before = healthCount();
      await client.health();
      expect(waits).toEqual([1_000]);
      expect(healthCount() - before).toBe(2);
      expect(outcomes).toEqual([expect.objectContaining({ ok: true, attempts: 2 })]);
    });

    it('fails fast with retryAfterMs when the wait would exceed the budget', async () => {
      const waits: number[] = [];
      const { client } = harness({ timeoutMs: 2_000, sleep: recordingSleeper(waits) });
      emulator.setFaults({ rateLimit: { retryAfterSeconds: 3 } });
      const before = healthCount();
      const error = await failure(client.health());
      expect(error).toMatchObject({ type: 'rate_limited', details: { retryAfterMs: 3_000, status: 429 } });
      expect(waits).toEqual([]);
      expect(healthCount() - before).toBe(1);
    });

    it('gives up as rate_limited after maxRetries when the limit persists (real sleeper, Retry-After: 0)', async () => {
      const { client } = harness({ maxRetries: 2 });
      emulator.setFaults({ rateLimit: { retryAfterSeconds: 0 } });
      const before = healthCount();
      const error = await failure(client.health());
      expect(error).toMatchObject({ type: 'rate_limited', details: { retryAfterMs: 0 } });
      expect(healthCount() - before).toBe(3);
    });

    it('parses delay-seconds and HTTP dates', () => {
      const now = Date.parse('2026-01-01T00:00:00Z');
      expect(parseRetryAfter('7', now)).toBe(7_000);
      expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
      expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
      expect(parseRetryAfter('soon', now)).toBeUndefined();
      expect(parseRetryAfter(undefined, now)).toBeUndefined();
    });
  });

  describe('circuit breaker', () => {
    it('opens after the threshold, then refuses without touching Context7', async () => {
      const { client, outcomes } = harness({ maxRetries: 0, breakerThreshold: 3, breakerHalfOpenAfterMs: 60_000 });
      emulator.setFaults({ outage: true });
      const before = healthCount();
      for (let n = 0; n < 3; n++) expect((await failure(client.health())).details.circuitOpen).toBeUndefined();
      expect(client.circuitState()).toBe('open');
      expect(healthCount() - before).toBe(3);

      emulator.resetFaults(); // Context7 is fine again, but the breaker has not let anyone find out yet
      for (let n = 0; n < 5; n++) {
        const error = await failure(client.searchSnippets({ scopeId: SCOPE, limit: 1 }));
        expect(error).toMatchObject({ type: 'network', details: { circuitOpen: true, operation: 'searchSnippets' } });
      }
      expect(healthCount() - before).toBe(3);
      expect(outcomes.slice(3)).toEqual(
        Array.from({ length: 5 }, () => expect.objectContaining({ ok: false, attempts: 0, circuitOpen: true, errorType: 'network' })),
      );
    });

    it('a hung Context7 opens it as timeout; afterwards calls fail without reaching the server', async () => {
      const { client } = harness({ timeoutMs: 200, maxRetries: 0, breakerThreshold: 2, breakerHalfOpenAfterMs: 60_000 });
      emulator.setFaults({ hang: true });
      const before = healthCount();
      await failure(client.health());
      await failure(client.health());
      // Both timed-out calls reach the hung server, but on a busy machine the client's 200 ms can end before the
      // server has read the second request (failed once with 6 test files on 2 cores): wait until it has.
      await vi.waitFor(() => expect(healthCount() - before).toBe(2), { timeout: 10_000 });
      const refused = await failure(client.health());
      expect(refused).toMatchObject({ type: 'timeout', details: { circuitOpen: true } });
      expect(healthCount() - before).toBe(2);
    });

    it('when a call’s own retries open it, the call reports the real failure, not a refusal', async () => {
      const { client, outcomes } = harness({ maxRetries: 5, breakerThreshold: 3, breakerHalfOpenAfterMs: 60_000 });
      emulator.setFaults({ errorRate: 1 });
      const before = healthCount();
      const error = await failure(client.health());
      expect(error).toMatchObject({ type: 'api_error' });
      expect(error.details.circuitOpen).toBeUndefined();
      expect(healthCount() - before).toBe(3);
      expect(outcomes).toEqual([expect.objectContaining({ ok: false, attempts: 3, errorType: 'api_error' })]);
      expect(client.circuitState()).toBe('open');
      expect((await failure(client.health())).details.circuitOpen).toBe(true);
    });

    it('does not count 4xx or 429 against Context7 health', async () => {
      const { client } = harness({ maxRetries: 0, breakerThreshold: 2 });
      emulator.setFaults({ wrongKey: true });
      for (let n = 0; n < 4; n++) await failure(client.health());
      emulator.setFaults({ wrongKey: false, rateLimit: { retryAfterSeconds: 60 } });
      for (let n = 0; n < 4; n++) await failure(client.health());
      expect(client.circuitState()).toBe('closed');
    });

    it('half-opens after the pause, probes once, and closes on success', async () => {
      const { client } = harness({ maxRetries: 0, breakerThreshold: 2, breakerHalfOpenAfterMs: 150 });
      emulator.setFaults({ errorRate: 1 });
      await failure(client.health());
      await failure(client.health());
      expect(client.circuitState()).toBe('open');
      emulator.resetFaults();
      await vi.waitFor(() => expect(client.circuitState()).toBe('half-open'), { timeout: 10_000, interval: 20 });
      const before = healthCount();
      await client.health();
      expect(client.circuitState()).toBe('closed');
      expect(healthCount() - before).toBe(1);
    });

    it('while the probe hangs, other calls are refused instead of queueing; a failed probe re-opens', async () => {
      // A dedicated emulator: closing it is what ends the hung probe, so no timing decides the outcome.
      const own = await startContext7Emulator({ faults: { outage: true } });
      const { client } = harness({ baseUrl: own.url, apiKey: undefined, timeoutMs: 30_000, maxRetries: 0, breakerThreshold: 1, breakerHalfOpenAfterMs: 100 });
      try {
        await failure(client.health());
        expect(client.circuitState()).toBe('open');
        own.setFaults({ outage: false, hang: true });
        await vi.waitFor(() => expect(client.circuitState()).toBe('half-open'), { timeout: 10_000, interval: 20 });
        let probeSettled = false;
        const probe = failure(client.health()).finally(() => {
          probeSettled = true;
        });
        await vi.waitFor(() => expect(own.stats().requests.health).toBe(2), { timeout: 10_000, interval: 10 });
        const refused = await failure(client.searchSnippets({ scopeId: SCOPE, limit: 1 }));
        expect(refused.details.circuitOpen).toBe(true);
        // Refused while the probe still hangs: it did not queue behind it.
        expect(probeSettled).toBe(false);
        expect(own.stats().requests.searchSnippets).toBe(0);
        await own.close(); // the probe's connection dies: the probe fails and the breaker re-opens
        expect((await probe).type).toBe('network');
        expect(client.circuitState()).toBe('open');
      } finally {
        await own.close();
      }
    });
  });

  describe('timeout', () => {
    it('covers the whole call, retries included', async () => {
      // Each attempt takes 200 ms and fails; 10 retries would need 2.2 s, the budget is 500 ms.
      // No backoff between attempts, so the deadline can only land inside an attempt, never in a wait.
      const { client, outcomes } = harness({ timeoutMs: 500, maxRetries: 10, retryInitialDelayMs: 0, retryMaxDelayMs: 0 });
      emulator.setFaults({ errorRate: 1, latencyMs: 200 });
      const before = healthCount();
      const error = await failure(client.health());
      expect(error.type).toBe('timeout');
      const attempts = healthCount() - before;
      expect(attempts).toBeGreaterThanOrEqual(1);
      expect(attempts).toBeLessThanOrEqual(3);
      expect(outcomes).toHaveLength(1);
      expect(outcomes[0]).toMatchObject({ ok: false, errorType: 'timeout', attempts });
    });
  });

  describe('secrets', () => {
    it('the API key appears in no error, message, stack or outcome, for any failure', async () => {
      const { client, outcomes } = harness({ timeoutMs: 300, maxRetries: 1 });
      // A second client whose breaker opens at the first failure covers the refusal path.
      const breaking = harness({ maxRetries: 0, breakerThreshold: 1, breakerHalfOpenAfterMs: 60_000 });
      const faults: Context7FaultsPatch[] = [
        { outage: true },
        { hang: true },
        { errorRate: 1 },
        { wrongKey: true },
        { rateLimit: { retryAfterSeconds: 30 } },
      ];
      const errors: unknown[] = [];
      const calls = [
        () => client.health(),
        () => client.searchSnippets({ scopeId: SCOPE, limit: 1 }),
        () => client.upsertPatterns({ scopeId: SCOPE, patterns: [{ id: 'k', content: 'k' }] }),
        () => breaking.client.health(),
      ];
      for (const patch of faults) {
        emulator.resetFaults();
        emulator.setFaults(patch);
        for (const call of calls) {
          try {
            await call();
          } catch (error) {
            errors.push(error);
          }
        }
      }
      expect(errors).toHaveLength(faults.length * calls.length);
      expect(errors.some((e) => (e as Context7Error).details.circuitOpen)).toBe(true);
      for (const error of errors) {
        expect(error).toBeInstanceOf(Context7Error);
        const renderings = [JSON.stringify(error), String(error), (error as Error).stack ?? '', inspect(error, { depth: 10, showHidden: true })];
        for (const text of renderings) expect(text).not.toContain(API_KEY);
      }
      expect(JSON.stringify([outcomes, breaking.outcomes])).not.toContain(API_KEY);
    });

    it('rejects base URLs with embedded credentials or other schemes', () => {
      expect(() => createContext7Client({ baseUrl: 'http://user:pw@127.0.0.1:1' })).toThrow(/must not carry credentials/);
      expect(() => createContext7Client({ baseUrl: 'ftp://127.0.0.1' })).toThrow(/http\(s\)/);
      expect(() => createContext7Client({ baseUrl: 'not a url' })).toThrow(/http\(s\)/);
    });
  });

  describe('observer', () => {
    it('gets exactly one outcome per logical call, and a throwing observer changes nothing', async () => {
      const { client, outcomes } = harness({ maxRetries: 2 });
      await client.health();
      emulator.setFaults({ errorRate: 1 });
      await failure(client.health());
      emulator.resetFaults();
      await client.searchSnippets({ scopeId: SCOPE, limit: 2 });
      expect(outcomes.map((o) => [o.operation, o.ok, o.attempts])).toEqual([
        ['health', true, 1],
        ['health', false, 3],
        ['searchSnippets', true, 1],
      ]);
      for (const outcome of outcomes) expect(outcome.latencyMs).toBeGreaterThanOrEqual(0);

      const throwing = createContext7Client({ baseUrl: emulator.url, apiKey: API_KEY, httpClient }, () => {
        throw new Error('metrics broke');
      });
      clients.push(throwing);
      await expect(throwing.health()).resolves.toBeUndefined();
    });
  });
});
