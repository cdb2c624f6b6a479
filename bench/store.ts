/**
 * `npm run bench:store`: the two MemoryStore backends side by side in one run, then the cost of the Redis cache
 * tier on a hit compared with the in-process LRU alone. Loopback only: PostgreSQL and Redis on 127.0.0.1
 * (override with BENCH_PG_ADMIN_URL / BENCH_REDIS_URL). The PostgreSQL database is created for the run and
 * dropped after it; Redis keys live under a random prefix that is deleted after.
 * Then search at scale (bench/store-search.ts): ranked search vs today's substring scan, 1,000,000 patterns by
 * default; `--scale 0.01` runs a hundredth of it (CI, tests). `--search-only` skips the first two parts; `--store sqlite` or
 * `--store postgres` measures one store only.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import type { CachedSnippets } from '../service/cache/cache-port';
import { RedisTieredSnippetCache } from '../service/cache/redis-snippet-cache';
import { createLruSnippetCache } from '../service/cache/snippet-cache';
import type { MemoryStore } from '../service/data-access/memory-store';
import { PostgresMemoryStore } from '../service/data-access/postgres-store';
import { createSqliteStore } from '../service/data-access/sqlite-store';
import { scopeKeyOf, toNewPattern } from '../service/domain/patterns';
import { generateScopeIdSync } from '../service/domain/scope-id';
import { closeRedis, connectRedis, duplicateForSubscribe } from '../service/fleet/redis-connection';
import { benchPostgresSearch, benchSqliteSearch, formatSearchFigures, parseScale, parseStores } from './store-search';

const PG_ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SCOPES = 50;
const SEED_PER_SCOPE = 20;
const WRITES = Number(process.env.BENCH_WRITES ?? 2_000);
const READS = Number(process.env.BENCH_READS ?? 5_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const CACHE_OPS = Number(process.env.BENCH_CACHE_OPS ?? 20_000);

interface Result {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `count` operations with `concurrency` in flight; latency per operation, throughput over the whole run. */
async function measure(count: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Result> {
  const latencies = new Array<number>(count);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        await op(i);
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { opsPerSec: (count / elapsedMs) * 1_000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

const scopeIds = Array.from({ length: SCOPES }, (_, i) =>
  generateScopeIdSync({ locationId: 'bench', agentId: `agent-${i}`, promptText: `bench prompt ${i}` }),
);

function progress(message: string): void {
  process.stderr.write(`… ${message}\n`);
}

async function benchStore(label: string, store: MemoryStore): Promise<{ write: Result; read: Result; search: Result }> {
  await store.migrate();
  progress(`${label}: seeding ${SCOPES * SEED_PER_SCOPE} patterns`);
  for (const scopeId of scopeIds) {
    await store.savePatterns(
      scopeKeyOf(scopeId),
      Array.from({ length: SEED_PER_SCOPE }, (_, i) => toNewPattern(scopeId, `seed pattern ${i} for ${scopeId}: greet by first name`)),
      new Date(),
    );
  }
  const runId = randomBytes(4).toString('hex');
  progress(`${label}: ${WRITES} learning writes (1 pattern each, ${CONCURRENCY} in flight)`);
  const write = await measure(WRITES, CONCURRENCY, (i) => {
    const scopeId = scopeIds[i % SCOPES]!;
    return store.savePatterns(scopeKeyOf(scopeId), [toNewPattern(scopeId, `learned ${runId} ${i}`)], new Date());
  });
  progress(`${label}: ${READS} scope reads (newest 10)`);
  const read = await measure(READS, CONCURRENCY, (i) => store.searchPatterns(scopeIds[(i * 7) % SCOPES]!, undefined, 10, new Date()));
  progress(`${label}: ${READS} scope searches (ranked full text)`);
  const search = await measure(READS, CONCURRENCY, (i) =>
    store.searchPatterns(scopeIds[(i * 11) % SCOPES]!, i % 2 ? 'first name' : 'learned', 10, new Date()),
  );
  return { write, read, search };
}

async function withPostgresDatabase<T>(work: (url: string) => Promise<T>): Promise<T> {
  const name = `bench_store_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    return await work(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function benchCacheTier(): Promise<{ lru: Result; tieredLocalHit: Result; tieredRedisHit: Result }> {
  const value: CachedSnippets = {
    snippets: Array.from({ length: 5 }, (_, i) => ({ id: `s${i}`, content: `Snippet ${i}: greet the caller by first name` })),
    origin: 'context7',
  };
  const load = async () => ({ value, cacheable: true });
  const keys = Array.from({ length: 1_000 }, (_, i) => `q=${i}`);

  progress(`cache: ${CACHE_OPS} hits on the in-process LRU alone`);
  const lru = createLruSnippetCache({ ttlMs: 300_000 });
  for (const key of keys) await lru.getOrLoad(scopeIds[0]!, key, load);
  // Warm-up, so the first measured path does not pay for JIT compilation the later ones skip.
  await measure(5_000, 1, (i) => lru.getOrLoad(scopeIds[0]!, keys[i % keys.length]!, load));
  const lruResult = await measure(CACHE_OPS, 1, (i) => lru.getOrLoad(scopeIds[0]!, keys[i % keys.length]!, load));

  const prefix = `bench:${randomBytes(5).toString('hex')}:`;
  const redis = await connectRedis(REDIS_URL, { name: 'bench-store' });
  const subscriber = await duplicateForSubscribe(redis, { name: 'bench-store-sub' });
  try {
    progress(`cache: ${CACHE_OPS} hits through the Redis tier, answered by its local LRU`);
    const tiered = new RedisTieredSnippetCache({
      createLocal: () => createLruSnippetCache({ ttlMs: 300_000 }),
      redis,
      subscriber,
      keyPrefix: prefix,
      ttlMs: 300_000,
      instanceId: 'bench-a',
    });
    await tiered.ready();
    for (const key of keys) await tiered.getOrLoad(scopeIds[0]!, key, load);
    await measure(5_000, 1, (i) => tiered.getOrLoad(scopeIds[0]!, keys[i % keys.length]!, load));
    const tieredLocalHit = await measure(CACHE_OPS, 1, (i) => tiered.getOrLoad(scopeIds[0]!, keys[i % keys.length]!, load));

    progress(`cache: ${Math.min(CACHE_OPS, 5_000)} hits served by Redis (another instance's local tier is cold)`);
    // A one-entry local tier over 1,000 keys: every read misses locally and is answered from Redis.
    const cold = new RedisTieredSnippetCache({
      createLocal: () => createLruSnippetCache({ ttlMs: 300_000, maxEntries: 1 }),
      redis,
      subscriber,
      keyPrefix: prefix,
      ttlMs: 300_000,
      instanceId: 'bench-b',
    });
    await cold.ready();
    const tieredRedisHit = await measure(Math.min(CACHE_OPS, 5_000), 1, async (i) => {
      const { fromCache } = await cold.getOrLoad(scopeIds[0]!, keys[(i * 13) % keys.length]!, load);
      if (!fromCache) throw new Error('expected a shared-tier hit');
    });
    await Promise.all([tiered.close(), cold.close()]);
    return { lru: lruResult, tieredLocalHit, tieredRedisHit };
  } finally {
    let cursor = '0';
    do {
      const [nextCursor, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = nextCursor;
      if (found.length > 0) await redis.del(...found);
    } while (cursor !== '0');
    await closeRedis(subscriber);
    await closeRedis(redis);
  }
}

const fmt = (n: number, digits = 0) => n.toFixed(digits).padStart(10);
const ms = (n: number) => `${n.toFixed(3)} ms`.padStart(12);
const us = (n: number) => `${(n * 1_000).toFixed(1)} µs`.padStart(12);

async function benchSearchAtScale(scale: number, stores: ('sqlite' | 'postgres')[]): Promise<void> {
  const options = { scale, concurrency: CONCURRENCY, progress };
  const print = (lines: string[]) =>
    process.stdout.write(`${[...lines, `load average: ${os.loadavg().map((n) => n.toFixed(2)).join(' ')} (${os.cpus().length} cores)`, ''].join('\n')}\n`);
  if (stores.includes('sqlite')) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-search-'));
    try {
      print(formatSearchFigures(scale, 'SQLite', await benchSqliteSearch(dataDir, options)));
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
  if (stores.includes('postgres')) {
    print(formatSearchFigures(scale, 'PostgreSQL', await withPostgresDatabase((url) => benchPostgresSearch(url, options))));
  }
}

async function main(): Promise<void> {
  const scale = parseScale(process.argv.slice(2));
  const stores = parseStores(process.argv.slice(2));
  if (process.argv.includes('--search-only')) {
    await benchSearchAtScale(scale, stores);
    return;
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-store-'));
  const sqlite = createSqliteStore({ dataDir });
  let sqliteResult;
  try {
    sqliteResult = await benchStore('sqlite', sqlite);
  } finally {
    await sqlite.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const pgResult = await withPostgresDatabase(async (url) => {
    const store = new PostgresMemoryStore({ connectionString: url, maxConnections: CONCURRENCY });
    try {
      return await benchStore('postgres', store);
    } finally {
      await store.close();
    }
  });
  const cache = await benchCacheTier();

  const lines: string[] = [];
  lines.push(`Store backends (loopback, ${CONCURRENCY} operations in flight, ${SCOPES * SEED_PER_SCOPE} seeded patterns, Node ${process.version})`);
  lines.push(`${'operation'.padEnd(28)}${'SQLite ops/s'.padStart(14)}${'p99'.padStart(12)}${'Postgres ops/s'.padStart(16)}${'p99'.padStart(12)}${'PG/SQLite'.padStart(11)}`);
  for (const [name, key] of [
    [`writes (1 pattern, n=${WRITES})`, 'write'],
    [`reads (newest 10, n=${READS})`, 'read'],
    [`searches (ranked, n=${READS})`, 'search'],
  ] as const) {
    const s = sqliteResult[key];
    const p = pgResult[key];
    lines.push(`${name.padEnd(28)}${fmt(s.opsPerSec).padStart(14)}${ms(s.p99Ms)}${fmt(p.opsPerSec).padStart(16)}${ms(p.p99Ms)}${`${(p.opsPerSec / s.opsPerSec).toFixed(2)}x`.padStart(11)}`);
  }
  lines.push('');
  lines.push('Snippet cache hit (one caller at a time)');
  lines.push(`${'path'.padEnd(40)}${'ops/s'.padStart(12)}${'mean'.padStart(12)}${'p50'.padStart(12)}${'p99'.padStart(12)}${'cost vs LRU'.padStart(14)}`);
  const meanUs = (r: Result) => 1_000_000 / r.opsPerSec;
  for (const [name, r] of [
    ['in-process LRU alone', cache.lru],
    ['Redis tier, answered by its local LRU', cache.tieredLocalHit],
    ['Redis tier, answered by Redis', cache.tieredRedisHit],
  ] as const) {
    const extra = meanUs(r) - meanUs(cache.lru);
    lines.push(`${name.padEnd(40)}${fmt(r.opsPerSec).padStart(12)}${`${meanUs(r).toFixed(1)} µs`.padStart(12)}${us(r.p50Ms)}${us(r.p99Ms)}${`${extra >= 0 ? '+' : ''}${extra.toFixed(1)} µs`.padStart(14)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
  await benchSearchAtScale(scale, stores);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:store failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
