/**
 * Search through the HTTP route, on both stores: arbitrary query text (query syntax of FTS5 and tsquery included)
 * never costs a 5xx and never returns another scope's patterns. Context7 is not configured, so every read is
 * answered by the local store's ranked search.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../data-plane/support/postgres';
import { scope, startHarness, type Harness } from './support/harness';

const OURS = scope('fuzz', 'agent-ours', 'prompt');
const THEIRS = scope('fuzz', 'agent-theirs', 'prompt');
const CONTENTS = ['refund policy', 'École "NEAR" a:b*', 'AND OR NOT ()', "it's 10% off: *today*", 'σοφια & friends | !x'];

const SYNTAX = ['"', "'", '*', ':', '&', '|', '!', '(', ')', 'NEAR', 'NEAR/2', 'AND', 'OR', 'NOT', '^', '-', '+', '<->', ':*', '\\', ' ', 'refu', 'ecole', '\u0000'];
const queryText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...SYNTAX), maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`search through POST /api/memory/snippets on ${backend}`, () => {
    let h: Harness;
    let db: TestDatabase | undefined;
    let ours: Set<string>;

    beforeAll(async () => {
      if (backend === 'postgres') db = await createTestDatabase('searchfuzz');
      h = await startHarness({ env: { ENABLE_CONTEXT7_MEMORY: 'true', ...(db ? { DATABASE_URL: db.url } : {}) } });
      const saved = await h.request('POST', '/api/memory/patterns', { scopeId: OURS, patterns: CONTENTS });
      await h.request('POST', '/api/memory/patterns', { scopeId: THEIRS, patterns: CONTENTS.map((c) => `${c} (theirs)`) });
      ours = new Set(saved.body.patternIds as string[]);
    });

    afterAll(async () => {
      await h?.close();
      await db?.drop();
    });

    it('finds by token and prefix, ranked, from the store', async () => {
      const read = await h.request('POST', '/api/memory/snippets', { scopeId: OURS, query: 'ECOLE nea' });
      expect(read.status).toBe(200);
      expect(read.body.source).toBe('database');
      expect(read.body.snippets.map((s: { content: string }) => s.content)).toEqual(['École "NEAR" a:b*']);
    });

    it('fuzz: any query answers 200 (or 400 for an invalid body) with only this scope\'s patterns', async () => {
      await fc.assert(
        fc.asyncProperty(queryText, async (query) => {
          const read = await h.request('POST', '/api/memory/snippets', { scopeId: OURS, query, limit: 10 });
          expect(read.status).toBeLessThan(500);
          if (read.status !== 200) return;
          for (const snippet of read.body.snippets as { id: string }[]) expect(ours.has(snippet.id)).toBe(true);
        }),
        { numRuns: 60 },
      );
    });
  });
}
