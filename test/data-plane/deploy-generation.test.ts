/** Deploy generations on the real Redis: which deploy a process belongs to when Render does not say. */
import type Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chooseGeneration,
  deployFingerprint,
  DeployGenerationRegistry,
  liveMemberCount,
  type FingerprintInput,
} from '../../service/fleet/deploy-generation';
import { connectRedis, deleteKeys, randomPrefix } from './support/redis';

const COMMIT = '9f3c2ab1d4e5f60718293a4b5c6d7e8f90a1b2c3';
const base: FingerprintInput = {
  commit: COMMIT,
  enableContext7Memory: true,
  context7BaseUrl: 'https://context7.com/api',
  context7TimeoutMs: 2_000,
  context7HttpClient: 'undici',
  hasContext7Key: true,
  hasAdminToken: true,
  memoryCacheTtlMs: 300_000,
  memoryCacheMaxEntries: 10_000,
  outboxDrainIntervalMs: 5_000,
};
const flagOn = deployFingerprint(base);
const flagOff = deployFingerprint({ ...base, enableContext7Memory: false });

describe('the pure rule', () => {
  const generation = { id: 'g1', fingerprint: flagOn, commit: COMMIT, startedAt: '2026-11-24T10:00:00.000Z' };

  it('fingerprints differ by flag, commit or nonce, and not by key order', () => {
    expect(flagOn).not.toBe(flagOff);
    expect(deployFingerprint({ ...base, commit: 'other' })).not.toBe(flagOn);
    expect(deployFingerprint({ ...base, deployNonce: 'deploy-2' })).not.toBe(flagOn);
    expect(deployFingerprint({ ...base, context7HttpClient: 'axios' })).not.toBe(flagOn);
    const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as FingerprintInput;
    expect(deployFingerprint(reordered)).toBe(flagOn);
  });

  it('joins only the latest generation, only with the same fingerprint, only while a member is alive', () => {
    expect(chooseGeneration(generation, 1, flagOn)).toEqual({ kind: 'join', generation });
    expect(chooseGeneration(generation, 0, flagOn)).toEqual({ kind: 'create', successorOf: 'g1' });
    expect(chooseGeneration(generation, 2, flagOff)).toEqual({ kind: 'create', successorOf: 'g1' });
    expect(chooseGeneration(null, 0, flagOn)).toEqual({ kind: 'create', successorOf: null });
  });

  it('counts members by heartbeat age', () => {
    expect(liveMemberCount({ a: '1000', b: '9000', c: '10000' }, 10_000, 1_000)).toBe(2);
  });
});

describe('DeployGenerationRegistry on Redis', () => {
  let redis: Redis;
  const prefixes: string[] = [];
  const registry = (liveWithinMs = 5_000) => {
    const keyPrefix = randomPrefix('deploygen');
    prefixes.push(keyPrefix);
    return new DeployGenerationRegistry({ redis, keyPrefix, liveWithinMs });
  };
  const at = (seconds: number) => new Date(Date.UTC(2026, 10, 24, 10, 0, seconds));

  beforeAll(async () => {
    redis = await connectRedis();
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(redis, prefix);
    redis?.disconnect();
  });

  it('rollback and retry of the same commit are three generations; instances of one deploy share one', async () => {
    const fleet = registry();
    const rollout = await fleet.resolve({ instanceId: 'a1', fingerprint: flagOn, commit: COMMIT, now: at(0) });
    const peer = await fleet.resolve({ instanceId: 'a2', fingerprint: flagOn, commit: COMMIT, now: at(1) });
    expect(peer.id).toBe(rollout.id);

    // The rollback: same commit, flag off, started while the failing deploy is still draining.
    const rollback = await fleet.resolve({ instanceId: 'b1', fingerprint: flagOff, commit: COMMIT, now: at(2) });
    expect(rollback.id).not.toBe(rollout.id);
    expect((await fleet.resolve({ instanceId: 'b2', fingerprint: flagOff, commit: COMMIT, now: at(3) })).id).toBe(rollback.id);

    // The retry after the incident: flag on again, the same fingerprint as the failed rollout, a new generation.
    const retry = await fleet.resolve({ instanceId: 'c1', fingerprint: flagOn, commit: COMMIT, now: at(60) });
    expect(retry.id).not.toBe(rollout.id);
    expect(retry.id).not.toBe(rollback.id);
    expect(retry.commit).toBe(COMMIT);
    expect(retry.startedAt).toBe(at(60).toISOString());
  });

  it('a crash-restarted instance rejoins its deploy while a peer is alive; after every member is gone it starts anew', async () => {
    const fleet = registry(5_000);
    const first = await fleet.resolve({ instanceId: 'a1', fingerprint: flagOn, commit: COMMIT, now: at(0) });
    await fleet.resolve({ instanceId: 'a2', fingerprint: flagOn, commit: COMMIT, now: at(0) });
    await fleet.heartbeat(first.id, 'a2', at(8));
    // a1 crashed at second 1 and restarts at second 10: a2's heartbeat (second 8) is 2 s old.
    expect((await fleet.resolve({ instanceId: 'a1', fingerprint: flagOn, commit: COMMIT, now: at(10) })).id).toBe(first.id);
    // Nothing heard from anyone for a minute: the next process is a new deploy (e.g. a suspended service resumed).
    expect((await fleet.resolve({ instanceId: 'a3', fingerprint: flagOn, commit: COMMIT, now: at(80) })).id).not.toBe(first.id);
  });

  it('processes of a new deploy starting at once all land in one generation', async () => {
    const fleet = registry();
    const old = await fleet.resolve({ instanceId: 'old-1', fingerprint: flagOff, commit: COMMIT, now: at(0) });
    const started = await Promise.all(
      Array.from({ length: 6 }, (_, i) => fleet.resolve({ instanceId: `new-${i}`, fingerprint: flagOn, commit: COMMIT, now: at(5) })),
    );
    const ids = new Set(started.map((generation) => generation.id));
    expect(ids.size).toBe(1);
    expect(ids.has(old.id)).toBe(false);
    // And the next one to start (a seventh instance, scale-out) joins them, not the old deploy.
    expect((await fleet.resolve({ instanceId: 'new-7', fingerprint: flagOn, commit: COMMIT, now: at(6) })).id).toBe(started[0]!.id);
  });
});
