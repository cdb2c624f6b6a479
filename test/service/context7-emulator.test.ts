/**
 * The emulator as a server: it enforces openapi.yaml on requests, honours auth, injects faults
 * deterministically, exposes its control API, closes promptly, and runs as a CLI child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createContext7Client } from '../../service/context7/client';
import { loadContract } from '../../service/context7/contract';
import { startContext7Emulator, type Context7Emulator, rankPatterns } from '../../service/context7/emulator';
import { Context7Error } from '../../service/context7/port';

const API_KEY = 'emulator-test-key-9c2e';
const SCOPE = 'scope:loc-1:agent-1:0123456789abcdef';
const auth = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };

let emulator: Context7Emulator;

beforeAll(async () => {
  emulator = await startContext7Emulator({ apiKey: API_KEY });
});
afterEach(() => {
  emulator.resetFaults();
});
afterAll(async () => {
  await emulator.close();
});

async function post(url: string, body: string, headers: Record<string, string> = auth) {
  const response = await fetch(url, { method: 'POST', headers, body });
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, headers: response.headers };
}

describe('contract enforcement', () => {
  it('accepts every request the client sends (client and emulator follow one contract)', async () => {
    const client = createContext7Client({ baseUrl: emulator.url, apiKey: API_KEY, maxRetries: 0 });
    try {
      await client.health();
      await client.upsertPatterns({
        scopeId: SCOPE,
        patterns: [{ id: 'c-1', content: 'with all fields', metadata: { a: 1 }, createdAt: new Date().toISOString() }, { id: 'c-2', content: 'minimal' }],
      });
      await client.searchSnippets({ scopeId: SCOPE, limit: 50, query: 'fields' });
      await client.searchSnippets({ scopeId: SCOPE, limit: 1 });
      await client.searchSnippets({ scopeId: SCOPE, limit: 999 }); // clamped to the contract maximum
    } finally {
      client.close();
    }
  });

  const malformed: Array<[string, string, string]> = [
    ['/v1/snippets/search', '{"limit":3}', 'scopeId'],
    ['/v1/snippets/search', JSON.stringify({ scopeId: SCOPE, limit: 0 }), '/limit'],
    ['/v1/snippets/search', JSON.stringify({ scopeId: SCOPE, limit: 3, extra: true }), 'additional properties'],
    ['/v1/snippets/search', JSON.stringify({ scopeId: 7, limit: 3 }), '/scopeId'],
    ['/v1/snippets/search', '{not json', 'JSON'],
    ['/v1/patterns/batch', JSON.stringify({ scopeId: SCOPE, patterns: [] }), '/patterns'],
    ['/v1/patterns/batch', JSON.stringify({ scopeId: SCOPE, patterns: [{ id: 'x' }] }), 'content'],
    ['/v1/patterns/batch', JSON.stringify({ scopeId: SCOPE, patterns: [{ id: 'x', content: 'y', createdAt: 'yesterday' }] }), 'date-time'],
    [
      '/v1/patterns/batch',
      JSON.stringify({ scopeId: SCOPE, patterns: Array.from({ length: 101 }, (_, n) => ({ id: `${n}`, content: 'z' })) }),
      '/patterns',
    ],
  ];
  for (const [route, body, mentions] of malformed) {
    it(`400 for ${route} ${body.slice(0, 60)}`, async () => {
      const before = emulator.stats().patternCounts[SCOPE] ?? 0;
      const response = await post(`${emulator.url}${route}`, body);
      expect(response.status).toBe(400);
      expect(loadContract().errorBody(response.body)).toBe(true);
      expect(String(response.body.message)).toContain(mentions);
      expect(emulator.stats().patternCounts[SCOPE] ?? 0).toBe(before);
    });
  }

  it('413 for a body over the limit, 404 for unknown routes', async () => {
    const small = await startContext7Emulator({ maxBodyBytes: 1_000 });
    try {
      const big = JSON.stringify({ scopeId: SCOPE, patterns: [{ id: 'big', content: 'x'.repeat(5_000) }] });
      expect((await post(`${small.url}/v1/patterns/batch`, big)).status).toBe(413);
      expect((await fetch(`${small.url}/v1/nope`)).status).toBe(404);
      expect(small.stats().requests.other).toBe(1);
    } finally {
      await small.close();
    }
  });
});

describe('auth', () => {
  it('401 without the bearer key or with a wrong one; control routes need none', async () => {
    expect((await fetch(`${emulator.url}/v1/health`)).status).toBe(401);
    expect((await fetch(`${emulator.url}/v1/health`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${emulator.url}/v1/health`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${emulator.url}/__emulator/state`)).status).toBe(200);
  });
});

describe('faults', () => {
  it('errorRate draws from a seeded PRNG: same seed, same sequence of 500/503/200', async () => {
    const sequences: number[][] = [];
    for (let run = 0; run < 2; run++) {
      const seeded = await startContext7Emulator({ seed: 1234, faults: { errorRate: 0.5 } });
      try {
        const statuses: number[] = [];
        for (let n = 0; n < 30; n++) statuses.push((await fetch(`${seeded.url}/v1/health`)).status);
        sequences.push(statuses);
      } finally {
        await seeded.close();
      }
    }
    expect(sequences[0]).toEqual(sequences[1]);
    expect(new Set(sequences[0])).toEqual(new Set([200, 500, 503]));
  });

  it('429 carries Retry-After and the error body', async () => {
    emulator.setFaults({ rateLimit: { retryAfterSeconds: 4 } });
    const response = await fetch(`${emulator.url}/v1/health`, { headers: auth });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('4');
    expect(await response.json()).toMatchObject({ error: 'rate_limited' });
  });

  it('latency holds the answer back (a 60 s delay is still pending while other routes answer)', async () => {
    emulator.setFaults({ latencyMs: 60_000 });
    const before = emulator.stats().requests.health;
    const abort = new AbortController();
    let settled = false;
    const slow = fetch(`${emulator.url}/v1/health`, { headers: auth, signal: abort.signal }).then(
      () => (settled = true),
      () => undefined,
    );
    await waitUntil(() => emulator.stats().requests.health === before + 1);
    expect((await fetch(`${emulator.url}/__emulator/state`)).status).toBe(200);
    expect(settled).toBe(false);
    abort.abort();
    await slow;
  });

  it('rejects invalid fault values in process and over the control API', async () => {
    expect(() => emulator.setFaults({ errorRate: 2 })).toThrow();
    const response = await post(`${emulator.url}/__emulator/faults`, '{"errorRate":-1}', { 'Content-Type': 'application/json' });
    expect(response.status).toBe(400);
    expect((await post(`${emulator.url}/__emulator/faults`, '{"bogus":true}', {})).status).toBe(400);
    expect((await post(`${emulator.url}/__emulator/faults`, '{oops', {})).status).toBe(400);
    expect(emulator.faults().errorRate).toBe(0);
  });

  it('close() ends promptly while a request hangs; the client sees a failure, not a hang', async () => {
    const hanging = await startContext7Emulator({ faults: { hang: true } });
    const client = createContext7Client({ baseUrl: hanging.url, timeoutMs: 20_000, maxRetries: 0 });
    try {
      const call = client.health().catch((error: unknown) => error);
      await waitUntil(() => hanging.stats().requests.health === 1);
      await hanging.close();
      const error = await call;
      expect(error).toBeInstanceOf(Context7Error);
      expect((error as Context7Error).type).toBe('network');
    } finally {
      client.close();
    }
  });
});

describe('control API', () => {
  it('reads state, merges and resets faults, and lists a scope’s patterns', async () => {
    const scope = 'scope:loc-3:agent-3:1111111111111111';
    const client = createContext7Client({ baseUrl: emulator.url, apiKey: API_KEY });
    try {
      await client.upsertPatterns({ scopeId: scope, patterns: [{ id: 'q-1', content: 'one' }, { id: 'q-2', content: 'two' }] });
    } finally {
      client.close();
    }
    let response = await post(`${emulator.url}/__emulator/faults`, '{"latencyMs":5}', {});
    expect(response.body.faults).toMatchObject({ latencyMs: 5, errorRate: 0 });
    response = await post(`${emulator.url}/__emulator/faults`, '{"outage":true}', {});
    expect(response.body.faults).toMatchObject({ latencyMs: 5, outage: true });

    // Control routes ignore faults: the outage does not touch them.
    const state = (await (await fetch(`${emulator.url}/__emulator/state`)).json()) as Record<string, any>;
    expect(state.faults).toMatchObject({ outage: true, latencyMs: 5 });
    expect(state.patternCounts[scope]).toBe(2);
    expect(state.requests.upsertPatterns).toBeGreaterThanOrEqual(1);

    const listed = (await (await fetch(`${emulator.url}/__emulator/patterns?scopeId=${encodeURIComponent(scope)}`)).json()) as any;
    expect(listed.patterns.map((p: { id: string }) => p.id).sort()).toEqual(['q-1', 'q-2']);
    expect((await fetch(`${emulator.url}/__emulator/patterns`)).status).toBe(400);

    const reset = (await (await fetch(`${emulator.url}/__emulator/faults`, { method: 'DELETE' })).json()) as any;
    expect(reset.faults).toEqual({ errorRate: 0, latencyMs: 0, hang: false, rateLimit: null, outage: false, wrongKey: false });
    expect(emulator.faults().outage).toBe(false);
  });
});

describe('CLI', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
  });

  it('prints one JSON line with the URL, serves, never prints the key, and exits 0 on SIGTERM', async () => {
    const root = path.resolve(__dirname, '../..');
    const cliKey = 'cli-secret-key-5d7e';
    // node --import tsx, not the tsx wrapper, so SIGTERM reaches the emulator directly and its exit code is its own.
    child = spawn(process.execPath, ['--import', 'tsx', 'service/context7/emulator-main.ts', '--port', '0', '--latency-ms', '1', '--seed', '3'], {
      cwd: root,
      env: { ...process.env, CONTEXT7_API_KEY: cliKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child!.once('exit', (code) => reject(new Error(`emulator exited early (${code}): ${output}`)));
    });
    output += first;
    const started = JSON.parse(first) as { event: string; url: string; auth: string; faults: { latencyMs: number } };
    expect(started).toMatchObject({ event: 'listening', auth: 'bearer', faults: { latencyMs: 1 } });
    expect(started.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${started.url}/v1/health`, { headers: { Authorization: `Bearer ${cliKey}` } })).status).toBe(200);
    expect((await fetch(`${started.url}/v1/health`)).status).toBe(401);

    lines.on('line', (line) => (output += line));
    const exit = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(output).toContain('"event":"stopped"');
    expect(output).not.toContain(cliKey);
  });

  it('rejects bad flags with exit code 2', async () => {
    const root = path.resolve(__dirname, '../..');
    child = spawn(process.execPath, ['--import', 'tsx', 'service/context7/emulator-main.ts', '--error-rate', '3'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child!.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('--error-rate');
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('ranking (the same rules as the local stores)', () => {
  const stored = (content: string, revision: number) => ({ id: `p${revision}`, content, revision });

  it('ranks by BM25, newest first on ties; no query means newest first', () => {
    const patterns = [
      stored('refund refund refund policy', 1),
      stored('refund issued', 2),
      stored('refund denied', 3),
      stored('Refund the customer when the parcel is lost in transit', 4),
      stored('greet by first name', 5),
    ];
    expect(rankPatterns(patterns, 'refund').map((r) => r.pattern.content)).toEqual([
      'refund refund refund policy',
      'refund denied',
      'refund issued',
      'Refund the customer when the parcel is lost in transit',
    ]);
    expect(rankPatterns(patterns, undefined).map((r) => r.pattern.revision)).toEqual([5, 4, 3, 2, 1]);
  });

  it('matches tokens, the last as a prefix, ignoring case and accents; query syntax is literal', () => {
    const patterns = [stored('Offer a refund today', 1), stored('fundamental rules', 2), stored('Ärger ÉCOLE', 3), stored('say "hello" AND wave', 4)];
    const find = (query: string) => rankPatterns(patterns, query).map((r) => r.pattern.content);
    expect(find('refu')).toEqual(['Offer a refund today']);
    expect(find('fund')).toEqual(['fundamental rules']);
    expect(find('ecole')).toEqual(['Ärger ÉCOLE']);
    expect(find('"hello" AND')).toEqual(['say "hello" AND wave']);
    expect(find('hello OR refund')).toEqual([]);
    expect(find('*')).toEqual([]);
  });
});
