/**
 * Every curl of the rollout runbook, against the real service and the real Context7 emulator.
 *
 * Two of them are not answered as the runbook writes them, deliberately: since tenancy (issue 13) the memory routes
 * need a caller key and the admin routes the admin token, so `curl -X POST /api/memory/snippets` and
 * `curl -X POST /api/admin/sync-context7` exactly as written get 401. Those tests show both: the 401 without the
 * credential, then the runbook's JSON with it (canary/README.md lists this deviation with the others). Elsewhere
 * the harness adds its caller key behind the scenes (support/harness.ts).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DISABLED_REASON,
  SYNC_STARTED_MESSAGE,
  configResponseSchema,
  healthResponseSchema,
  memoryMetricsSchema,
  patternsResponseSchema,
  snippetsResponseSchema,
} from '../../service/contracts/http';
import { MISSING_KEY_REASON } from '../../service/domain/health';
import { TEST_ADMIN_TOKEN, TEST_API_KEY, TEST_CALLER_KEY, scope, startHarness, waitFor, type Harness } from './support/harness';

const run = promisify(execFile);
const harnesses: Harness[] = [];
async function harness(...args: Parameters<typeof startHarness>): Promise<Harness> {
  const h = await startHarness(...args);
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

describe('runbook: Critical Validation (scope id CLI)', () => {
  it('prints scope:test:agent-1:<16 hex> for the runbook inputs', async () => {
    const { stdout } = await run(process.execPath, [
      'node_modules/tsx/dist/cli.mjs',
      'service/cli/scope-id.ts',
      '--location', 'test',
      '--agent', 'agent-1',
      '--prompt', 'You are a helpful assistant',
    ]);
    expect(stdout.trim()).toMatch(/^scope:test:agent-1:[0-9a-f]{16}$/);
    expect(stdout.trim()).toBe(scope('test', 'agent-1', 'You are a helpful assistant'));
  });
});

describe('runbook: Step 2-3 with Context7 on and healthy', () => {
  it('logs both startup lines and answers config, health and a zero metrics baseline', async () => {
    const h = await harness({ emulator: {}, overrides: { enableSchedule: true } });
    const messages = h.logs.messages();
    expect(messages.some((m) => m.includes('✅ Memory API routes enabled (Context7 integration)'))).toBe(true);
    expect(messages.some((m) => m.includes('✅ Context7 sync job initialized'))).toBe(true);

    const config = await h.request('GET', '/api/config');
    expect(config.status).toBe(200);
    expect(config.body).toEqual({ enableContext7Memory: true, context7Available: true });
    configResponseSchema.parse(config.body);

    const health = await h.request('GET', '/api/memory/health');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ available: true, provider: 'context7' });

    const metrics = await h.request('GET', '/api/metrics/memory');
    expect(metrics.status).toBe(200);
    const parsed = memoryMetricsSchema.parse(metrics.body);
    expect(parsed.context7Requests).toBe(0);
    expect(parsed.errorRatePercent).toBe(0);
    expect(parsed.errorsByType).toEqual({ network: 0, timeout: 0, api_error: 0, rate_limited: 0 });
    expect(parsed.deployId).toBe('local');
    expect(parsed.instanceId).toBe('test-instance');
    expect(h.logs.lines().filter((line) => line.tag === '[MEMORY_ERROR]')).toEqual([]);
  });

  it('post-call learning logs "Saved N patterns to memory (database, context7)" and the next read applies them', async () => {
    const h = await harness({ emulator: {} });
    const scopeId = scope('loc-1', 'agent-7', 'Be concise.');
    const saved = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['Greet by name', { content: 'Confirm the address', metadata: { source: 'call-1' } }] });
    expect(saved.status).toBe(200);
    expect(patternsResponseSchema.parse(saved.body)).toMatchObject({ saved: 2, inserted: 2, destinations: ['database', 'context7'] });
    expect(h.logs.messages()).toContain('[MEMORY] 💾 Saved 2 patterns to memory (database, context7)');
    expect(h.emulator!.patterns(scopeId).map((p) => p.content).sort()).toEqual(['Confirm the address', 'Greet by name']);

    const first = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'address' });
    expect(first.status).toBe(200);
    const read = snippetsResponseSchema.parse(first.body);
    expect(read.source).toBe('context7');
    // The emulator ranks like the local stores: only patterns whose tokens match the query, best first.
    expect(first.body.attestation).toEqual({ backend: 'context7', scopeId, snippetsApplied: 1 });
    expect(first.body.snippets[0].content).toBe('Confirm the address');

    const second = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'address' });
    expect(second.body.source).toBe('cache');
    expect(second.body.attestation).toEqual({ backend: 'context7', scopeId, snippetsApplied: 1 });
    expect(h.logs.messages()).toContain('[CACHE] hit');
    expect(h.logs.messages()).toContain('[CACHE] miss');

    // A learning write invalidates the scope: the next read goes back to Context7 and sees it.
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['Repeat the address back'] });
    const third = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'address' });
    expect(third.body.source).toBe('context7');
    expect(third.body.attestation.snippetsApplied).toBe(2);
  });

  it('answers "hybrid" when unsynced local patterns of the scope are merged into Context7 results', async () => {
    const h = await harness({ emulator: {} });
    const scopeId = scope('loc-h', 'agent-h', 'prompt h');
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['synced one'] });
    h.emulator!.setFaults({ outage: true });
    const offline = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['learned offline'] });
    expect(offline.body.destinations).toEqual(['database']);
    expect(h.logs.messages()).toContain('[MEMORY] 💾 Saved 1 patterns to memory (database)');
    h.emulator!.resetFaults();
    const read = await h.request('POST', '/api/memory/snippets', { scopeId });
    expect(read.body.source).toBe('hybrid');
    expect(read.body.attestation.backend).toBe('hybrid');
    expect(read.body.snippets.map((s: { content: string }) => s.content).sort()).toEqual(['learned offline', 'synced one']);
  });

  it('merges unsynced local patterns first, then Context7\'s ranked results; the fallback ranks the same way', async () => {
    const h = await harness({ emulator: {} });
    const scopeId = scope('loc-r', 'agent-r', 'prompt r');
    const policy = 'refund policy: refund within 5 days, then confirm the refund';
    const passing = 'greet the caller, confirm the address, and mention the refund only when the caller asks for a manager';
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [policy] });
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [passing, 'greet by first name'] });
    h.emulator!.setFaults({ outage: true });
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['refund offline note'] });
    const offline = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'refund' });
    expect(offline.body.source).toBe('database');
    // BM25 on the local store: three mentions in a short pattern, then one in a short one, then one in a long one.
    expect(offline.body.snippets.map((s: { content: string }) => s.content)).toEqual([policy, 'refund offline note', passing]);
    h.emulator!.resetFaults();
    const read = await h.request('POST', '/api/memory/snippets', { scopeId, query: 'refund' });
    expect(read.body.source).toBe('hybrid');
    // The unsynced pattern first, then the emulator's ranking (the same BM25): relevance beats recency.
    expect(read.body.snippets.map((s: { content: string }) => s.content)).toEqual(['refund offline note', policy, passing]);
  });
});

describe('runbook: Step 4 backfill', () => {
  it('202 with the runbook message, 409 with status while running, progress, then "[SYNC] Complete"', async () => {
    const h = await harness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    // Learn with Context7 off at the emulator so the backfill has real work: 3 scopes x 5 patterns.
    h.emulator!.setFaults({ outage: true });
    for (let s = 0; s < 3; s += 1) {
      const patterns = Array.from({ length: 5 }, (_, i) => `pattern ${s}-${i}`);
      const res = await h.request('POST', '/api/memory/patterns', { scopeId: scope('bf', `agent-${s}`, 'p'), patterns });
      expect(res.status).toBe(200);
    }
    h.emulator!.setFaults({ outage: false, latencyMs: 150 });

    // `curl -X POST .../api/admin/sync-context7 -H "Content-Type: application/json" -d '{}'` exactly as written: 401.
    const asWritten = await h.request('POST', '/api/admin/sync-context7', {}, { 'content-type': 'application/json' });
    expect(asWritten.status).toBe(401);
    expect(asWritten.text).not.toContain(SYNC_STARTED_MESSAGE);
    expect(h.logs.messages().some((m) => m.startsWith('[SYNC]'))).toBe(false);

    // The same curl with the admin token: the runbook's answer.
    const started = await h.request('POST', '/api/admin/sync-context7', {}, admin);
    expect(started.status).toBe(202);
    expect(started.body).toEqual({ message: SYNC_STARTED_MESSAGE });

    const again = await h.request('POST', '/api/admin/sync-context7', {}, admin);
    expect(again.status).toBe(409);
    expect(again.body.job).toMatchObject({ status: 'running', total: 15 });

    const running = await h.request('GET', '/api/admin/sync-context7/status', undefined, admin);
    expect(running.status).toBe(200);
    expect(running.body.running).toBe(true);

    const complete = await waitFor('[SYNC] Complete', () =>
      h.logs.messages().find((m) => /^\[SYNC\] Complete: \d+ synced, \d+ errors in \d+ms$/.test(m)),
    );
    expect(complete).toMatch(/^\[SYNC\] Complete: 15 synced, 0 errors in \d+ms$/);
    const done = await h.request('GET', '/api/admin/sync-context7/status', undefined, admin);
    expect(done.body).toMatchObject({ running: false, progressPercent: 100, job: { status: 'completed', synced: 15, errors: 0 } });
    for (let s = 0; s < 3; s += 1) expect(h.emulator!.patterns(scope('bf', `agent-${s}`, 'p'))).toHaveLength(5);
    expect(await h.service.store.outboxDepth()).toBe(0);
  });

  it('waits on 429 Retry-After and still completes without errors', async () => {
    const slept: number[] = [];
    let h: Harness | undefined;
    // The injected sleeper records the wait and lifts the rate limit, as time passing would.
    const sleep = async (ms: number) => {
      slept.push(ms);
      h?.emulator?.setFaults({ rateLimit: null });
    };
    h = await harness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN }, overrides: { sleep } });
    h.emulator!.setFaults({ outage: true });
    await h.request('POST', '/api/memory/patterns', { scopeId: scope('rl', 'a', 'p'), patterns: ['one', 'two'] });
    h.emulator!.setFaults({ outage: false, rateLimit: { retryAfterSeconds: 7 } });
    expect((await h.request('POST', '/api/admin/sync-context7', {}, admin)).status).toBe(202);
    const logs = h.logs;
    const complete = await waitFor('[SYNC] Complete', () => logs.messages().find((m) => m.startsWith('[SYNC] Complete:')));
    expect(complete).toMatch(/^\[SYNC\] Complete: 2 synced, 0 errors in \d+ms$/);
    expect(slept).toContain(7_000);
    expect(h.emulator!.patterns(scope('rl', 'a', 'p'))).toHaveLength(2);
  });
});

describe('runbook: Rollback (flag off)', () => {
  it('config and health answer exactly as the runbook expects; its snippets curl gets 401 as written and the runbook\'s JSON with a caller key; writes still persist', async () => {
    // callerKey null: the harness adds no credential behind the scenes; each request below says what it sends.
    const h = await harness({ env: { ENABLE_CONTEXT7_MEMORY: 'false' }, callerKey: null });
    const callerKey = { authorization: `Bearer ${TEST_CALLER_KEY}` };
    const config = await h.request('GET', '/api/config');
    expect(config.body).toMatchObject({ enableContext7Memory: false });
    expect(config.body).toEqual({ enableContext7Memory: false, context7Available: false });
    const health = await h.request('GET', '/api/memory/health');
    expect(health.body).toEqual({ available: false, reason: DISABLED_REASON });
    healthResponseSchema.parse(health.body);

    // `curl -X POST .../api/memory/snippets -d '{...}'` sends curl's default form content type. Exactly as the
    // runbook writes it (no credential): 401, a deliberate deviation since tenancy.
    const scopeId = scope();
    const asWritten = await h.request('POST', '/api/memory/snippets', JSON.stringify({ scopeId }), {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(asWritten.status).toBe(401);
    expect(asWritten.text).not.toContain('"source"');

    // The same curl with a caller key (-H "Authorization: Bearer $MEMORY_API_KEY"): the runbook's answer, byte for byte.
    const snippets = await h.request('POST', '/api/memory/snippets', JSON.stringify({ scopeId }), {
      'content-type': 'application/x-www-form-urlencoded',
      ...callerKey,
    });
    expect(snippets.status).toBe(200);
    expect(snippets.text).toBe('{"snippets":[],"source":"disabled"}');

    const learned = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['kept locally'] }, callerKey);
    expect(learned.status).toBe(200);
    expect(learned.body.destinations).toEqual(['database']);
    expect(h.logs.messages()).toContain('[MEMORY] 💾 Saved 1 patterns to memory (database)');
    expect((await h.service.store.searchPatterns(scopeId, undefined, 10, new Date())).map((p) => p.content)).toEqual(['kept locally']);
    const metrics = await h.request('GET', '/api/metrics/memory');
    expect(metrics.body.totals.requests).toBe(0);
  });
});

describe('runbook: degraded configurations never crash', () => {
  it('flag on without a key: fallback mode, health says the key is missing, reads come from the database', async () => {
    const h = await harness({ env: { ENABLE_CONTEXT7_MEMORY: 'true', CONTEXT7_BASE_URL: 'http://127.0.0.1:9' } });
    expect((await h.request('GET', '/api/memory/health')).body).toEqual({ available: false, reason: MISSING_KEY_REASON });
    expect((await h.request('GET', '/api/config')).body).toEqual({ enableContext7Memory: true, context7Available: false });
    const scopeId = scope('nokey', 'a', 'p');
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['local only'] });
    const read = await h.request('POST', '/api/memory/snippets', { scopeId });
    expect(read.body).toEqual({
      snippets: [expect.objectContaining({ content: 'local only' })],
      source: 'database',
      attestation: { backend: 'database', scopeId, snippetsApplied: 1 },
    });
    expect(h.logs.messages().some((m) => m.startsWith('[MEMORY_ERROR]') && m.includes('CONTEXT7_API_KEY is not set'))).toBe(true);
  });

  it('flag on with Context7 unreachable: health is unavailable with a reason that says so; readiness stays 200', async () => {
    const h = await harness({ emulator: {} });
    await h.emulator!.close();
    const health = await h.request('GET', '/api/memory/health');
    expect(health.status).toBe(200);
    expect(health.body.available).toBe(false);
    expect(health.body.reason).toMatch(/unreachable/);
    expect((await h.request('GET', '/readyz')).status).toBe(200);
    expect((await h.request('GET', '/healthz')).status).toBe(200);
  });

  it('a wrong key is reported as such by health', async () => {
    const h = await harness({ emulator: { apiKey: 'a-different-key-entirely' } });
    const health = await h.request('GET', '/api/memory/health');
    expect(health.body).toEqual({ available: false, reason: expect.stringMatching(/rejected the API key/) });
    expect(health.text).not.toContain(TEST_API_KEY);
  });
});

describe('runbook: Issue 4 (scopeId format errors)', () => {
  it('400 "Invalid scopeId format: ..." with a [MEMORY_ERROR] line on every scoped endpoint', async () => {
    const h = await harness({ emulator: {}, env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
    const bad = 'scope:...';
    const responses = [
      await h.request('POST', '/api/memory/snippets', { scopeId: bad }),
      await h.request('POST', '/api/memory/patterns', { scopeId: bad, patterns: ['x'] }),
      await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(bad)}`, undefined, admin),
    ];
    for (const res of responses) {
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'Invalid scopeId format: "scope:..."' });
    }
    const errors = h.logs.lines().filter((line) => line.tag === '[MEMORY_ERROR]' && String(line.msg).includes('Invalid scopeId format'));
    expect(errors).toHaveLength(3);
  });

  it('a missing or non-string scopeId (e.g. an un-awaited generateScopeId, sent as {}) is a scope id error too', async () => {
    const h = await harness({ emulator: {} });
    const cases: [string, unknown, string][] = [
      ['/api/memory/snippets', { scopeId: {} }, 'Invalid scopeId format: an object'],
      ['/api/memory/snippets', { scopeId: 42, limit: 0 }, 'Invalid scopeId format: "42"'],
      ['/api/memory/patterns', { scopeId: null, patterns: ['x'] }, 'Invalid scopeId format: "null"'],
      ['/api/memory/patterns', { patterns: ['x'] }, 'Invalid scopeId format: "undefined"'],
    ];
    for (const [route, body, error] of cases) {
      const res = await h.request('POST', route, body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error });
    }
    const errors = h.logs.lines().filter((line) => line.tag === '[MEMORY_ERROR]' && String(line.msg).includes('Invalid scopeId format'));
    expect(errors).toHaveLength(cases.length);
  });
});
