/**
 * Runs once before the suites: node_modules must match the running Node's ABI, and dist/ must be the compiled
 * service of this very source (suites start it with the declared start command, as Render does), and the compiled
 * canary CLI and pulumi stand-in (started as `npm run canary` starts it: canary/compiled.ts).
 *
 * It also gives the run its id (TEST_RUN_ID, inherited by the workers, which start after this), and at the end
 * fails the run if a PostgreSQL database or Redis key named with that id is left behind: every test that
 * touches them must remove what it created. Only this run's names count, so other runs on the same servers at
 * the same time can never make it fail.
 *
 * Temporary files and folders the same way: the run gets its own temporary directory (TMPDIR, which os.tmpdir(),
 * the services, the emulators and Chromium all follow), and at the end anything still in it fails the run, named,
 * before the directory is removed. So a test that leaves a folder in /tmp fails here, and the machine keeps
 * nothing of the run either way.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { runNamePatterns, TEST_RUN_ID_ENV } from './support/run-id';

const REPO = path.resolve(__dirname, '..');
const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CALL_DEADLINE_MS = 10_000;
/** Where the service puts its keys when REDIS_KEY_PREFIX is not set (service/fleet/data-plane-config.ts). */
const SERVICE_DEFAULT_PREFIX_GLOB = 'memsvc:*';

/** Databases whose name matches, or undefined when PostgreSQL is not reachable (then no test created any). */
async function databasesMatching(pattern: RegExp): Promise<string[] | undefined> {
  const client = new Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: CALL_DEADLINE_MS, query_timeout: CALL_DEADLINE_MS });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch {
    return undefined;
  }
  try {
    const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database');
    return rows.map((row) => row.datname).filter((name) => pattern.test(name)).sort();
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Keys matching the glob (SCAN, never KEYS), or undefined when Redis is not reachable. */
async function redisKeysMatching(glob: string): Promise<string[] | undefined> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: CALL_DEADLINE_MS, commandTimeout: CALL_DEADLINE_MS, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch {
    redis.disconnect();
    return undefined;
  }
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', glob, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys.sort();
  } finally {
    redis.disconnect();
  }
}

/**
 * Caches the tools keep in the temporary directory on purpose, across runs: tsx's transforms and Node's compile
 * cache. The run's TMPDIR links them to the machine's, so every run (and every process a test starts) shares them,
 * and they are not leftovers.
 */
export function sharedTemporaryCaches(): string[] {
  return [`tsx-${os.userInfo().uid}`, 'node-compile-cache'];
}

/** What is left in the run's temporary directory (its shared-cache links aside): each entry with its size. */
export function temporaryLeftovers(dir: string): { name: string; bytes: number }[] {
  const sizeOf = (p: string): number => {
    try {
      const st = statSync(p);
      return st.isDirectory() ? readdirSync(p).reduce((n, entry) => n + sizeOf(path.join(p, entry)), 0) : st.size;
    } catch {
      return 0; // removed meanwhile
    }
  };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const caches = new Set(sharedTemporaryCaches());
  const isCacheLink = (name: string) => caches.has(name) && lstatSync(path.join(dir, name)).isSymbolicLink();
  return names.filter((name) => !isCacheLink(name)).sort().map((name) => ({ name, bytes: sizeOf(path.join(dir, name)) }));
}

function leftoversReport(runId: string, databases: string[], keys: string[], temporary: { name: string; bytes: number }[] = [], tmp = ''): string {
  const { redisKeyPattern } = runNamePatterns(runId);
  const shown = (names: string[]) => names.slice(0, 20).map((name) => `  ${name}`).join('\n') + (names.length > 20 ? `\n  ... ${names.length - 20} more` : '');
  const lines = [`This test run (${TEST_RUN_ID_ENV}=${runId}) left behind what its tests created; each test must remove its own.`];
  if (databases.length > 0) {
    lines.push(`PostgreSQL databases (${databases.length}):`, shown(databases));
    lines.push(`  clean up: for db in ${databases.slice(0, 3).join(' ')}${databases.length > 3 ? ' ...' : ''}; do psql -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done`);
  }
  if (keys.length > 0) {
    lines.push(`Redis keys (${keys.length}):`, shown(keys));
    lines.push(`  clean up: redis-cli --scan --pattern '${redisKeyPattern}' | xargs -r redis-cli del`);
  }
  if (temporary.length > 0) {
    lines.push(
      `Temporary files and folders (${temporary.length}) in this run's TMPDIR ${tmp} (now removed; each names the test that made it by its prefix):`,
      shown(temporary.map((t) => `${t.name} (${t.bytes} bytes)`)),
    );
  }
  return lines.join('\n');
}

export default async function setup(): Promise<() => Promise<void>> {
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'native-abi.cjs'), 'check'], { cwd: REPO, stdio: 'inherit' });
  // The service, and the commands the tests start over and over (canary/compiled.ts), compiled once for the run.
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'build.mjs'), 'service', 'cli', 'demo', 'test'], { cwd: REPO, stdio: 'inherit' });

  const runId = randomBytes(4).toString('hex');
  process.env[TEST_RUN_ID_ENV] = runId;
  // The run's own temporary directory, inherited by the workers and everything they start.
  const machineTmp = os.tmpdir();
  const runTmp = mkdtempSync(path.join(machineTmp, `vitest-${runId}-`));
  for (const cache of sharedTemporaryCaches()) {
    mkdirSync(path.join(machineTmp, cache), { recursive: true });
    symlinkSync(path.join(machineTmp, cache), path.join(runTmp, cache));
  }
  process.env.TMPDIR = runTmp;
  const { redisKeyPattern, databaseNamePattern } = runNamePatterns(runId);
  // The service's default prefix cannot be told apart from another run's: new keys there are reported, not failed.
  const defaultPrefixKeysBefore = new Set((await redisKeysMatching(SERVICE_DEFAULT_PREFIX_GLOB)) ?? []);

  return async function checkNothingLeftBehind(): Promise<void> {
    const newDefaultPrefixKeys = ((await redisKeysMatching(SERVICE_DEFAULT_PREFIX_GLOB)) ?? []).filter((key) => !defaultPrefixKeysBefore.has(key));
    if (newDefaultPrefixKeys.length > 0) {
      process.stderr.write(
        `note: ${newDefaultPrefixKeys.length} new ${SERVICE_DEFAULT_PREFIX_GLOB} keys on ${REDIS_URL} during this run (e.g. ${newDefaultPrefixKeys[0]}): ` +
          'a test may have started the service with REDIS_URL and no REDIS_KEY_PREFIX (use randomPrefix from ' +
          'test/data-plane/support/redis.ts), or another run on this Redis wrote them\n',
      );
    }
    const databases = (await databasesMatching(databaseNamePattern)) ?? [];
    const keys = (await redisKeysMatching(redisKeyPattern)) ?? [];
    const temporary = temporaryLeftovers(runTmp);
    rmSync(runTmp, { recursive: true, force: true });
    if (databases.length > 0 || keys.length > 0 || temporary.length > 0) {
      // Vitest reports an error thrown here but still exits 0: the exit code is set as well.
      process.exitCode = 1;
      throw new Error(leftoversReport(runId, databases, keys, temporary, runTmp));
    }
  };
}
