/**
 * Runtime control of progressive exposure: the percentage this instance applies, how a change reaches every
 * instance, and the kill switch (a change to 0). The rules (which value wins, what a change may do, who is exposed)
 * are pure and live in domain/exposure.ts; this module holds the state and does the I/O.
 *
 * - Start: the stored runtime value is loaded (none stored: the stack's ceiling applies). One above the ceiling
 *   (the stack lowered it) is stored clamped, with an audit entry by `deploy`, so a later higher ceiling cannot
 *   silently re-expose scopes.
 * - Propagation: the instance that takes a change applies it at once and publishes it on Redis
 *   (`<REDIS_KEY_PREFIX>exposure`) when Redis is configured; every instance also re-reads the store every
 *   EXPOSURE_POLL_INTERVAL_MS, the backstop for a lost message and the only path without Redis. A value is applied
 *   only if its version is newer than the one applied, so a late message never undoes a later change.
 * - With Redis, each instance records what it applied in a hash per deploy (`<prefix>exposure:instances:<deployId>`,
 *   refreshed every poll, expiring when nobody refreshes it), so GET /api/admin/exposure lists the live instances.
 * - Never throws into request handling: percent() is a field read. If the store cannot be read the last applied
 *   value stays in force and each failed poll logs one line.
 */
import type Redis from 'ioredis';
import type { ExposureAuditEntry, ExposureState, ExposureSummary } from '../contracts/http';
import type { ExposureAuditRecord, ExposureRecord, MemoryStore } from '../data-access/memory-store';
import { checkExposureChange, effectiveExposurePercent } from '../domain/exposure';
import { describeError, type ServiceLogger } from '../logging';

/** What the memory domain and the per-cohort metrics need: the percentage in force, read without I/O. */
export interface ExposureReader {
  percent(): number;
}

export type ExposureStore = Pick<MemoryStore, 'readExposure' | 'setExposure' | 'listExposureAudit'>;

export interface ExposureRedis {
  /** The command connection (every command has the connection's timeout). */
  commands: Redis;
  /** A connection in subscribe mode; other listeners may share it (messages are filtered by channel). */
  subscriber: Redis;
  keyPrefix: string;
}

export interface ExposureControllerDeps {
  store: ExposureStore;
  /** ENABLE_CONTEXT7_MEMORY: off means 0 whatever is stored. */
  flagOn: boolean;
  /** CONTEXT7_EXPOSURE_PERCENT */
  ceiling: number;
  instanceId: string;
  deployId: string;
  pollIntervalMs: number;
  /** The longest one store call may take (its own deadlines): part of the stated propagation bound. */
  storeDeadlineMs: number;
  /** Whether other instances may share the store (PostgreSQL): 'single-instance' is reported otherwise. */
  sharedStore: boolean;
  redis: ExposureRedis | null;
  log: ServiceLogger;
  clock: () => Date;
  /**
   * Runs after a new value is applied and before this instance reports it applied (the list the stepped canary
   * waits on): the fleet metrics' flush, so what was counted at the old percentage (a scope's first sighting among
   * them) is in Redis before the canary opens the step's window. Bounded by its own deadline; a failure still reports.
   */
  beforeReportingApplied?: () => Promise<void>;
}

export type ExposureChangeOutcome =
  | { ok: true; state: ExposureState; audit: ExposureAuditRecord }
  | { ok: false; reason: string };

export interface ExposureController extends ExposureReader {
  /** Loads (and clamps) the stored value, subscribes and starts polling. Never rejects. */
  start(): Promise<void>;
  stop(): Promise<void>;
  summary(): ExposureSummary;
  /** This instance's applied state, plus the live instances with Redis (bounded by a Redis command timeout). */
  state(): Promise<ExposureState>;
  /**
   * A runtime change: refused above the ceiling (nothing stored); otherwise stored with its audit entry, applied
   * here at once and published. A store failure rejects (StoreUnavailableError) with nothing changed.
   */
  change(request: { percent: number; actor: string; reason?: string }): Promise<ExposureChangeOutcome>;
  audit(limit: number): Promise<ExposureAuditEntry[]>;
}

/** Above this many tries a start gives up clamping (others keep changing the value) and lets polling carry on. */
const CLAMP_ATTEMPTS = 5;

export const EXPOSURE_CHANNEL_SUFFIX = 'exposure';

interface Applied {
  /** null: nothing stored yet (the ceiling applies) */
  record: ExposureRecord | null;
  version: number;
  appliedAt: Date;
}

interface PublishedChange {
  version: number;
  percent: number;
  updatedAt: string;
  updatedBy: string;
}

function parseMessage(raw: string): PublishedChange | null {
  try {
    const value = JSON.parse(raw) as Partial<PublishedChange>;
    if (
      typeof value.version === 'number' &&
      Number.isInteger(value.version) &&
      typeof value.percent === 'number' &&
      typeof value.updatedAt === 'string' &&
      typeof value.updatedBy === 'string'
    ) {
      return value as PublishedChange;
    }
  } catch {
    // not ours: ignored below
  }
  return null;
}

export function createExposureController(deps: ExposureControllerDeps): ExposureController {
  const { store, log, clock } = deps;
  const channel = deps.redis ? `${deps.redis.keyPrefix}${EXPOSURE_CHANNEL_SUFFIX}` : '';
  const instancesKey = deps.redis ? `${deps.redis.keyPrefix}exposure:instances:${deps.deployId}` : '';
  // An instance missing this many refreshes is gone from the list (and the hash expires after it).
  const liveWithinMs = Math.max(5_000, deps.pollIntervalMs * 3);
  // Until the first load the stack's value applies, as on a fresh deploy; a failed first load applies 0 (below).
  let applied: Applied = { record: null, version: 0, appliedAt: clock() };
  let loadFailed = false;
  // Applied values whose beforeReportingApplied has not finished: while any is, the instance list is not written.
  let reportsHeld = 0;
  let timer: NodeJS.Timeout | null = null;
  let polling: Promise<void> | null = null;
  let stopped = false;
  let onMessage: ((channel: string, raw: string) => void) | null = null;

  const percent = () => (loadFailed ? 0 : effectiveExposurePercent({ flagOn: deps.flagOn, ceiling: deps.ceiling, runtime: applied.record?.percent ?? null }));

  /** Applies a stored value if it is newer than the one applied; returns whether it did. */
  function apply(record: ExposureRecord | null, version: number, via: string): boolean {
    const first = loadFailed;
    if (!first && version <= applied.version) return false;
    const before = percent();
    loadFailed = false;
    applied = { record, version, appliedAt: clock() };
    const after = percent();
    if (before !== after || version > 0) {
      log.memory.info('Exposure applied', { percent: after, previousPercent: before, version, via, updatedBy: record?.updatedBy ?? null });
    }
    if (!deps.beforeReportingApplied) {
      void recordApplied();
      return true;
    }
    reportsHeld += 1;
    void deps
      .beforeReportingApplied()
      .catch(() => undefined)
      .then(() => {
        reportsHeld -= 1;
        return recordApplied(); // the last one released writes what is in force then
      });
    return true;
  }

  /** With Redis: what this instance applies, for GET's instance list. Best effort, bounded by the command timeout. */
  async function recordApplied(): Promise<void> {
    if (!deps.redis || stopped || reportsHeld > 0) return;
    const entry = JSON.stringify({ version: applied.version, percent: percent(), appliedAt: applied.appliedAt.toISOString(), seenAt: clock().toISOString() });
    try {
      await deps.redis.commands.multi().hset(instancesKey, deps.instanceId, entry).pexpire(instancesKey, liveWithinMs).exec();
    } catch {
      // Redis down: the list is incomplete until it returns; the exposure itself does not depend on it.
    }
  }

  async function readStored(): Promise<{ record: ExposureRecord | null; version: number }> {
    const record = await store.readExposure();
    return { record, version: record?.version ?? 0 };
  }

  async function poll(): Promise<void> {
    try {
      const stored = await readStored();
      apply(stored.record, stored.version, 'poll');
      await recordApplied();
    } catch (error) {
      // One line per failed poll (one per interval), never per request: the last applied value stays in force.
      log.memoryError.warn('Exposure: the store could not be read; keeping the last applied percentage', {
        percent: percent(),
        version: applied.version,
        ...describeError(error),
      });
    }
  }

  /** A stored value above this deploy's ceiling is stored clamped, once, by compare-and-set on its version. */
  async function clampToCeiling(): Promise<void> {
    for (let attempt = 0; attempt < CLAMP_ATTEMPTS; attempt += 1) {
      const stored = await readStored();
      if (!stored.record || stored.record.percent <= deps.ceiling) {
        apply(stored.record, stored.version, 'start');
        return;
      }
      const result = await store.setExposure(
        {
          percent: deps.ceiling,
          actor: 'deploy',
          reason: `clamped from ${stored.record.percent} to the stack's ceiling ${deps.ceiling} (CONTEXT7_EXPOSURE_PERCENT) at start`,
          ceiling: deps.ceiling,
          instanceId: deps.instanceId,
          ifVersion: stored.version,
        },
        clock(),
      );
      if (result.applied) {
        log.memory.warn('Exposure: the stored percentage was above the stack ceiling; stored clamped', {
          from: stored.record.percent,
          to: deps.ceiling,
          version: result.record.version,
        });
        apply(result.record, result.record.version, 'start');
        await publish(result.record);
        return;
      }
    }
    // Others keep changing it: min(runtime, ceiling) still holds here; the next start clamps it.
    const stored = await readStored();
    apply(stored.record, stored.version, 'start');
  }

  async function publish(record: ExposureRecord): Promise<void> {
    if (!deps.redis) return;
    const message: PublishedChange = { version: record.version, percent: record.percent, updatedAt: record.updatedAt, updatedBy: record.updatedBy };
    try {
      await deps.redis.commands.publish(channel, JSON.stringify(message));
    } catch (error) {
      // Polling still carries the change within its bound.
      log.memoryError.warn('Exposure: the change could not be published on Redis; other instances get it by polling', describeError(error));
    }
  }

  function propagation(): ExposureState['propagation'] {
    const via = deps.redis ? 'redis' : deps.sharedStore ? 'polling' : 'single-instance';
    return { via, boundMs: deps.pollIntervalMs + deps.storeDeadlineMs };
  }

  async function liveInstances(): Promise<ExposureState['instances']> {
    if (!deps.redis) return undefined;
    let entries: Record<string, string>;
    try {
      entries = await deps.redis.commands.hgetall(instancesKey);
    } catch {
      return undefined;
    }
    const nowMs = clock().getTime();
    const live: NonNullable<ExposureState['instances']> = [];
    const gone: string[] = [];
    for (const [instanceId, raw] of Object.entries(entries)) {
      try {
        const entry = JSON.parse(raw) as { version: number; percent: number; appliedAt: string; seenAt: string };
        if (nowMs - new Date(entry.seenAt).getTime() > liveWithinMs) {
          gone.push(instanceId);
          continue;
        }
        live.push({ instanceId, version: entry.version, percent: entry.percent, appliedAt: entry.appliedAt });
      } catch {
        gone.push(instanceId);
      }
    }
    if (gone.length > 0) deps.redis.commands.hdel(instancesKey, ...gone).catch(() => undefined);
    return live.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  function localState(): Omit<ExposureState, 'instances'> {
    return {
      flagOn: deps.flagOn,
      percent: percent(),
      ceiling: deps.ceiling,
      runtimePercent: applied.record?.percent ?? null,
      version: applied.version,
      updatedAt: applied.record?.updatedAt ?? null,
      updatedBy: applied.record?.updatedBy ?? null,
      propagation: propagation(),
    };
  }

  async function state(): Promise<ExposureState> {
    const instances = await liveInstances();
    return { ...localState(), ...(instances ? { instances } : {}) };
  }

  return {
    percent,

    async start() {
      try {
        await clampToCeiling();
      } catch (error) {
        // Kill-switch safe: an unknown runtime value could be 0, so nothing is exposed until a poll reads it.
        loadFailed = true;
        log.memoryError.error('Exposure: the stored percentage could not be loaded at start; exposing no scope until it can', describeError(error));
      }
      if (deps.redis) {
        const { subscriber } = deps.redis;
        onMessage = (from, raw) => {
          if (from !== channel) return;
          const change = parseMessage(raw);
          if (!change) return;
          apply({ percent: change.percent, version: change.version, updatedAt: change.updatedAt, updatedBy: change.updatedBy }, change.version, 'redis');
        };
        subscriber.on('message', onMessage);
        // Queued while the subscriber is disconnected, and re-sent by ioredis on reconnect; polling covers the gap.
        subscriber.subscribe(channel).catch((error: unknown) => log.memoryError.warn('Exposure: Redis subscription failed; polling only', describeError(error)));
      }
      timer = setInterval(() => {
        if (polling) return; // the previous poll is still waiting on the store (within its deadline)
        polling = poll().finally(() => (polling = null));
      }, deps.pollIntervalMs);
      timer.unref();
      await recordApplied();
    },

    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await polling;
      if (deps.redis && onMessage) {
        deps.redis.subscriber.off('message', onMessage);
        if (deps.redis.subscriber.status === 'ready') {
          await Promise.race([deps.redis.subscriber.unsubscribe(channel).catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 500).unref())]);
        }
        await deps.redis.commands.hdel(instancesKey, deps.instanceId).catch(() => undefined);
      }
    },

    summary() {
      return { percent: percent(), ceiling: deps.ceiling, version: applied.version };
    },

    state,

    async change(request) {
      const check = checkExposureChange(request.percent, deps.ceiling);
      if (!check.ok) return check;
      const result = await store.setExposure(
        { percent: request.percent, actor: request.actor, reason: request.reason ?? null, ceiling: deps.ceiling, instanceId: deps.instanceId },
        clock(),
      );
      if (!result.applied) throw new Error('exposure change without a version condition was not applied');
      apply(result.record, result.record.version, 'admin');
      await publish(result.record);
      log.memory.warn('Exposure changed', {
        actor: request.actor,
        from: result.audit.fromPercent,
        to: result.audit.toPercent,
        version: result.audit.version,
        percentInForce: percent(),
      });
      return { ok: true, state: await state(), audit: result.audit };
    },

    async audit(limit) {
      return store.listExposureAudit(limit);
    },
  };
}
