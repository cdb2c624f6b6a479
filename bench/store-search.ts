/**
 * The search part of `npm run bench:store`: ranked full-text search at scale against today's substring scan, in
 * one run, on both stores. Seeds `1,000,000 × scale` patterns over `10,000 × scale` scopes, one hot scope holding a
 * tenth of them, then builds the search index through the real migrations (so the build over existing data is
 * measured too). The substring scan and the write path without an index survive here only as bench baselines.
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { Pool } from 'pg';
import { mulberry32 } from '../service/context7/emulator';
import type { MemoryStore, NewPattern, ScopeKey, StoredPattern } from '../service/data-access/memory-store';
import { PG_MIGRATIONS, runPgMigrations } from '../service/data-access/postgres-migrations';
import { PostgresMemoryStore } from '../service/data-access/postgres-store';
import { createSqliteStore, sqliteDatabasePath } from '../service/data-access/sqlite-store';
import { scopeKeyOf, toNewPattern } from '../service/domain/patterns';
import { generateScopeIdSync } from '../service/domain/scope-id';

export interface SearchBenchOptions {
  /** 1 = the issue's full size: 1,000,000 patterns, 10,000 scopes, hot scope of 100,000. */
  scale: number;
  concurrency: number;
  progress: (message: string) => void;
  /** Samples per query (ranked / substring baseline) and writes per path; env BENCH_SEARCH_* by default. */
  samples?: { ranked: number; baseline: number; writes: number };
}

interface Latency {
  p50Ms: number;
  p99Ms: number;
  samples: number;
  /** Results returned by the last sample (sanity: the rare term finds a few, no-match none). */
  found: number;
}

export interface StoreSearchFigures {
  seedRows: number;
  seedMs: number;
  indexBuildMs: number;
  sizeBytes: number;
  indexBytes: number;
  search: Record<QueryKind, { ranked: Latency; substring: Latency }>;
  writes: { indexed: Latency & { opsPerSec: number }; today: Latency & { opsPerSec: number } };
  relevance: { rankedRecallAt10: number; substringRecallAt10: number; queries: number };
}

export type QueryKind = 'rare' | 'common' | 'two-term' | 'no-match';
export const BENCH_QUERIES: Record<QueryKind, string> = {
  rare: 'zanzibar',
  common: 'customer',
  'two-term': 'refund invoice',
  'no-match': 'quetzalcoatl',
};

// ---------------------------------------------------------------------------------------------------------------
// Synthetic corpus: agent-style snippets, Zipf-distributed words; planted terms give each query its frequency.

const COMMON_WORDS = (
  'the a to and of for when caller asks about confirm offer greet first name slot tuesday address order ' +
  'booking appointment call transfer human agent politely brief repeat number email phone price discount ' +
  'delivery shipping return exchange cancel reschedule hours open closed weekend holiday manager ticket ' +
  'account password reset login payment card billing receipt warranty repair install schedule visit ' +
  'technician store location parking menu allergy table reservation guests party size wait list'
).split(' ');
const SYNTHETIC_WORDS = Array.from({ length: 2_800 }, (_, i) => `w${i.toString(36)}x`);
const VOCABULARY = [...COMMON_WORDS, ...SYNTHETIC_WORDS];

function zipfPicker(random: () => number, size: number): () => number {
  const weights = Array.from({ length: size }, (_, i) => 1 / (i + 1));
  const cumulative: number[] = [];
  let sum = 0;
  for (const weight of weights) cumulative.push((sum += weight));
  return () => {
    const target = random() * sum;
    let lo = 0;
    let hi = size - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export function snippetMaker(seed: number) {
  const random = mulberry32(seed);
  const pick = zipfPicker(random, VOCABULARY.length);
  return (serial: number, planted: string[]): string => {
    const words = Array.from({ length: 6 + Math.floor(random() * 13) }, () => VOCABULARY[pick()]!);
    for (const word of planted) words.splice(Math.floor(random() * words.length), 0, word);
    return `${words.join(' ')} #${serial}`;
  };
}

interface SeedRow {
  scope: ScopeKey;
  pattern: NewPattern;
  createdAt: string;
}

/** Deterministic: hot scope first in the list, a tenth of all rows; planted terms only there. */
export function* seedRows(scale: number): Generator<SeedRow> {
  const total = Math.round(1_000_000 * scale);
  const scopeCount = Math.max(2, Math.round(10_000 * scale));
  const hotRows = Math.round(total / 10);
  const scopes = benchScopes(scopeCount);
  const make = snippetMaker(42);
  const random = mulberry32(7);
  const start = Date.parse('2026-01-01T00:00:00.000Z');
  const rareEvery = Math.max(1, Math.round(hotRows / 50)); // 50 rows at full scale: 0.05% of the hot scope
  for (let i = 0; i < total; i += 1) {
    const hot = i % 10 === 0 && i / 10 < hotRows;
    const scope = hot ? scopes[0]! : scopes[1 + (i % (scopeCount - 1))]!;
    const planted: string[] = [];
    if (hot && (i / 10) % rareEvery === 7 % rareEvery) planted.push('zanzibar');
    if (random() < 0.15) planted.push('customer');
    if (random() < 0.03) planted.push('refund');
    if (random() < 0.03) planted.push('invoice');
    const content = make(i, planted);
    yield { scope, pattern: toNewPattern(scope.scopeId, content), createdAt: new Date(start + i * 1_000).toISOString() };
  }
}

export function benchScopes(count: number): ScopeKey[] {
  return Array.from({ length: count }, (_, i) =>
    scopeKeyOf(generateScopeIdSync({ locationId: 'search-bench', agentId: `agent-${i}`, promptText: `search bench prompt ${i}` })),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Baselines: today's behaviour, kept only to measure against.

/** Today's local search (before ranked search): a literal substring scan of the scope, newest first. */
const SQLITE_SUBSTRING_SCAN_BASELINE = `SELECT id, content, created_at FROM patterns
  WHERE scope_id = @scopeId AND (expires_at IS NULL OR expires_at > @now) AND instr(unicode_lower(content), @query) > 0
  ORDER BY created_at DESC, id LIMIT @limit`;
const POSTGRES_SUBSTRING_SCAN_BASELINE = `SELECT id, content, created_at FROM patterns p
  WHERE p.scope_id = $1 AND (p.expires_at IS NULL OR p.expires_at > $2) AND strpos(lower(p.content), lower($4)) > 0
  ORDER BY p.created_at DESC, p.seq DESC LIMIT $3`;

/** Today's order for the relevance check: every pattern containing the query literally, newest first. */
export function substringOrderBaseline(patterns: readonly { content: string; createdAt: string }[], query: string) {
  const needle = query.toLowerCase();
  return patterns
    .filter((pattern) => pattern.content.toLowerCase().includes(needle))
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}

// ---------------------------------------------------------------------------------------------------------------
// Relevance fixture: 20 labelled queries. Per query: 4 on-topic patterns (the labels), 6 newer-or-older patterns
// that mention the word once inside a long unrelated instruction, 6 that contain it only inside another word.
// Creation times are shuffled, so newest-first is neither favoured nor punished by construction.

const RELEVANCE_TOPICS = [
  'refund', 'invoice', 'password', 'delivery', 'allergy', 'warranty', 'parking', 'discount', 'reservation', 'cancel',
  'receipt', 'technician', 'holiday', 'manager', 'exchange', 'payment', 'shipping', 'menu', 'appointment', 'install',
];

export interface RelevanceFixture {
  patterns: { content: string; createdAt: string }[];
  labelled: { query: string; relevant: string[] }[];
}

export function relevanceFixture(): RelevanceFixture {
  const random = mulberry32(99);
  const patterns: { content: string }[] = [];
  const labelled: { query: string; relevant: string[] }[] = [];
  for (const [t, topic] of RELEVANCE_TOPICS.entries()) {
    const relevant = [
      `${topic} questions: explain the ${topic} rules in one sentence`,
      `If the caller mentions a ${topic}, check the ${topic} record before answering`,
      `Always confirm ${topic} details back to the caller`,
      `${topic}: say it takes up to five business days`,
    ];
    const passing = Array.from(
      { length: 6 },
      (_, i) =>
        `Keep every call friendly and short, greet the caller by first name, confirm the address and the phone number, ` +
        `offer the earliest slot, do not bring up ${topic} unless asked, and end the call politely (${t}.${i})`,
    );
    const embedded = Array.from({ length: 6 }, (_, i) => `Note pre${topic}ed items and the ${topic}ing queue separately (${t}.${i})`);
    patterns.push(...[...relevant, ...passing, ...embedded].map((content) => ({ content })));
    labelled.push({ query: topic, relevant });
  }
  // Fisher-Yates with the seeded PRNG, then one second apart: a fixed, shuffled recency.
  for (let i = patterns.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [patterns[i], patterns[j]] = [patterns[j]!, patterns[i]!];
  }
  const start = Date.parse('2026-02-01T00:00:00.000Z');
  return { patterns: patterns.map((p, i) => ({ ...p, createdAt: new Date(start + i * 1_000).toISOString() })), labelled };
}

export function recallAt10(found: readonly string[], relevant: readonly string[]): number {
  const top = new Set(found.slice(0, 10));
  return relevant.filter((content) => top.has(content)).length / relevant.length;
}

async function relevanceOf(store: MemoryStore, now: Date): Promise<StoreSearchFigures['relevance']> {
  const fixture = relevanceFixture();
  const scope = scopeKeyOf(generateScopeIdSync({ locationId: 'search-bench', agentId: 'relevance', promptText: 'relevance' }));
  for (const pattern of fixture.patterns) {
    await store.savePatterns(scope, [toNewPattern(scope.scopeId, pattern.content)], new Date(pattern.createdAt));
  }
  let ranked = 0;
  let substring = 0;
  for (const { query, relevant } of fixture.labelled) {
    ranked += recallAt10((await store.searchPatterns(scope.scopeId, query, 10, now)).map((p: StoredPattern) => p.content), relevant);
    substring += recallAt10(substringOrderBaseline(fixture.patterns, query).map((p) => p.content), relevant);
  }
  return { rankedRecallAt10: ranked / fixture.labelled.length, substringRecallAt10: substring / fixture.labelled.length, queries: fixture.labelled.length };
}

// ---------------------------------------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function timeEach(count: number, concurrency: number, op: (i: number) => Promise<number | void>): Promise<Latency & { opsPerSec: number }> {
  const latencies = new Array<number>(count);
  let next = 0;
  let found = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        const result = await op(i);
        latencies[i] = performance.now() - t0;
        if (typeof result === 'number') found = result;
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), samples: count, found, opsPerSec: (count / elapsed) * 1_000 };
}

/** Alternates the two operations, so machine noise and table growth fall on both alike. */
async function timeInterleaved(
  count: number,
  concurrency: number,
  first: (i: number) => Promise<void>,
  second: (i: number) => Promise<void>,
): Promise<[Latency & { opsPerSec: number }, Latency & { opsPerSec: number }]> {
  const latencies: [number[], number[]] = [[], []];
  const busyMs = [0, 0];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count * 2) {
        const i = next++;
        const which = i % 2;
        const t0 = performance.now();
        await (which === 0 ? first : second)(i >> 1);
        const elapsed = performance.now() - t0;
        latencies[which]!.push(elapsed);
        busyMs[which]! += elapsed;
      }
    }),
  );
  return latencies.map((list, which) => {
    list.sort((a, b) => a - b);
    // Throughput per operation kind: operations over the time spent in them (they share the run's wall time).
    return { p50Ms: percentile(list, 50), p99Ms: percentile(list, 99), samples: list.length, found: 0, opsPerSec: (list.length / busyMs[which]!) * 1_000 * concurrency };
  }) as [Latency & { opsPerSec: number }, Latency & { opsPerSec: number }];
}

const RANKED_SAMPLES = Number(process.env.BENCH_SEARCH_SAMPLES ?? 500);
const BASELINE_SAMPLES = Number(process.env.BENCH_BASELINE_SAMPLES ?? 100);
const WRITE_SAMPLES = Number(process.env.BENCH_SEARCH_WRITES ?? 2_000);

function samplesOf(options: SearchBenchOptions): { ranked: number; baseline: number; writes: number } {
  return options.samples ?? { ranked: RANKED_SAMPLES, baseline: BASELINE_SAMPLES, writes: WRITE_SAMPLES };
}

async function measureSearches(
  label: string,
  options: SearchBenchOptions,
  ranked: (query: string) => Promise<number>,
  substring: (query: string) => Promise<number>,
): Promise<StoreSearchFigures['search']> {
  const result = {} as StoreSearchFigures['search'];
  const { ranked: rankedSamples, baseline: baselineSamples } = samplesOf(options);
  for (const [kind, query] of Object.entries(BENCH_QUERIES) as [QueryKind, string][]) {
    options.progress(`${label}: search "${query}" (${kind}) in the hot scope: ranked ×${rankedSamples}, substring scan ×${baselineSamples}`);
    await ranked(query); // warm the statement and cache
    const rankedLatency = await timeEach(rankedSamples, 1, () => ranked(query));
    await substring(query);
    const substringLatency = await timeEach(baselineSamples, 1, () => substring(query));
    result[kind] = { ranked: rankedLatency, substring: substringLatency };
  }
  return result;
}

function writeMaker(scopes: ScopeKey[], runId: string) {
  const make = snippetMaker(4242);
  return (i: number) => {
    const scope = scopes[(i * 7919) % scopes.length]!;
    return { scope, pattern: toNewPattern(scope.scopeId, `${make(i, [])} learned ${runId}`) };
  };
}

export async function benchSqliteSearch(dataDir: string, options: SearchBenchOptions): Promise<StoreSearchFigures> {
  const file = sqliteDatabasePath(dataDir);
  // 1. Today's schema, then the seed, then the search migration over existing rows (timed as the index build).
  const fresh = createSqliteStore({ dataDir, migrateUpTo: 1 });
  await fresh.migrate();
  await fresh.close();
  const raw = new Database(file);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  const insert = raw.prepare(
    `INSERT INTO patterns (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, metadata, expires_at, created_at, synced_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)`,
  );
  const insertMany = raw.transaction((rows: SeedRow[]) => {
    for (const { scope, pattern, createdAt } of rows) {
      insert.run(pattern.id, scope.scopeId, scope.locationId, scope.agentId, scope.promptHash, pattern.content, pattern.contentHash, createdAt, createdAt);
    }
  });
  const scopes = benchScopes(Math.max(2, Math.round(10_000 * options.scale)));
  options.progress(`sqlite: seeding ${Math.round(1_000_000 * options.scale)} patterns over ${scopes.length} scopes`);
  const seedStarted = performance.now();
  let batch: SeedRow[] = [];
  let seeded = 0;
  for (const row of seedRows(options.scale)) {
    batch.push(row);
    if (batch.length === 10_000) {
      insertMany(batch);
      seeded += batch.length;
      batch = [];
      if (seeded % 200_000 === 0) options.progress(`sqlite: ${seeded} seeded`);
    }
  }
  insertMany(batch);
  seeded += batch.length;
  const seedMs = performance.now() - seedStarted;
  raw.pragma('wal_checkpoint(TRUNCATE)');
  raw.close();
  // Today's database: a copy taken before the search migration. The substring scan and today's writes run there,
  // on their own file, so neither path's connection invalidates the other's page cache.
  const todayDir = `${dataDir}-today`;
  fs.mkdirSync(todayDir, { recursive: true });
  fs.copyFileSync(file, sqliteDatabasePath(todayDir));
  const today = new Database(sqliteDatabasePath(todayDir));
  today.pragma('journal_mode = WAL');
  today.pragma('synchronous = NORMAL');
  today.pragma('busy_timeout = 5000');
  today.pragma('foreign_keys = ON');
  options.progress('sqlite: building the search index (migration 2 over existing rows)');
  const store = createSqliteStore({ dataDir });
  const buildStarted = performance.now();
  await store.migrate();
  const indexBuildMs = performance.now() - buildStarted;

  try {
    const hot = scopes[0]!;
    const now = new Date('2027-01-01T00:00:00.000Z');
    today.function('unicode_lower', { deterministic: true }, (value: unknown) => (typeof value === 'string' ? value.toLowerCase() : value));
    const substringScan = today.prepare(SQLITE_SUBSTRING_SCAN_BASELINE);
    const search = await measureSearches(
      'sqlite',
      options,
      async (query) => (await store.searchPatterns(hot.scopeId, query, 10, now)).length,
      async (query) => substringScan.all({ scopeId: hot.scopeId, now: now.toISOString(), query: query.toLowerCase(), limit: 10 }).length,
    );

    options.progress(`sqlite: ${samplesOf(options).writes} learning writes with the index, and as many the way they were written before`);
    const write = writeMaker(scopes, 'indexed');
    const todayWrite = writeMaker(scopes, 'today');
    const todaysWrite = sqliteWriteBaseline(today);
    // One at a time: better-sqlite3 is synchronous, and with several in flight an awaited write's latency would
    // include the other writes' turns while the synchronous baseline's would not.
    const [indexed, todayWrites] = await timeInterleaved(
      samplesOf(options).writes,
      1,
      async (i) => {
        const { scope, pattern } = write(i);
        await store.savePatterns(scope, [pattern], new Date());
      },
      async (i) => {
        const { scope, pattern } = todayWrite(i);
        todaysWrite(scope, pattern, new Date());
      },
    );

    options.progress('sqlite: relevance check');
    const relevance = await relevanceOf(store, now);
    await store.close();
    const raw = new Database(file);
    raw.pragma('wal_checkpoint(TRUNCATE)');
    const sizeBytes = fs.statSync(file).size;
    let indexBytes = 0;
    try {
      indexBytes = (raw.prepare(`SELECT sum(pgsize) AS n FROM dbstat WHERE name LIKE 'patterns_search%'`).get() as { n: number }).n;
    } catch {
      indexBytes = Number.NaN; // dbstat not compiled in
    }
    raw.close();
    return { seedRows: seeded, seedMs, indexBuildMs, sizeBytes, indexBytes, search, writes: { indexed, today: todayWrites }, relevance };
  } finally {
    await store.close();
    today.close();
    fs.rmSync(todayDir, { recursive: true, force: true });
  }
}

/**
 * Today's SQLite learning write, statement for statement as the store made it before ranked search (pattern,
 * outbox entry, history event, read back, in one IMMEDIATE transaction), minus the search document.
 */
function sqliteWriteBaseline(db: Database.Database) {
  const insertPattern = db.prepare(
    `INSERT INTO patterns (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, metadata, expires_at, created_at)
     VALUES (@id, @scopeId, @locationId, @agentId, @promptHash, @content, @contentHash, @metadata, @expiresAt, @now) ON CONFLICT DO NOTHING`,
  );
  const insertOutbox = db.prepare(
    `INSERT INTO outbox (pattern_id, next_attempt_at, enqueued_at, lease_owner, lease_until) VALUES (@id, @now, @now, NULL, NULL)`,
  );
  const insertHistory = db.prepare(
    `INSERT INTO pattern_history (pattern_id, scope_id, event, at, detail) VALUES (@id, @scopeId, 'created', @now, NULL)`,
  );
  const select = db.prepare(
    `SELECT id, scope_id, content, content_hash, metadata, expires_at, created_at, synced_at FROM patterns WHERE scope_id = ? AND content_hash = ?`,
  );
  const tx = db.transaction((scope: ScopeKey, pattern: NewPattern, now: string) => {
    const params = {
      ...scope,
      id: pattern.id,
      content: pattern.content,
      contentHash: pattern.contentHash,
      metadata: pattern.metadata === null ? null : JSON.stringify(pattern.metadata),
      expiresAt: pattern.expiresAt === null ? null : new Date(pattern.expiresAt).toISOString(),
      now,
    };
    if (insertPattern.run(params).changes === 1) {
      insertOutbox.run(params);
      insertHistory.run(params);
    }
    const row = select.get(scope.scopeId, pattern.contentHash) as { metadata: string | null };
    return { ...row, metadata: row.metadata === null ? null : JSON.parse(row.metadata) };
  });
  return (scope: ScopeKey, pattern: NewPattern, now: Date) => tx.immediate(scope, pattern, now.toISOString());
}

export async function benchPostgresSearch(url: string, options: SearchBenchOptions): Promise<StoreSearchFigures> {
  const pool = new Pool({ connectionString: url, max: options.concurrency });
  // Dropping the bench database at the end terminates connections still closing: not an error of the run.
  pool.on('error', () => undefined);
  const scopes = benchScopes(Math.max(2, Math.round(10_000 * options.scale)));
  try {
    // 1. Today's schema (migrations before the search ones), the seed, then the search migrations (timed).
    await runPgMigrations(pool, PG_MIGRATIONS.filter((migration) => migration.id <= 2));
    options.progress(`postgres: seeding ${Math.round(1_000_000 * options.scale)} patterns over ${scopes.length} scopes`);
    const seedStarted = performance.now();
    let batch: SeedRow[] = [];
    let seeded = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const column = <T>(get: (row: SeedRow) => T) => batch.map(get);
      await pool.query(
        `INSERT INTO patterns (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, created_at, synced_at)
         SELECT id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, created_at, created_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
           AS r(id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, created_at)`,
        [
          column((r) => r.pattern.id),
          column((r) => r.scope.scopeId),
          column((r) => r.scope.locationId),
          column((r) => r.scope.agentId),
          column((r) => r.scope.promptHash),
          column((r) => r.pattern.content),
          column((r) => r.pattern.contentHash),
          column((r) => r.createdAt),
        ],
      );
      seeded += batch.length;
      batch = [];
      if (seeded % 200_000 === 0) options.progress(`postgres: ${seeded} seeded`);
    };
    for (const row of seedRows(options.scale)) {
      batch.push(row);
      if (batch.length === 5_000) await flush();
    }
    await flush();
    await pool.query('VACUUM ANALYZE patterns');
    const seedMs = performance.now() - seedStarted;

    options.progress('postgres: building the search index (migrations 3-5: column, batched backfill, GIN built concurrently)');
    const store = new PostgresMemoryStore({ connectionString: url, maxConnections: options.concurrency, onPoolError: () => undefined });
    try {
      const buildStarted = performance.now();
      await store.migrate();
      const indexBuildMs = performance.now() - buildStarted;
      await pool.query('VACUUM ANALYZE patterns');

      const hot = scopes[0]!;
      const now = new Date('2027-01-01T00:00:00.000Z');
      const search = await measureSearches(
        'postgres',
        options,
        async (query) => (await store.searchPatterns(hot.scopeId, query, 10, now)).length,
        async (query) => (await pool.query(POSTGRES_SUBSTRING_SCAN_BASELINE, [hot.scopeId, now, 10, query])).rows.length,
      );

      options.progress(`postgres: ${samplesOf(options).writes} learning writes with the index, and as many the way they were written before`);
      const write = writeMaker(scopes, 'indexed');
      const todayWrite = writeMaker(scopes, 'today');
      const [indexed, today] = await timeInterleaved(
        samplesOf(options).writes,
        options.concurrency,
        async (i) => {
          const { scope, pattern } = write(i);
          await store.savePatterns(scope, [pattern], new Date());
        },
        async (i) => {
          const { scope, pattern } = todayWrite(i);
          await postgresWriteBaseline(pool, scope, pattern, new Date());
        },
      );

      options.progress('postgres: relevance check');
      const relevance = await relevanceOf(store, now);
      const sizes = await pool.query<{ db: string; idx: string }>(
        `SELECT pg_database_size(current_database())::text AS db, pg_relation_size('patterns_search')::text AS idx`,
      );
      return {
        seedRows: seeded,
        seedMs,
        indexBuildMs,
        sizeBytes: Number(sizes.rows[0]!.db),
        indexBytes: Number(sizes.rows[0]!.idx),
        search,
        writes: { indexed, today },
        relevance,
      };
    } finally {
      await store.close();
    }
  } finally {
    await pool.end();
  }
}

/** Today's PostgreSQL learning write, statement for statement as the store made it (one transaction), minus the search document. */
async function postgresWriteBaseline(pool: Pool, scope: ScopeKey, pattern: NewPattern, now: Date): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const inserted = await client.query<{ id: string; seq: string }>(
      `INSERT INTO patterns AS p (id, scope_id, location_id, agent_id, prompt_hash, content, content_hash, metadata, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING
       RETURNING p.id, p.scope_id, p.content, p.content_hash, p.metadata, p.expires_at, p.created_at, p.synced_at, p.seq`,
      [pattern.id, scope.scopeId, scope.locationId, scope.agentId, scope.promptHash, pattern.content, pattern.contentHash, null, pattern.expiresAt, now],
    );
    const row = inserted.rows[0];
    if (row) {
      await client.query(`INSERT INTO outbox (pattern_id, enqueued_seq, available_at) VALUES ($1, $2, $3)`, [row.id, row.seq, now]);
      await client.query(`INSERT INTO pattern_history (pattern_id, scope_id, event, at) VALUES ($1, $2, 'created', $3)`, [row.id, scope.scopeId, now]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** One store's figures, printed as soon as that store is done (a long run keeps what it measured). */
export function formatSearchFigures(scale: number, name: 'SQLite' | 'PostgreSQL', f: StoreSearchFigures): string[] {
  const ms = (n: number) => `${n.toFixed(2)} ms`.padStart(11);
  const lines: string[] = [];
  lines.push(
    `${name}, search at scale (--scale ${scale}: ${f.seedRows.toLocaleString('en')} patterns, hot scope ${Math.round(f.seedRows / 10).toLocaleString('en')}; one caller; top 10)`,
  );
  lines.push(`${'query in the hot scope'.padEnd(30)}${'ranked p50'.padStart(11)}${'p99'.padStart(11)}${'substring p50'.padStart(15)}${'p99'.padStart(11)}${'found'.padStart(7)}`);
  for (const kind of Object.keys(BENCH_QUERIES) as QueryKind[]) {
    const { ranked, substring } = f.search[kind];
    lines.push(`${`${kind} "${BENCH_QUERIES[kind]}"`.padEnd(30)}${ms(ranked.p50Ms)}${ms(ranked.p99Ms)}${ms(substring.p50Ms).padStart(15)}${ms(substring.p99Ms)}${String(ranked.found).padStart(7)}`);
  }
  const slower = f.writes.today.opsPerSec / f.writes.indexed.opsPerSec;
  lines.push(
    `learning writes: ${f.writes.indexed.opsPerSec.toFixed(0)}/s, p99 ${f.writes.indexed.p99Ms.toFixed(2)} ms with the index; ` +
      `${f.writes.today.opsPerSec.toFixed(0)}/s, p99 ${f.writes.today.p99Ms.toFixed(2)} ms the way they were written before (${slower.toFixed(2)}x slower)`,
  );
  lines.push(
    `seed ${(f.seedMs / 1_000).toFixed(1)} s; index build over the existing rows (migrations) ${(f.indexBuildMs / 1_000).toFixed(1)} s; ` +
      `size on disk ${(f.sizeBytes / 1_048_576).toFixed(0)} MiB, of which the search index ${(f.indexBytes / 1_048_576).toFixed(0)} MiB`,
  );
  lines.push(
    `relevance, ${f.relevance.queries} labelled queries: recall@10 ranked ${f.relevance.rankedRecallAt10.toFixed(2)}, substring newest-first ${f.relevance.substringRecallAt10.toFixed(2)}`,
  );
  return lines;
}

/** `--store sqlite` or `--store postgres` runs one store only; default both. */
export function parseStores(argv: readonly string[]): ('sqlite' | 'postgres')[] {
  const index = argv.indexOf('--store');
  if (index === -1) return ['sqlite', 'postgres'];
  const value = argv[index + 1];
  if (value !== 'sqlite' && value !== 'postgres') throw new Error('--store takes sqlite or postgres');
  return [value];
}

export function parseScale(argv: readonly string[]): number {
  const index = argv.indexOf('--scale');
  if (index === -1) return 1;
  const value = Number(argv[index + 1]);
  if (!Number.isFinite(value) || value <= 0 || value > 1) throw new Error('--scale takes a number in (0, 1], e.g. --scale 0.01');
  return value;
}
