/**
 * The MemoryStore contract, run against every backend (SQLite and PostgreSQL) so the two cannot drift.
 * A backend's test file calls `describeStoreContract(label, target)`; nothing here knows which backend it is.
 * Times are injected (`now`), never read from the clock, and boundaries are avoided by clear margins.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExposureChange, JobState, MemoryStore, NewPattern, ScopeKey } from '../../service/data-access/memory-store';
import { matchesSearchQuery, parseSearchQuery, searchTokens } from '../../service/data-access/search-text';

export interface StoreContractTarget {
  /** A fresh, empty, migrated store. */
  open(): Promise<MemoryStore>;
  /** Another store over the same data as the last `open()`: a second instance of the fleet. */
  openPeer(): Promise<MemoryStore>;
}

const T0 = new Date('2026-01-05T10:00:00.000Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);

export function scopeKey(locationId: string, agentId: string, prompt: string): ScopeKey {
  const promptHash = createHash('sha256').update(prompt).digest('hex').slice(0, 16);
  return { scopeId: `scope:${locationId}:${agentId}:${promptHash}`, locationId, agentId, promptHash };
}

export function newPattern(scope: ScopeKey, content: string, extra: Partial<NewPattern> = {}): NewPattern {
  const contentHash = createHash('sha256').update(content).digest('hex');
  const id = createHash('sha256').update(`${scope.scopeId}\n${contentHash}`).digest('hex').slice(0, 32);
  return { id, content, contentHash, metadata: null, expiresAt: null, ...extra };
}

function job(overrides: Partial<JobState> = {}): JobState {
  return {
    name: 'backfill',
    status: 'running',
    startedAt: T0.toISOString(),
    finishedAt: null,
    cursor: null,
    total: 10,
    synced: 0,
    errors: 0,
    owner: 'instance-a',
    heartbeatAt: T0.toISOString(),
    ...overrides,
  };
}

const A = scopeKey('loc1', 'agent-1', 'You are a helpful assistant');
const B = scopeKey('loc1', 'agent-2', 'You are a helpful assistant');
const C = scopeKey('loc10', 'agent-1', 'You are a helpful assistant');

export function describeStoreContract(label: string, target: StoreContractTarget): void {
  describe(`MemoryStore contract: ${label}`, () => {
    const opened: MemoryStore[] = [];
    const open = async () => {
      const store = await target.open();
      opened.push(store);
      return store;
    };
    const openPeer = async () => {
      const store = await target.openPeer();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    describe('migrations', () => {
      it('can run again, and concurrently from two instances, without error or duplicate schema', async () => {
        const store = await open();
        const peer = await openPeer();
        await Promise.all([store.migrate(), peer.migrate(), store.migrate()]);
        await store.savePatterns(A, [newPattern(A, 'after re-migration')], T0);
        expect(await peer.countPatterns(T0)).toBe(1);
      });
    });

    describe('savePatterns', () => {
      it('stores patterns with their fields and enqueues each new one', async () => {
        const store = await open();
        const p1 = newPattern(A, 'Greet by first name', { metadata: { source: 'call', turns: 3, nested: { ok: true } } });
        const p2 = newPattern(A, 'Offer the Tuesday slot', { expiresAt: at(86_400_000).toISOString() });
        const result = await store.savePatterns(A, [p1, p2], T0);
        expect([...result.insertedIds].sort()).toEqual([p1.id, p2.id].sort()); // in no particular order
        expect(result.saved).toEqual([
          { ...p1, scopeId: A.scopeId, createdAt: T0.toISOString(), syncedAt: null },
          { ...p2, scopeId: A.scopeId, createdAt: T0.toISOString(), syncedAt: null },
        ]);
        expect(await store.outboxDepth()).toBe(2);
        expect(await store.countPatterns(T0)).toBe(2);
      });

      it('never duplicates a pattern: same scope and content returns the original, not re-enqueued', async () => {
        const store = await open();
        const first = await store.savePatterns(A, [newPattern(A, 'Confirm the address')], T0);
        const again = await store.savePatterns(A, [newPattern(A, 'Confirm the address'), newPattern(A, 'New one')], at(5_000));
        expect(again.insertedIds).toEqual([again.saved[1]!.id]);
        expect(again.saved[0]).toEqual(first.saved[0]);
        expect(again.saved[1]?.content).toBe('New one');
        expect(await store.countPatterns(at(5_000))).toBe(2);
        expect(await store.outboxDepth()).toBe(2);
      });

      it('deduplicates within one batch', async () => {
        const store = await open();
        const p = newPattern(A, 'Same twice');
        const result = await store.savePatterns(A, [p, p], T0);
        expect(result.insertedIds).toEqual([p.id]);
        expect(result.saved.map((s) => s.id)).toEqual([p.id, p.id]);
        expect(await store.outboxDepth()).toBe(1);
      });

      it('keeps the same content in two scopes as two patterns', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'Shared wording')], T0);
        const other = await store.savePatterns(B, [newPattern(B, 'Shared wording')], T0);
        expect(other.insertedIds).toHaveLength(1);
        expect(await store.countPatterns(T0)).toBe(2);
      });

      it('saves concurrently from two instances without duplicates', async () => {
        const store = await open();
        const peer = await openPeer();
        const batch = Array.from({ length: 20 }, (_, i) => newPattern(A, `concurrent ${i}`));
        const results = await Promise.all([store.savePatterns(A, batch, T0), peer.savePatterns(A, [...batch].reverse(), T0)]);
        // Every pattern inserted by exactly one of the two instances.
        expect([...results[0].insertedIds, ...results[1].insertedIds].sort()).toEqual(batch.map((p) => p.id).sort());
        expect(await store.countPatterns(T0)).toBe(20);
        expect(await store.outboxDepth()).toBe(20);
      });
    });

    describe('searchPatterns', () => {
      it('returns only the exact scope, newest first, up to the limit', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'a-old')], T0);
        await store.savePatterns(A, [newPattern(A, 'a-mid')], at(1_000));
        await store.savePatterns(A, [newPattern(A, 'a-new')], at(2_000));
        await store.savePatterns(B, [newPattern(B, 'b-only')], at(3_000));
        await store.savePatterns(C, [newPattern(C, 'c-only')], at(3_000));
        const now = at(10_000);
        expect((await store.searchPatterns(A.scopeId, undefined, 10, now)).map((p) => p.content)).toEqual([
          'a-new',
          'a-mid',
          'a-old',
        ]);
        expect((await store.searchPatterns(A.scopeId, undefined, 2, now)).map((p) => p.content)).toEqual(['a-new', 'a-mid']);
        expect((await store.searchPatterns(B.scopeId, undefined, 10, now)).map((p) => p.content)).toEqual(['b-only']);
        expect(await store.searchPatterns('scope:loc1:agent-1:0000000000000000', undefined, 10, now)).toEqual([]);
      });

      it('matches whole tokens, the last one also as a prefix: not a substring anywhere', async () => {
        const store = await open();
        const contents = ['Offer a refund today', 'Refunds are processed weekly', 'fundamental rules', 'crowdfunding drive'];
        await store.savePatterns(A, contents.map((c) => newPattern(A, c)), T0);
        const find = async (query: string) =>
          (await store.searchPatterns(A.scopeId, query, 50, T0)).map((p) => p.content).sort();
        expect(await find('refu')).toEqual(['Offer a refund today', 'Refunds are processed weekly']);
        expect(await find('REFUND')).toEqual(['Offer a refund today', 'Refunds are processed weekly']);
        expect(await find('fund')).toEqual(['fundamental rules']);
        expect(await find('funding')).toEqual([]);
        expect(await find('offer refund')).toEqual(['Offer a refund today']);
        expect(await find('refunds offer')).toEqual([]); // only the last token is a prefix: "refunds" is whole
        expect(await find('refund, today!')).toEqual(['Offer a refund today']);
        expect(await find('today refund')).toEqual(['Offer a refund today']);
      });

      it('never reads user text as query syntax: quotes, operators, NEAR, *, : and parentheses are literal', async () => {
        const store = await open();
        const contents = ['Offer 10% OFF today', 'wait NEAR the door', 'say "hello" AND wave', 'a.b*c', 'key:value', "it's quoted"];
        await store.savePatterns(A, contents.map((c) => newPattern(A, c)), T0);
        const find = async (query: string) =>
          (await store.searchPatterns(A.scopeId, query, 50, T0)).map((p) => p.content).sort();
        expect(await find('"hello"')).toEqual(['say "hello" AND wave']);
        expect(await find('NEAR(door wait)')).toEqual(['wait NEAR the door']);
        expect(await find('hello AND')).toEqual(['say "hello" AND wave']);
        expect(await find('hello OR door')).toEqual([]);
        expect(await find('NOT hello')).toEqual([]);
        expect(await find('b*c')).toEqual(['a.b*c']);
        expect(await find('key:value')).toEqual(['key:value']);
        expect(await find('key:*')).toEqual(['key:value']);
        expect(await find('!door & wait | (x)')).toEqual([]);
        expect(await find("it's")).toEqual(["it's quoted"]);
        expect(await find("' OR '1'='1")).toEqual([]);
        // No letters or digits: nothing to match, so nothing matches.
        for (const query of ['%', '*', '"', '()', '&|!', ':*', '   ', '\\']) expect(await find(query)).toEqual([]);
      });

      it('ignores case and accents beyond ASCII the same way on every backend (accents, Greek, astral characters)', async () => {
        const store = await open();
        await store.savePatterns(A, ['Ärger ÉCOLE', 'ΣΟΦΙΑ', 'plain', '🚀 Rocket', 'Crème brûlée'].map((c) => newPattern(A, c)), T0);
        const find = async (query: string) => (await store.searchPatterns(A.scopeId, query, 50, T0)).map((p) => p.content);
        expect(await find('ärger école')).toEqual(['Ärger ÉCOLE']);
        expect(await find('ecole')).toEqual(['Ärger ÉCOLE']);
        expect(await find('ARGER')).toEqual(['Ärger ÉCOLE']);
        expect(await find('σοφια')).toEqual(['ΣΟΦΙΑ']);
        expect(await find('σοφία')).toEqual(['ΣΟΦΙΑ']);
        expect(await find('🚀 ROCKET')).toEqual(['🚀 Rocket']);
        expect(await find('creme brul')).toEqual(['Crème brûlée']);
        expect(await find('é')).toEqual(['Ärger ÉCOLE']);
      });

      it('ranks by relevance, recency breaking ties: the same order on every backend', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'refund refund refund policy')], T0);
        await store.savePatterns(A, [newPattern(A, 'refund issued')], at(1_000));
        await store.savePatterns(A, [newPattern(A, 'refund denied')], at(2_000));
        await store.savePatterns(A, [newPattern(A, 'Refund the customer when the parcel is lost in transit')], at(3_000));
        await store.savePatterns(A, [newPattern(A, 'greet by first name')], at(4_000));
        await store.savePatterns(B, [newPattern(B, 'refund refund refund refund')], at(5_000));
        const find = async (query: string, limit = 50) =>
          (await store.searchPatterns(A.scopeId, query, limit, at(10_000))).map((p) => p.content);
        expect(await find('refund')).toEqual([
          'refund refund refund policy',
          'refund denied',
          'refund issued',
          'Refund the customer when the parcel is lost in transit',
        ]);
        expect(await find('refund', 2)).toEqual(['refund refund refund policy', 'refund denied']);
        expect(await find('refund polic')).toEqual(['refund refund refund policy']);
        expect(await find('greet')).toEqual(['greet by first name']);
      });

      it('never returns expired patterns from a ranked search', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'expired refund', { expiresAt: at(60_000).toISOString() }), newPattern(A, 'live refund')], T0);
        expect((await store.searchPatterns(A.scopeId, 'refund', 10, at(30_000))).length).toBe(2);
        expect((await store.searchPatterns(A.scopeId, 'refund', 10, at(120_000))).map((p) => p.content)).toEqual(['live refund']);
      });

      it('never returns expired patterns', async () => {
        const store = await open();
        await store.savePatterns(
          A,
          [newPattern(A, 'short-lived', { expiresAt: at(60_000).toISOString() }), newPattern(A, 'forever')],
          T0,
        );
        expect((await store.searchPatterns(A.scopeId, undefined, 10, at(30_000))).length).toBe(2);
        expect((await store.searchPatterns(A.scopeId, undefined, 10, at(120_000))).map((p) => p.content)).toEqual(['forever']);
        expect(await store.countPatterns(at(120_000))).toBe(1);
      });

      it("property: any query returns exactly this scope's patterns whose tokens match it", async () => {
        const store = await open();
        const alphabet = fc.constantFrom('a', 'B', 'ab', 'é', 'É', '%', '_', '\\', "'", '"', '*', '.', ' ', ':', '(', '&', '|', '!', 'NEAR', 'OR');
        const text = fc.string({ unit: alphabet, minLength: 1, maxLength: 8 });
        const scopeContents = ['a%B_c', "x'y*z", 'AB ab', 'plain', 'abé (near) OR', 'b:a!b'];
        const otherContents = ['a%B_c other', 'AB ab', 'a', 'b', 'ab near or'];
        await store.savePatterns(A, scopeContents.map((c) => newPattern(A, c)), T0);
        await store.savePatterns(B, otherContents.map((c) => newPattern(B, c)), T0);
        await fc.assert(
          fc.asyncProperty(text, async (query) => {
            const found = await store.searchPatterns(A.scopeId, query, 50, T0);
            const parsed = parseSearchQuery(query);
            const expected = parsed === null ? [] : scopeContents.filter((c) => matchesSearchQuery(parsed, searchTokens(c))).sort();
            expect(found.every((p) => p.scopeId === A.scopeId)).toBe(true);
            expect(found.map((p) => p.content).sort()).toEqual(expected);
          }),
          { numRuns: 80 },
        );
      });

      it('fuzz: arbitrary query text never throws and never leaves its scope', async () => {
        const store = await open();
        await store.savePatterns(A, ['refund policy', 'École "NEAR" a:b*', 'AND OR NOT ()'].map((c) => newPattern(A, c)), T0);
        await store.savePatterns(B, ['refund policy', 'École "NEAR" a:b*', 'AND OR NOT ()'].map((c) => newPattern(B, c)), T0);
        const syntax = fc.constantFrom('"', "'", '*', ':', '&', '|', '!', '(', ')', 'NEAR', 'AND', 'OR', 'NOT', '^', '-', '+', '{', '}', '\\', ' ', 'refu', 'é', '\u0000', '\ud800');
        const query = fc.oneof(fc.string({ unit: syntax, maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }));
        await fc.assert(
          fc.asyncProperty(query, fc.integer({ min: 0, max: 60 }), async (q, limit) => {
            const found = await store.searchPatterns(A.scopeId, q, limit, T0);
            expect(found.length).toBeLessThanOrEqual(limit);
            expect(found.every((p) => p.scopeId === A.scopeId)).toBe(true);
          }),
          { numRuns: 100 },
        );
      });
    });

    describe('outbox', () => {
      it('leases entries to one worker; others get them only after the lease ends', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'one'), newPattern(A, 'two')], T0);
        const claimed = await store.claimOutbox('w1', 10, 30_000, at(1_000));
        expect(claimed.map((e) => e.pattern.content).sort()).toEqual(['one', 'two']);
        expect(claimed.every((e) => e.attempts === 0 && e.lastError === null)).toBe(true);
        expect(await store.claimOutbox('w2', 10, 30_000, at(2_000))).toEqual([]);
        expect(await store.outboxDepth()).toBe(2);
        const reclaimed = await store.claimOutbox('w2', 10, 30_000, at(31_001 + 1_000));
        expect(reclaimed.length).toBe(2);
      });

      it('entries saved by a writer that sends them itself stay leased to it until the lease ends', async () => {
        const store = await open();
        const peer = await openPeer();
        await store.savePatterns(A, [newPattern(A, 'sent by the write path')], T0, { leaseTo: { workerId: 'writer', leaseMs: 30_000 } });
        await store.savePatterns(A, [newPattern(A, 'plain')], T0);
        expect((await peer.claimOutbox('drainer', 10, 30_000, at(1_000))).map((e) => e.pattern.content)).toEqual(['plain']);
        // The writer died without completing: a drainer takes the entry over once the lease has expired.
        const takenOver = await peer.claimOutbox('drainer', 10, 30_000, at(30_500));
        expect(takenOver.map((e) => e.pattern.content)).toEqual(['sent by the write path']);
      });

      it('a writer that failed to send releases its lease through failOutbox', async () => {
        const store = await open();
        const { saved } = await store.savePatterns(A, [newPattern(A, 'failed once')], T0, { leaseTo: { workerId: 'writer', leaseMs: 30_000 } });
        await store.failOutbox([saved[0]!.id], 'network', at(2_000));
        const [retry] = await store.claimOutbox('drainer', 10, 30_000, at(3_000));
        expect(retry?.pattern.id).toBe(saved[0]!.id);
        expect(retry?.attempts).toBe(1);
      });

      it('claims at most `limit` entries, oldest first', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'first')], T0);
        await store.savePatterns(A, [newPattern(A, 'second')], at(1_000));
        await store.savePatterns(A, [newPattern(A, 'third')], at(2_000));
        const claimed = await store.claimOutbox('w1', 2, 30_000, at(5_000));
        expect(claimed.map((e) => e.pattern.content)).toEqual(['first', 'second']);
      });

      it('complete removes entries and marks patterns synced', async () => {
        const store = await open();
        const { saved } = await store.savePatterns(A, [newPattern(A, 'one'), newPattern(A, 'two')], T0);
        const claimed = await store.claimOutbox('w1', 10, 30_000, at(1_000));
        await store.completeOutbox(claimed.map((e) => e.pattern.id), at(2_000));
        expect(await store.outboxDepth()).toBe(0);
        expect(await store.claimOutbox('w1', 10, 30_000, at(100_000))).toEqual([]);
        const found = await store.searchPatterns(A.scopeId, undefined, 10, at(3_000));
        expect(found.map((p) => p.syncedAt)).toEqual([at(2_000).toISOString(), at(2_000).toISOString()]);
        expect(new Set(found.map((p) => p.id))).toEqual(new Set(saved.map((p) => p.id)));
      });

      it('fail counts the attempt, keeps the error, and retries no earlier than retryAt', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'flaky')], T0);
        const [entry] = await store.claimOutbox('w1', 10, 30_000, at(1_000));
        await store.failOutbox([entry!.pattern.id], 'timeout: Context7 did not answer', at(60_000));
        expect(await store.claimOutbox('w2', 10, 30_000, at(59_000))).toEqual([]);
        const [retry] = await store.claimOutbox('w2', 10, 30_000, at(61_000));
        expect(retry?.attempts).toBe(1);
        expect(retry?.lastError).toBe('timeout: Context7 did not answer');
        expect(await store.outboxDepth()).toBe(1);
      });

      it('two instances claiming at once never share an entry, and together get all', async () => {
        const store = await open();
        const peer = await openPeer();
        await store.savePatterns(A, Array.from({ length: 40 }, (_, i) => newPattern(A, `entry ${i}`)), T0);
        const claims = await Promise.all(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? store : peer).claimOutbox(`w${i}`, 7, 30_000, at(1_000))),
        );
        const ids = claims.flat().map((e) => e.pattern.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect(ids.length).toBe(40);
      });
    });

    describe('backfill paging', () => {
      it('lists live patterns in id order after a cursor, across scopes', async () => {
        const store = await open();
        await store.savePatterns(A, Array.from({ length: 7 }, (_, i) => newPattern(A, `a${i}`)), T0);
        await store.savePatterns(B, [newPattern(B, 'b0'), newPattern(B, 'gone', { expiresAt: at(1_000).toISOString() })], T0);
        const now = at(5_000);
        const seen: string[] = [];
        let cursor: string | null = null;
        for (;;) {
          const page = await store.listPatternsPage(cursor, 3, now);
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          seen.push(...page.map((p) => p.id));
          cursor = page[page.length - 1]!.id;
        }
        expect(seen.length).toBe(8);
        expect(seen).toEqual([...seen].sort());
        expect(await store.countPatterns(now)).toBe(8);
      });
    });

    describe('jobs', () => {
      it('starts a job, refuses a second start while it runs, and reports it', async () => {
        const store = await open();
        const first = await store.tryStartJob(job(), 60_000, T0);
        expect(first).toEqual({ started: true, state: job() });
        const second = await store.tryStartJob(job({ owner: 'instance-b' }), 60_000, at(10_000));
        expect(second.started).toBe(false);
        expect(second.state.owner).toBe('instance-a');
        expect(await store.loadJobState('backfill')).toEqual(job());
        expect(await store.loadJobState('never-ran')).toBeNull();
      });

      it('takes over a run whose heartbeat went stale, and restarts a finished one', async () => {
        const store = await open();
        await store.tryStartJob(job({ cursor: 'abc', synced: 4 }), 60_000, T0);
        const takeover = await store.tryStartJob(job({ owner: 'instance-b', cursor: 'abc', synced: 4 }), 60_000, at(120_000));
        expect(takeover.started).toBe(true);
        expect(takeover.state.owner).toBe('instance-b');
        expect(takeover.state.cursor).toBe('abc');
        await store.saveJobState({ ...takeover.state, status: 'completed', finishedAt: at(130_000).toISOString() });
        const again = await store.tryStartJob(job({ owner: 'instance-c', startedAt: at(140_000).toISOString() }), 60_000, at(140_000));
        expect(again.started).toBe(true);
        expect(again.state.owner).toBe('instance-c');
      });

      it('restarts an interrupted job at once, keeping the cursor it is given', async () => {
        const store = await open();
        await store.tryStartJob(job(), 60_000, T0);
        await store.saveJobState(job({ status: 'interrupted', cursor: 'p-0042', synced: 42, heartbeatAt: at(1_000).toISOString() }));
        const resumed = await store.tryStartJob(job({ owner: 'instance-b', cursor: 'p-0042', synced: 42 }), 60_000, at(2_000));
        expect(resumed.started).toBe(true);
        expect(resumed.state).toMatchObject({ status: 'running', cursor: 'p-0042', synced: 42, owner: 'instance-b' });
      });

      it('of many concurrent starts from two instances, exactly one wins', async () => {
        const store = await open();
        const peer = await openPeer();
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? store : peer).tryStartJob(job({ owner: `w${i}` }), 60_000, T0)),
        );
        const winners = results.filter((r) => r.started);
        expect(winners.length).toBe(1);
        const owner = winners[0]!.state.owner;
        expect(results.every((r) => r.state.owner === owner)).toBe(true);
      });

      it('saves and loads progress', async () => {
        const store = await open();
        await store.tryStartJob(job(), 60_000, T0);
        const progress = job({ cursor: 'zz', synced: 9, errors: 1, heartbeatAt: at(5_000).toISOString() });
        await store.saveJobState(progress);
        expect(await store.loadJobState('backfill')).toEqual(progress);
      });
    });

    describe('exportScope', () => {
      it('exports exactly one scope with its append-only history', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'kept'), newPattern(A, 'fails once')], T0);
        await store.savePatterns(B, [newPattern(B, 'other scope')], T0);
        const claimed = await store.claimOutbox('w1', 10, 30_000, at(1_000));
        const failing = claimed.find((e) => e.pattern.content === 'fails once')!;
        const kept = claimed.find((e) => e.pattern.content === 'kept')!;
        await store.failOutbox([failing.pattern.id], 'api_error: 503', at(2_000));
        await store.completeOutbox([kept.pattern.id], at(3_000));
        const exported = await store.exportScope(A.scopeId, at(4_000));
        expect(exported.scopeId).toBe(A.scopeId);
        expect(exported.patterns.map((p) => p.content).sort()).toEqual(['fails once', 'kept']);
        expect(exported.history.every((h) => h.scopeId === A.scopeId)).toBe(true);
        const eventsOf = (id: string) => exported.history.filter((h) => h.patternId === id).map((h) => h.event);
        expect(eventsOf(kept.pattern.id)).toEqual(['created', 'synced']);
        expect(eventsOf(failing.pattern.id)).toEqual(['created', 'sync_failed']);
        expect(exported.history.find((h) => h.event === 'sync_failed')?.detail).toBe('api_error: 503');
        expect(exported.history.find((h) => h.event === 'synced')?.at).toBe(at(3_000).toISOString());
        expect(JSON.parse(JSON.stringify(exported))).toEqual(exported);
      });

      it('exports an unknown scope as empty', async () => {
        const store = await open();
        expect(await store.exportScope(A.scopeId, T0)).toEqual({ scopeId: A.scopeId, patterns: [], history: [] });
      });
    });

    describe('erase (issue 13)', () => {
      it('removes a whole scope (pending upserts and expired patterns too), leaving one tombstone per pattern', async () => {
        const store = await open();
        await store.savePatterns(A, [newPattern(A, 'synced'), newPattern(A, 'pending'), newPattern(A, 'expired', { expiresAt: at(500).toISOString() })], T0);
        await store.savePatterns(B, [newPattern(B, 'other scope')], T0);
        const claimed = await store.claimOutbox('w1', 10, 30_000, at(1_000));
        await store.completeOutbox(claimed.filter((e) => e.pattern.content === 'synced').map((e) => e.pattern.id), at(1_500));
        await store.failOutbox(claimed.filter((e) => e.pattern.content === 'pending').map((e) => e.pattern.id), 'network: said "pending"', at(1_600));
        const receipt = await store.erase(A, null, 'admin:dpr-1', at(2_000));
        expect(receipt.erasedPatternIds).toHaveLength(3);
        expect(receipt.leased).toBe(false);
        expect(receipt.erasure).toMatchObject({ scopeId: A.scopeId, patternId: null, requestedBy: 'admin:dpr-1', attempts: 0 });
        expect((await store.pendingErasures(A.scopeId)).wholeScope).toBe(true);
        const exported = await store.exportScope(A.scopeId, at(3_000));
        expect(exported.patterns).toEqual([]);
        expect(exported.history.map((e) => [e.event, e.detail, e.at])).toEqual(
          Array.from({ length: 3 }, () => ['erased', 'admin:dpr-1', at(2_000).toISOString()]),
        );
        expect(new Set(exported.history.map((e) => e.patternId))).toEqual(new Set(receipt.erasedPatternIds));
        expect(JSON.stringify(exported)).not.toMatch(/synced"|pending|expired/);
        // Only B's pending upsert is left; nothing of A will be sent to Context7.
        expect((await store.claimOutbox('w2', 10, 30_000, at(40_000))).map((e) => e.pattern.scopeId)).toEqual([B.scopeId]);
        expect(await store.outboxDepth()).toBe(1);
        expect((await store.exportScope(B.scopeId, at(3_000))).patterns).toHaveLength(1);
        expect(await store.searchPatterns(A.scopeId, undefined, 10, at(3_000))).toEqual([]);
      });

      it('removes one pattern only, and the erasure outbox leases, fails and completes like the pattern outbox', async () => {
        const store = await open();
        const [keep, forget] = [newPattern(A, 'keep'), newPattern(A, 'forget')];
        await store.savePatterns(A, [keep, forget], T0);
        const receipt = await store.erase(A, forget.id, 'admin', at(1_000), { leaseTo: { workerId: 'eraser', leaseMs: 30_000 } });
        expect(receipt).toMatchObject({ erasedPatternIds: [forget.id], leased: true, erasure: { patternId: forget.id } });
        expect((await store.searchPatterns(A.scopeId, undefined, 10, at(2_000))).map((p) => p.id)).toEqual([keep.id]);
        // Leased to the eraser: no drainer takes it meanwhile.
        expect(await store.claimErasures('drainer', 10, 30_000, at(2_000))).toEqual([]);
        await store.failErasures([receipt.erasure.id], 'network', at(5_000));
        expect(await store.claimErasures('drainer', 10, 30_000, at(4_000))).toEqual([]);
        const due = await store.claimErasures('drainer', 10, 30_000, at(6_000));
        expect(due).toMatchObject([{ id: receipt.erasure.id, attempts: 1, lastError: 'network', patternId: forget.id }]);
        expect(await store.erasureOutboxDepth()).toBe(1);
        expect(await store.pendingErasures(A.scopeId)).toEqual({ wholeScope: false, patternIds: [forget.id] });
        expect(await store.pendingErasures(B.scopeId)).toEqual({ wholeScope: false, patternIds: [] });
        await store.completeErasures([receipt.erasure.id], at(7_000));
        expect(await store.erasureOutboxDepth()).toBe(0);
        expect(await store.pendingErasures(A.scopeId)).toEqual({ wholeScope: false, patternIds: [] });
        const history = (await store.exportScope(A.scopeId, at(8_000))).history;
        expect(history.filter((e) => e.patternId === keep.id).map((e) => e.event)).toEqual(['created']);
        expect(history.filter((e) => e.patternId === forget.id).map((e) => e.event)).toEqual(['erased']);
      });

      it('waits for an upsert in flight: the deletion is due only when its lease ends', async () => {
        const store = await open();
        const pattern = newPattern(A, 'in flight');
        await store.savePatterns(A, [pattern], T0, { leaseTo: { workerId: 'writer', leaseMs: 30_000 } });
        const receipt = await store.erase(A, null, 'admin', at(1_000), { leaseTo: { workerId: 'eraser', leaseMs: 30_000 } });
        expect(receipt.leased).toBe(false);
        expect(await store.claimErasures('drainer', 10, 30_000, at(20_000))).toEqual([]);
        expect(await store.claimErasures('drainer', 10, 30_000, at(31_000))).toHaveLength(1);
        // The writer's late completion finds nothing to mark.
        await store.completeOutbox([pattern.id], at(2_000));
        expect((await store.exportScope(A.scopeId, at(3_000))).history.map((e) => e.event)).toEqual(['erased']);
      });
    });

    describe('exposure runtime and audit (issue 18)', () => {
      const change = (percent: number, extra: Partial<ExposureChange> = {}): ExposureChange => ({
        percent,
        actor: 'alice',
        reason: null,
        ceiling: 50,
        instanceId: 'instance-a',
        ...extra,
      });

      it('reads nothing before the first change, then each change with the next version and its audit entry', async () => {
        const store = await open();
        expect(await store.readExposure()).toBeNull();
        expect(await store.listExposureAudit(10)).toEqual([]);

        const first = await store.setExposure(change(5, { reason: 'step 1' }), T0);
        expect(first).toMatchObject({ applied: true, record: { percent: 5, version: 1, updatedBy: 'alice', updatedAt: T0.toISOString() } });
        const second = await store.setExposure(change(12.5, { actor: 'canary', instanceId: 'instance-b' }), at(1_000));
        expect(second.applied && second.record.version).toBe(2);
        const killed = await store.setExposure(change(0, { actor: 'canary', reason: 'kill switch' }), at(2_000));
        expect(killed.applied && killed.record.version).toBe(3);

        expect(await store.readExposure()).toEqual({ percent: 0, version: 3, updatedAt: at(2_000).toISOString(), updatedBy: 'canary' });
        expect(await store.listExposureAudit(10)).toEqual([
          { version: 3, at: at(2_000).toISOString(), actor: 'canary', reason: 'kill switch', fromPercent: 12.5, toPercent: 0, ceiling: 50, instanceId: 'instance-a' },
          { version: 2, at: at(1_000).toISOString(), actor: 'canary', reason: null, fromPercent: 5, toPercent: 12.5, ceiling: 50, instanceId: 'instance-b' },
          { version: 1, at: T0.toISOString(), actor: 'alice', reason: 'step 1', fromPercent: null, toPercent: 5, ceiling: 50, instanceId: 'instance-a' },
        ]);
        expect((await store.listExposureAudit(2)).map((entry) => entry.version)).toEqual([3, 2]);
      });

      it('applies a compare-and-set change only while the stored version is the expected one', async () => {
        const store = await open();
        await store.setExposure(change(40), T0);
        const stale = await store.setExposure(change(25, { actor: 'deploy', ifVersion: 0 }), at(1_000));
        expect(stale).toEqual({ applied: false, current: { percent: 40, version: 1, updatedAt: T0.toISOString(), updatedBy: 'alice' }, currentVersion: 1 });
        const current = await store.setExposure(change(25, { actor: 'deploy', ifVersion: 1 }), at(1_000));
        expect(current.applied && current.record).toEqual({ percent: 25, version: 2, updatedAt: at(1_000).toISOString(), updatedBy: 'deploy' });
        expect(await store.listExposureAudit(10)).toHaveLength(2);
      });

      it('gives concurrent changes from two instances one version each, none lost, and every peer reads the last', async () => {
        const store = await open();
        const peer = await openPeer();
        const changes = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : peer).setExposure(change(i, { instanceId: `instance-${i}` }), at(i)));
        const results = await Promise.all(changes);
        const versions = results.map((result) => (result.applied ? result.record.version : -1)).sort((a, b) => a - b);
        expect(versions).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
        const audit = await peer.listExposureAudit(100);
        expect(audit.map((entry) => entry.version)).toEqual(Array.from({ length: 12 }, (_, i) => 12 - i));
        // Each entry's "from" is the value the previous version set: the audit is one unbroken chain.
        const chronological = [...audit].reverse();
        chronological.forEach((entry, i) => expect(entry.fromPercent).toBe(i === 0 ? null : chronological[i - 1]!.toPercent));
        const last = chronological[11]!;
        expect(await store.readExposure()).toMatchObject({ percent: last.toPercent, version: 12 });
        expect(await peer.readExposure()).toMatchObject({ percent: last.toPercent, version: 12 });
      });
    });
  });
}
