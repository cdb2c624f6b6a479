/**
 * The exposure controller's failure rules, in process, on a real store (SQLite files shared by two controllers,
 * as two instances) and the real Redis (through a stall proxy for the hang):
 * - pub/sub alone carries a change (polling is set to an hour here), and a message only applies a newer version;
 * - a store that cannot be read keeps the last applied value, logs one line per failed poll, and never throws;
 * - a first load that fails exposes nothing (kill-switch safe) until a poll reads the stored value;
 * - a hung Redis costs GET and PUT one command timeout at most, and the change still reaches the store.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryStore } from '../../service/data-access/memory-store';
import { PostgresMemoryStore } from '../../service/data-access/postgres-store';
import { createSqliteStore } from '../../service/data-access/sqlite-store';
import { StoreUnavailableError } from '../../service/data-access/store-errors';
import { createExposureController, EXPOSURE_CHANNEL_SUFFIX, type ExposureController, type ExposureRedis } from '../../service/fleet/exposure-control';
import { closeRedis, createRedisClient, createSubscriberClient } from '../../service/fleet/redis-connection';
import { createServiceLogger } from '../../service/logging';
import { LogCapture } from '../service/support/harness';
import { startStallProxy, type StallProxy } from '../support/stall-proxy';
import { createTestDatabase } from './support/postgres';
import { TEST_REDIS_URL, connectRedis, deleteKeys, randomPrefix } from './support/redis';
import { waitFor } from './support/service-process';

const COMMAND_TIMEOUT_MS = 200;
const HOUR_MS = 3_600_000;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'exposure-control-'));
let admin: Redis;
let prefix: string;
let dirCount = 0;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  admin = connectRedis();
  prefix = randomPrefix('exposurectl');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await deleteKeys(admin, prefix);
  admin.disconnect();
  fs.rmSync(root, { recursive: true, force: true });
});

function freshDataDir(): string {
  dirCount += 1;
  return path.join(root, `store-${dirCount}`);
}

async function openStore(dataDir: string): Promise<MemoryStore> {
  const store = createSqliteStore({ dataDir });
  await store.migrate();
  cleanups.push(() => store.close());
  return store;
}

function redisFor(url: string): ExposureRedis {
  const commands = createRedisClient(url, { name: 'exposure-test', commandTimeoutMs: COMMAND_TIMEOUT_MS });
  const subscriber = createSubscriberClient(url, { name: 'exposure-test-sub' });
  cleanups.push(async () => {
    await closeRedis(subscriber);
    await closeRedis(commands);
  });
  return { commands, subscriber, keyPrefix: prefix };
}

function controller(
  store: Pick<MemoryStore, 'readExposure' | 'setExposure' | 'listExposureAudit'>,
  options: { instanceId: string; pollIntervalMs: number; redis?: ExposureRedis | null; logs?: LogCapture; ceiling?: number; beforeReportingApplied?: () => Promise<void> },
): ExposureController {
  const log = createServiceLogger({ level: 'info', secrets: [], destination: options.logs ?? new LogCapture() });
  const exposure = createExposureController({
    store,
    flagOn: true,
    ceiling: options.ceiling ?? 100,
    instanceId: options.instanceId,
    deployId: 'deploy-exposure-control',
    pollIntervalMs: options.pollIntervalMs,
    storeDeadlineMs: 5_000,
    sharedStore: true,
    redis: options.redis ?? null,
    log,
    clock: () => new Date(),
    ...(options.beforeReportingApplied ? { beforeReportingApplied: options.beforeReportingApplied } : {}),
  });
  cleanups.push(() => exposure.stop());
  return exposure;
}

/** A store whose exposure reads fail as an outage while `failing.on` holds. */
function flaky(store: MemoryStore): { store: MemoryStore; failing: { on: boolean }; reads: { count: number } } {
  const failing = { on: false };
  const reads = { count: 0 };
  return {
    failing,
    reads,
    store: {
      ...store,
      readExposure: () => {
        reads.count += 1;
        return failing.on
          ? Promise.reject(new StoreUnavailableError('postgres', 'timeout', 'query', 400, undefined))
          : store.readExposure();
      },
    },
  };
}

describe('exposure controller', () => {
  it('pub/sub alone carries a change to the other instance; a message applies only a newer version', async () => {
    const dataDir = freshDataDir();
    const a = controller(await openStore(dataDir), { instanceId: 'ctl-a', pollIntervalMs: HOUR_MS, redis: redisFor(TEST_REDIS_URL) });
    const b = controller(await openStore(dataDir), { instanceId: 'ctl-b', pollIntervalMs: HOUR_MS, redis: redisFor(TEST_REDIS_URL) });
    await Promise.all([a.start(), b.start()]);
    // Subscribing is asynchronous: wait until B's subscription is counted by Redis before publishing.
    const channel = `${prefix}${EXPOSURE_CHANNEL_SUFFIX}`;
    await waitFor('both subscribed', async () => ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1] >= 2);

    const outcome = await a.change({ percent: 25, actor: 'alice' });
    expect(outcome.ok).toBe(true);
    await waitFor('B applies 25% from the message', () => b.percent() === 25, 5_000);
    expect(b.summary()).toEqual({ percent: 25, ceiling: 100, version: 1 });

    // A late or replayed message never undoes a later change; garbage is ignored.
    await admin.publish(channel, JSON.stringify({ version: 1, percent: 90, updatedAt: new Date().toISOString(), updatedBy: 'replay' }));
    await admin.publish(channel, 'not json');
    await admin.publish(channel, JSON.stringify({ version: '7', percent: 90 }));
    expect((await a.change({ percent: 5, actor: 'alice' })).ok).toBe(true);
    await waitFor('B applies version 2', () => b.summary().version === 2, 5_000);
    expect(b.percent()).toBe(5);

    // Both record what they applied, for GET's instance list.
    const state = await waitFor('both listed at version 2', async () => {
      const current = await a.state();
      return current.instances?.length === 2 && current.instances.every((entry) => entry.version === 2) ? current : null;
    });
    expect(state.instances!.map((entry) => [entry.instanceId, entry.percent])).toEqual([
      ['ctl-a', 5],
      ['ctl-b', 5],
    ]);
  });

  it('reports a change applied only after what was counted at the old percentage is flushed; a failed flush still reports', async () => {
    // The fleet metrics' flush stands in: held until released, so the order is visible in GET's instance list.
    let release: () => void = () => undefined;
    let flushes = 0;
    let failNext = false;
    const flush = () => {
      flushes += 1;
      if (failNext) return Promise.reject(new Error('Redis timeout'));
      return new Promise<void>((resolve) => (release = resolve));
    };
    const a = controller(await openStore(freshDataDir()), { instanceId: 'ctl-flush', pollIntervalMs: HOUR_MS, redis: redisFor(TEST_REDIS_URL), beforeReportingApplied: flush });
    await a.start();
    // The instance list is read once the commands client is connected (undefined before).
    await waitFor('Redis connected', async () => (await a.state()).instances !== undefined);

    expect((await a.change({ percent: 5, actor: 'alice' })).ok).toBe(true);
    expect(a.percent()).toBe(5); // in force at once: only the report waits
    await waitFor('the change asks for a flush', () => flushes === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await a.state()).instances?.filter((entry) => entry.version === 1)).toEqual([]);
    release();
    await waitFor('listed at version 1 once flushed', async () => (await a.state()).instances?.[0]?.version === 1);

    failNext = true;
    expect((await a.change({ percent: 25, actor: 'alice' })).ok).toBe(true);
    await waitFor('listed at version 2 although the flush failed', async () => (await a.state()).instances?.[0]?.version === 2);
  });

  it('keeps the last applied value while the store cannot be read, logging one line per failed poll, then catches up', async () => {
    const dataDir = freshDataDir();
    const { store, failing, reads } = flaky(await openStore(dataDir));
    const peer = await openStore(dataDir);
    const logs = new LogCapture();
    const exposure = controller(store, { instanceId: 'ctl-outage', pollIntervalMs: 100, logs });
    await exposure.start();
    expect((await exposure.change({ percent: 40, actor: 'alice' })).ok).toBe(true);

    failing.on = true;
    const readsBefore = reads.count;
    await peer.setExposure({ percent: 10, actor: 'bob', reason: null, ceiling: 100, instanceId: 'peer' }, new Date());
    await waitFor('five failed polls', () => reads.count - readsBefore >= 5, 10_000);
    expect(exposure.percent()).toBe(40);
    const failures = logs.messages().filter((message) => message.includes('store could not be read'));
    // One line per failed poll, whatever the traffic: never more lines than polls.
    expect(failures.length).toBeGreaterThanOrEqual(4);
    expect(failures.length).toBeLessThanOrEqual(reads.count - readsBefore);

    failing.on = false;
    await waitFor('the peer\'s change applied once the store answers', () => exposure.percent() === 10, 10_000);
    expect(exposure.summary().version).toBe(2);
  });

  it('exposes no scope when the first load fails, until a poll reads the stored value', async () => {
    const dataDir = freshDataDir();
    const peer = await openStore(dataDir);
    await peer.setExposure({ percent: 60, actor: 'alice', reason: null, ceiling: 100, instanceId: 'peer' }, new Date());
    const { store, failing } = flaky(await openStore(dataDir));
    failing.on = true;
    const logs = new LogCapture();
    const exposure = controller(store, { instanceId: 'ctl-first-load', pollIntervalMs: 100, logs });
    await exposure.start();
    expect(exposure.percent()).toBe(0);
    expect(logs.messages().some((message) => message.includes('could not be loaded at start'))).toBe(true);
    failing.on = false;
    await waitFor('the stored 60% applied', () => exposure.percent() === 60, 10_000);
  });

  it('instances starting at once under a lower ceiling clamp the stored value once (compare-and-set), on PostgreSQL', async () => {
    const db = await createTestDatabase('exposure_clamp');
    cleanups.push(() => db.drop());
    const stores = Array.from({ length: 4 }, () => new PostgresMemoryStore({ connectionString: db.url, maxConnections: 2 }));
    cleanups.push(async () => {
      await Promise.all(stores.map((store) => store.close()));
    });
    await stores[0]!.migrate();
    await stores[0]!.setExposure({ percent: 50, actor: 'alice', reason: null, ceiling: 100, instanceId: 'old' }, new Date());

    const instances = stores.map((store, i) => controller(store, { instanceId: `clamp-${i}`, pollIntervalMs: HOUR_MS, ceiling: 10 }));
    await Promise.all(instances.map((exposure) => exposure.start()));
    for (const exposure of instances) expect(exposure.summary()).toEqual({ percent: 10, ceiling: 10, version: 2 });
    const audit = await stores[0]!.listExposureAudit(10);
    expect(audit.map((entry) => [entry.version, entry.actor, entry.fromPercent, entry.toPercent])).toEqual([
      [2, 'deploy', 50, 10],
      [1, 'alice', null, 50],
    ]);
  });

  describe('with a Redis that hangs', () => {
    let proxy: StallProxy;
    beforeAll(async () => {
      const upstream = new URL(TEST_REDIS_URL);
      proxy = await startStallProxy({ host: upstream.hostname, port: Number(upstream.port || 6379) });
    });
    afterAll(async () => {
      proxy.resume();
      await proxy.close();
    });

    it('GET and PUT cost at most about one command timeout, and the change is stored and applied', async () => {
      const store = await openStore(freshDataDir());
      const redis = redisFor(proxy.url(TEST_REDIS_URL));
      await waitFor('redis ready', () => redis.commands.status === 'ready', 10_000);
      const exposure = controller(store, { instanceId: 'ctl-hang', pollIntervalMs: HOUR_MS, redis });
      await exposure.start();
      proxy.pause();

      // Loose bound on a loaded machine: one 200 ms command timeout, not seconds of waiting.
      const putStarted = performance.now();
      const outcome = await exposure.change({ percent: 0, actor: 'canary', reason: 'kill switch' });
      const putMs = performance.now() - putStarted;
      expect(outcome.ok).toBe(true);
      expect(exposure.percent()).toBe(0);
      expect((await store.readExposure())?.percent).toBe(0);
      expect(putMs).toBeLessThan(COMMAND_TIMEOUT_MS * 3 + 1_000);

      const getStarted = performance.now();
      const state = await exposure.state();
      expect(performance.now() - getStarted).toBeLessThan(COMMAND_TIMEOUT_MS + 1_000);
      expect(state).toMatchObject({ percent: 0, version: 1 });
      expect(state.instances).toBeUndefined();
    });
  });
});
