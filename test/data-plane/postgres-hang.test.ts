/**
 * PostgreSQL that stops answering (a hang, not a refusal): a stall proxy between the service and the real
 * PostgreSQL accepts and reads bytes but forwards nothing. Every wait has a deadline, configured short here
 * (hundreds of ms), so each case is bounded; the time bounds asserted are generous upper limits that prove
 * "bounded" (a hang used to last 40 s and more), not performance figures.
 * Each test owns its stall proxy, service or store, and cleanups; the two that change a whole database (a trigger, the
 * migration lock) get a database of their own. The tests run one after another: run concurrently under
 * scripts/under-load, their healthy queries sometimes overran the 400 ms deadline.
 */
import { Client } from 'pg';
import { afterAll, beforeAll, describe, it, type TestContext } from 'vitest';
import { createMemoryService, type MemoryService } from '../../service/compose';
import { loadConfig } from '../../service/config';
import { startContext7Emulator, type Context7Emulator } from '../../service/context7/emulator';
import { MIGRATION_LOCK_KEY } from '../../service/data-access/postgres-migrations';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { StoreUnavailableError } from '../../service/data-access/store-errors';
import { createDataPlane } from '../../service/fleet/data-plane';
import { loadDataPlaneConfig } from '../../service/fleet/data-plane-config';
import { createServiceLogger } from '../../service/logging';
import { LogCapture, scope, TEST_API_KEY, waitFor } from '../service/support/harness';
import { startStallProxy, type StallProxy } from '../support/stall-proxy';
import { SHORT_DEADLINES } from './support/hang';
import { createTestDatabase, type TestDatabase } from './support/postgres';

/** Generous upper bound for "answered within its budget" (a store call waits at most connect + query = 1.4 s here). */
const BOUNDED_MS = 5_000;

let db: TestDatabase;
/** For the slow-trigger test: the trigger slows every insert into patterns. */
let slowDb: TestDatabase;
/** For the migration-lock test: the held lock would stop any service migrating on the shared database. */
let lockDb: TestDatabase;

/** A database migrated directly, so each service on it starts quickly. */
async function migratedDatabase(label: string): Promise<TestDatabase> {
  const database = await createTestDatabase(label);
  const seed = new PostgresMemoryStore({ connectionString: database.url, maxConnections: 1 });
  await seed.migrate();
  await seed.close();
  return database;
}

beforeAll(async () => {
  [db, slowDb, lockDb] = await Promise.all([migratedDatabase('pghang'), migratedDatabase('pghang_slow'), createTestDatabase('pghang_lock')]);
});

/** This test's cleanups, run last-in first-out when it finishes (an afterEach would be shared by concurrent tests). */
type Defer = (cleanup: () => Promise<unknown>) => void;
function cleanupsOf({ onTestFinished }: Pick<TestContext, 'onTestFinished'>): Defer {
  const cleanups: (() => Promise<unknown>)[] = [];
  onTestFinished(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  return (cleanup) => void cleanups.push(cleanup);
}

afterAll(async () => {
  await Promise.all([db?.drop(), slowDb?.drop(), lockDb?.drop()]);
});

interface Answer {
  status: number;
  body: any;
  text: string;
  headers: Headers;
  ms: number;
}

interface Running {
  proxy: StallProxy;
  service: MemoryService;
  store: PostgresMemoryStore;
  url: string;
  logs: LogCapture;
  post(route: string, body: unknown): Promise<Answer>;
  get(route: string): Promise<Answer>;
}

async function startService(defer: Defer, extraEnv: Record<string, string> = {}): Promise<Running> {
  const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
  const env = {
    DATABASE_URL: proxy.url(db.url),
    ENABLE_CONTEXT7_MEMORY: 'true',
    // Deadlines, not credentials, are under test here: the documented local escape hatch.
    MEMORY_AUTH: 'open',
    LOG_LEVEL: 'info',
    RENDER_INSTANCE_ID: 'pg-hang',
    OUTBOX_DRAIN_INTERVAL_MS: '3600000',
    ...SHORT_DEADLINES,
    ...extraEnv,
  };
  const config = loadConfig(env);
  const logs = new LogCapture();
  const logger = createServiceLogger({ level: 'info', secrets: [], destination: logs });
  const dataPlane = createDataPlane({ config, dataPlane: loadDataPlaneConfig(env), logger });
  const service = createMemoryService(config, {
    logger,
    dataPlane,
    enableSchedule: false,
    healthCacheMs: 0,
    context7ClientOptions: { timeoutMs: 1_000, maxRetries: 0 },
    shutdownGraceMs: 1_000,
  });
  defer(() => service.stop());
  // Closed before the service stops (cleanups run last first): a stop against a hung database waits out its deadlines.
  defer(() => proxy.close());
  const { url } = await service.start(0, '127.0.0.1');
  const timed = async (route: string, init?: RequestInit) => {
    const started = Date.now();
    const response = await fetch(`${url}${route}`, init);
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, body: body as any, text, headers: response.headers, ms: Date.now() - started };
  };
  return {
    proxy,
    service,
    store: service.store as PostgresMemoryStore,
    url,
    logs,
    post: (route, body) =>
      timed(route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    get: (route) => timed(route),
  };
}

function storeErrorLines(logs: LogCapture): Record<string, unknown>[] {
  return logs.lines().filter((line) => line.tag === '[MEMORY_ERROR]' && /Store unavailable/.test(String(line.msg)));
}

describe('a request against a hung PostgreSQL', () => {
  it('gets a JSON 503 with Retry-After within its budget, one [MEMORY_ERROR] line naming postgres and the deadline, counted as a store error', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const svc = await startService(defer);
    const { proxy } = svc;
    const scopeId = scope('pg-hang', 'writer', 'p');
    expect((await svc.post('/api/memory/patterns', { scopeId, patterns: ['before the hang'] })).status).toBe(200);

    proxy.pause();
    const write = await svc.post('/api/memory/patterns', { scopeId, patterns: ['during the hang'] });
    expect(write.status).toBe(503);
    expect(write.headers.get('retry-after')).toBe('5');
    expect(write.headers.get('content-type')).toMatch(/application\/json/);
    expect(write.body).toEqual({ error: 'The memory store is unavailable: retry later' });
    expect(write.ms).toBeLessThan(BOUNDED_MS);
    // No key: reads answer from the database, which hangs too.
    const read = await svc.post('/api/memory/snippets', { scopeId });
    expect(read.status).toBe(503);
    expect(read.ms).toBeLessThan(BOUNDED_MS);

    const lines = storeErrorLines(svc.logs);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ dependency: 'postgres', failure: 'timeout' });
    expect(String(lines[0].msg)).toMatch(/^\[MEMORY_ERROR\] Store unavailable on POST \/api\/memory\/patterns: postgres did not answer: .* timed out after \d+ ms/);
    expect(lines[0].timeoutMs).toEqual(expect.any(Number));
    // The body carries no internals: no driver message, no URL.
    expect(write.text).not.toMatch(/timeout|postgres|127\.0\.0\.1/i);

    // Counted apart: store errors, not fallbacks and not Context7 errors. The metrics endpoint needs no store.
    const metrics = await svc.get('/api/metrics/memory');
    expect(metrics.status).toBe(200);
    expect(metrics.body.totals).toMatchObject({ storeRequests: 3, storeErrors: 2, fallbacks: 0, context7Errors: 0 });
    expect(metrics.body.storeErrorRate).toBeCloseTo(2 / 3);
    const prometheus = await svc.get('/metrics');
    expect(prometheus.status).toBe(200);
    expect(prometheus.text).toMatch(/^memory_store_requests_total 3$/m);
    expect(prometheus.text).toMatch(/^memory_store_errors_total 2$/m);
    expect(prometheus.ms).toBeLessThan(BOUNDED_MS);

    // Readiness does not fail on a shared outage: it would take every instance out of routing.
    expect((await svc.get('/readyz')).status).toBe(200);

    // Timed-out clients were discarded, not returned to the pool: once PostgreSQL answers again, so does the service.
    proxy.resume();
    await waitFor('writes to succeed again', async () => (await svc.post('/api/memory/patterns', { scopeId, patterns: ['after the hang'] })).status === 200, BOUNDED_MS);
    const after = await svc.post('/api/memory/snippets', { scopeId });
    expect(after.status).toBe(200);
    expect(after.body.snippets.map((snippet: { content: string }) => snippet.content).sort()).toEqual(['after the hang', 'before the hang']);
  });

  it('a refused PostgreSQL gets the same 503, fast', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const svc = await startService(defer);
    await svc.proxy.refuse();
    // Idle pooled connections were reset: the pool reconnects and is refused.
    const write = await svc.post('/api/memory/patterns', { scopeId: scope('pg-refused', 'w', 'p'), patterns: ['x'] });
    expect(write.status).toBe(503);
    expect(write.headers.get('retry-after')).toBe('5');
    expect(write.ms).toBeLessThan(BOUNDED_MS);
    expect(storeErrorLines(svc.logs)[0]).toMatchObject({ dependency: 'postgres', failure: 'unavailable' });
  });
});

describe('the store itself', () => {
  async function storeThroughProxy(defer: Defer, { maxConnections = 1, database = db } = {}) {
    const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
    defer(() => proxy.close());
    const store = new PostgresMemoryStore({
      connectionString: proxy.url(database.url),
      maxConnections,
      deadlines: { connectTimeoutMs: 1_000, queryTimeoutMs: 400, statementTimeoutMs: 300, migrationTimeoutMs: 300, closeTimeoutMs: 300 },
      onPoolError: () => undefined,
    });
    defer(() => store.close());
    return { store, proxy };
  }
  const scopeKey = { scopeId: 'pg-hang-store', locationId: 'l', agentId: 'a', promptHash: 'p' };
  const pattern = (content: string) => ({ id: `id-${content}`, content, contentHash: `hash-${content}`, metadata: null, expiresAt: null });

  it('a transaction whose query times out discards its client: the next one, on a one-client pool, succeeds', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const { store, proxy } = await storeThroughProxy(defer);
    await store.savePatterns(scopeKey, [pattern('one')], new Date());
    proxy.pause();
    const started = Date.now();
    const failed = await store.savePatterns(scopeKey, [pattern('two')], new Date()).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(StoreUnavailableError);
    expect(failed).toMatchObject({ dependency: 'postgres', failure: 'timeout', timeoutMs: 400 });
    expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
    proxy.resume();
    // A client returned to the pool would still wait on the lost query; a fresh one answers.
    await store.savePatterns(scopeKey, [pattern('three')], new Date());
    expect((await store.searchPatterns(scopeKey.scopeId, undefined, 10, new Date())).map((p) => p.content).sort()).toEqual(['one', 'three']);
  });

  it('the erasure statements keep the store deadlines: a hung database is a StoreUnavailableError, never a bare pg error', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const { store, proxy } = await storeThroughProxy(defer);
    const scope = { ...scopeKey, scopeId: 'pg-hang-erasure' };
    await store.savePatterns(scope, [pattern('erasable')], new Date());
    proxy.pause();
    // pendingErasures runs on every hybrid read: unclassified, its "Query read timeout" made a read answer 500.
    for (const call of [
      () => store.pendingErasures(scope.scopeId),
      () => store.erasureOutboxDepth(),
      () => store.claimErasures('w', 10, 1_000, new Date()),
      () => store.erase(scope, null, 'test', new Date()),
    ]) {
      const started = Date.now();
      const failed = await call().then(() => 'answered', (error: unknown) => error);
      expect(failed).toBeInstanceOf(StoreUnavailableError);
      expect(failed).toMatchObject({ dependency: 'postgres', failure: 'timeout' });
      expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
    }
    proxy.resume();
    // The erase cut by the deadline committed nothing, and its client was discarded: a fresh one answers.
    expect((await store.searchPatterns(scope.scopeId, undefined, 10, new Date())).map((p) => p.content)).toEqual(['erasable']);
    expect(await store.erasureOutboxDepth()).toBe(0);
  });

  it('a slow but answering database cannot stretch a transaction past the query deadline', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const { store } = await storeThroughProxy(defer, { database: slowDb });
    // Each pattern insert takes 150 ms on the server: every statement is in time, their sum (600 ms) is not.
    await store.pool.query(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.15); RETURN NEW; END $$`);
    await store.pool.query('CREATE TRIGGER slow_insert BEFORE INSERT ON patterns FOR EACH ROW EXECUTE FUNCTION slow_insert()');
    try {
      const started = Date.now();
      const failed = await store.savePatterns(scopeKey, ['s1', 's2', 's3', 's4'].map(pattern), new Date()).catch((error: unknown) => error);
      expect(failed).toMatchObject({ name: 'StoreUnavailableError', failure: 'timeout', operation: 'transaction', timeoutMs: 400 });
      expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
      // Cut mid-transaction: nothing of it was committed.
      expect(await store.searchPatterns(scopeKey.scopeId, 's', 10, new Date())).toEqual([]);
    } finally {
      await store.pool.query('DROP TRIGGER slow_insert ON patterns; DROP FUNCTION slow_insert()');
    }
  });

  it('pool checkout waits at most the connect deadline', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const { store } = await storeThroughProxy(defer);
    const held = await store.pool.connect();
    defer(async () => held.release());
    const started = Date.now();
    const failed = await store.searchPatterns('s', undefined, 1, new Date()).catch((error: unknown) => error);
    expect(failed).toMatchObject({ name: 'StoreUnavailableError', operation: 'connect', timeoutMs: 1_000 });
    expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
  });

  it('waiting for the migration lock is bounded', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const holder = new Client({ connectionString: lockDb.url });
    await holder.connect();
    defer(() => holder.end());
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    defer(() => holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]));
    const { store } = await storeThroughProxy(defer, { database: lockDb });
    const started = Date.now();
    const failed = await store.migrate().catch((error: unknown) => error);
    expect(failed).toMatchObject({ name: 'StoreUnavailableError', failure: 'timeout', operation: 'migration lock wait', timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
  });

  it('close() does not wait for ever on clients stuck on a hung database', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const { store, proxy } = await storeThroughProxy(defer, { maxConnections: 2 });
    const held = await store.pool.connect();
    proxy.pause();
    const started = Date.now();
    await store.close().catch(() => undefined);
    expect(Date.now() - started).toBeLessThan(BOUNDED_MS);
    held.release();
  });
});

describe('readiness', () => {
  it('fails when this instance\'s pool is wedged (every client checked out, none returned) while a fresh connection answers', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const svc = await startService(defer);
    expect((await svc.get('/readyz')).status).toBe(200);
    const held = [await svc.store.pool.connect(), await svc.store.pool.connect()];
    await waitFor('readiness to report the wedged pool', async () => (await svc.get('/readyz')).status === 503, BOUNDED_MS);
    const ready = await svc.get('/readyz');
    expect(ready.body).toMatchObject({ status: 'degraded', reason: expect.stringMatching(/pool wedged: all 2 connections checked out/) });
    for (const client of held) client.release();
    expect((await svc.get('/readyz')).status).toBe(200);
  });

  it('stays ready when the pool is saturated because the shared database hangs (a fresh connection fails too)', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    const svc = await startService(defer);
    const held = [await svc.store.pool.connect(), await svc.store.pool.connect()];
    defer(async () => held.forEach((client) => client.release()));
    svc.proxy.pause();
    await new Promise((resolve) => setTimeout(resolve, 400)); // past DATABASE_POOL_WEDGED_AFTER_MS
    const ready = await svc.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.ms).toBeLessThan(BOUNDED_MS);
  });
});

describe('with Context7 on and healthy while the local store hangs', () => {
  let emulator: Context7Emulator;
  beforeAll(async () => {
    emulator = await startContext7Emulator({ apiKey: TEST_API_KEY, seed: 11 });
  });
  afterAll(async () => {
    await emulator?.close();
  });

  it('a read answers from Context7 alone within the hybrid deadline and counts a store error; a learning write is refused (503)', async ({ expect, onTestFinished }) => {
    const defer = cleanupsOf({ onTestFinished });
    // The hybrid deadline at 1 s, not the file's 200 ms: the confirming read below must answer from the store, and on
    // a loaded CI machine a healthy read once took over 200 ms (503: unconfirmed). The hung read still ends by it.
    const svc = await startService(defer, { CONTEXT7_API_KEY: TEST_API_KEY, CONTEXT7_BASE_URL: emulator.url, DATABASE_HYBRID_READ_TIMEOUT_MS: '1000' });
    const scopeId = scope('pg-hybrid', 'agent', 'p');
    expect((await svc.post('/api/memory/patterns', { scopeId, patterns: ['synced before the hang'] })).status).toBe(200);
    // A read before the hang confirms that no erasure of this scope awaits deletion in Context7: only such a scope
    // may be served from Context7 alone while the store cannot be asked (erasure outranks availability).
    expect((await svc.post('/api/memory/snippets', { scopeId, query: 'before' })).status).toBe(200);

    svc.proxy.pause();
    const read = await svc.post('/api/memory/snippets', { scopeId });
    expect(read.status).toBe(200);
    expect(read.body.source).toBe('context7');
    expect(read.body.snippets.map((snippet: { content: string }) => snippet.content)).toContain('synced before the hang');
    expect(read.ms).toBeLessThan(BOUNDED_MS);
    expect(svc.logs.messages().some((msg) => /Local store did not answer: read answered from Context7 alone/.test(msg))).toBe(true);

    const write = await svc.post('/api/memory/patterns', { scopeId, patterns: ['not acknowledged without the store'] });
    expect(write.status).toBe(503);
    expect(write.ms).toBeLessThan(BOUNDED_MS);
    expect(emulator.patterns(scopeId)).toHaveLength(1);

    // A scope this instance never confirmed: its Context7 copy could hold erased content, so no answer (503).
    const unconfirmed = await svc.post('/api/memory/snippets', { scopeId: scope('pg-hybrid', 'other', 'p') });
    expect(unconfirmed.status).toBe(503);
    expect(unconfirmed.ms).toBeLessThan(BOUNDED_MS);

    const metrics = await svc.get('/api/metrics/memory');
    expect(metrics.body.totals).toMatchObject({ storeErrors: 3, fallbacks: 0, context7Errors: 0 });
  });
});
