/**
 * Which deploy a process belongs to. Render gives a process its commit (RENDER_GIT_COMMIT) and its instance id,
 * but no deploy id, and a deploy need not change the commit: a rollback redeploys the same commit with the flag
 * off, and the retry after the incident redeploys it again with the flag on. Fleet figures keyed by commit would
 * mix all three. So the fleet works out a **deploy generation**: the set of processes started together with the
 * same commit and configuration.
 *
 * Design (kept in Redis, beside the fleet metrics):
 * - A process's fingerprint is its commit plus every setting that changes behaviour (the flag, the Context7 URL
 *   and timeout, which credentials are present, cache and drain tuning, DEPLOY_NONCE if set), never a secret.
 * - `latest` names the newest generation. A starting process JOINS it when the fingerprint matches and at least
 *   one member is still alive (heartbeats come with every metrics flush). That is a crash-restart or a scale-out
 *   within a deploy: the peers' counts are kept, and the restarted process is a new counter epoch the canary's
 *   reset handling already covers.
 * - Otherwise it CREATES the successor of `latest`: a flag flip, a new commit, or the first process after every
 *   member of the old deploy has gone. Two new processes racing to create (a rolling deploy starts several at
 *   once) claim the same successor slot with SET NX, so they end up in one generation.
 * - During a rolling deploy the old processes keep their generation and the new ones have theirs: each side's
 *   figures cover its own processes only, however long they overlap.
 * Limits, stated: a redeploy with the same commit AND the same configuration while old members are still alive
 * joins their generation (nothing tells the two apart from inside); set DEPLOY_NONCE per deploy to separate them,
 * and the canary, which knows the analysed deploy's start time from the Render API, counts only processes started
 * after it (`GET /api/metrics/memory?startedAfter=`). An old-deploy process that crash-restarts after the new
 * deploy began creates a generation of its own rather than joining the new one.
 */
import { createHash, randomBytes } from 'node:crypto';
import type Redis from 'ioredis';

export interface DeployGeneration {
  /** e.g. "9f3c2ab-mf1k2x3a-4c1d": commit prefix, creation time (base 36), random suffix */
  id: string;
  fingerprint: string;
  commit: string;
  /** ISO-8601: when the generation's first process created it */
  startedAt: string;
}

/** The settings that make two processes of the same commit behave differently. Never pass secrets' values. */
export interface FingerprintInput {
  commit: string;
  enableContext7Memory: boolean;
  context7BaseUrl: string;
  context7TimeoutMs: number;
  /** CONTEXT7_HTTP_CLIENT: the library changes a miss's cost (issue 29's seventh round). */
  context7HttpClient: string;
  hasContext7Key: boolean;
  hasAdminToken: boolean;
  memoryCacheTtlMs: number;
  memoryCacheMaxEntries: number;
  outboxDrainIntervalMs: number;
  /** Optional per-deploy value a deployer may set to force a new generation. */
  deployNonce?: string;
}

export function deployFingerprint(input: FingerprintInput): string {
  const ordered = Object.fromEntries(Object.entries(input).sort(([a], [b]) => (a < b ? -1 : 1)));
  return createHash('sha256').update(JSON.stringify(ordered)).digest('hex').slice(0, 16);
}

export type GenerationChoice = { kind: 'join'; generation: DeployGeneration } | { kind: 'create'; successorOf: string | null };

/** The pure rule: join the newest generation if it is this configuration's and still has a live member. */
export function chooseGeneration(latest: DeployGeneration | null, liveMembers: number, fingerprint: string): GenerationChoice {
  if (latest && latest.fingerprint === fingerprint && liveMembers > 0) return { kind: 'join', generation: latest };
  return { kind: 'create', successorOf: latest?.id ?? null };
}

/** Members whose last heartbeat is recent enough to count as alive. */
export function liveMemberCount(heartbeats: Record<string, string>, nowMs: number, liveWithinMs: number): number {
  return Object.values(heartbeats).filter((value) => nowMs - Number(value) <= liveWithinMs).length;
}

export function newGenerationId(commit: string, now: Date): string {
  const shortCommit = commit.replace(/[^A-Za-z0-9]/g, '').slice(0, 7) || 'local';
  return `${shortCommit}-${now.getTime().toString(36)}-${randomBytes(2).toString('hex')}`;
}

function parseGeneration(raw: string | null): DeployGeneration | null {
  if (!raw) return null;
  try {
    const value = JSON.parse(raw) as Partial<DeployGeneration>;
    if (typeof value.id === 'string' && typeof value.fingerprint === 'string' && typeof value.commit === 'string' && typeof value.startedAt === 'string') {
      return value as DeployGeneration;
    }
  } catch {
    // a corrupt record is treated as absent: the next process creates a fresh generation
  }
  return null;
}

/** Sets `latest` only if it still holds what the caller read, so a slower racer cannot move it backwards. */
const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1]) or ''
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

export interface DeployGenerationRegistryOptions {
  redis: Redis;
  keyPrefix: string;
  /** A member is alive while its last heartbeat is at most this old (a few metrics flush intervals). */
  liveWithinMs: number;
  retentionMs?: number;
}

export class DeployGenerationRegistry {
  private readonly key: (name: string) => string;
  private readonly retentionMs: number;

  constructor(private readonly options: DeployGenerationRegistryOptions) {
    this.key = (name) => `${options.keyPrefix}deploys:${name}`;
    this.retentionMs = options.retentionMs ?? 7 * 86_400_000;
  }

  /** Joins or creates this process's generation and records its first heartbeat. */
  async resolve(me: { instanceId: string; fingerprint: string; commit: string; now: Date }): Promise<DeployGeneration> {
    const { redis } = this.options;
    const latestRaw = await redis.get(this.key('latest'));
    const latest = parseGeneration(latestRaw);
    const heartbeats = latest ? await redis.hgetall(this.key(`members:${latest.id}`)) : {};
    const choice = chooseGeneration(latest, liveMemberCount(heartbeats, me.now.getTime(), this.options.liveWithinMs), me.fingerprint);
    let generation: DeployGeneration;
    if (choice.kind === 'join') {
      generation = choice.generation;
    } else {
      const candidate: DeployGeneration = {
        id: newGenerationId(me.commit, me.now),
        fingerprint: me.fingerprint,
        commit: me.commit,
        startedAt: me.now.toISOString(),
      };
      const slot = this.key(`successor:${choice.successorOf ?? 'none'}:${me.fingerprint}`);
      const claimed = await redis.set(slot, JSON.stringify(candidate), 'PX', this.retentionMs, 'NX');
      generation = claimed === 'OK' ? candidate : (parseGeneration(await redis.get(slot)) ?? candidate);
      await redis.eval(COMPARE_AND_SET, 1, this.key('latest'), latestRaw ?? '', JSON.stringify(generation), String(this.retentionMs));
    }
    await this.heartbeat(generation.id, me.instanceId, me.now);
    return generation;
  }

  async heartbeat(generationId: string, instanceId: string, now: Date): Promise<void> {
    const members = this.key(`members:${generationId}`);
    await this.options.redis.multi().hset(members, instanceId, String(now.getTime())).pexpire(members, this.retentionMs).exec();
  }

  /** The commands a metrics flush adds to its own MULTI, so the heartbeat costs no extra round trip. */
  heartbeatCommands(generationId: string, instanceId: string, now: Date): { key: string; field: string; value: string; ttlMs: number } {
    return { key: this.key(`members:${generationId}`), field: instanceId, value: String(now.getTime()), ttlMs: this.retentionMs };
  }
}
