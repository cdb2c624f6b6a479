/**
 * `npm run bench:store`'s search part at a small scale (what CI runs): it seeds, builds the index through the
 * migrations and measures on both stores, and the ranked search finds what the seed planted. Timings are
 * printed by the bench, never asserted here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchPostgresSearch, benchSqliteSearch, recallAt10, relevanceFixture, substringOrderBaseline, type StoreSearchFigures } from '../../bench/store-search';
import { createTestDatabase } from '../data-plane/support/postgres';

const options = { scale: 0.002, concurrency: 2, progress: () => undefined, samples: { ranked: 5, baseline: 3, writes: 20 } };

function expectSound(figures: StoreSearchFigures): void {
  expect(figures.seedRows).toBe(2_000);
  expect(figures.search.rare.ranked.found).toBeGreaterThan(0);
  expect(figures.search.common.ranked.found).toBe(10);
  expect(figures.search['no-match'].ranked.found).toBe(0);
  expect(figures.search['no-match'].substring.found).toBe(0);
  expect(figures.relevance.queries).toBe(20);
  expect(figures.relevance.rankedRecallAt10).toBeGreaterThan(figures.relevance.substringRecallAt10);
}

describe('bench:store search at a small scale', () => {
  it('runs on SQLite', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-search-test-'));
    try {
      expectSound(await benchSqliteSearch(dataDir, options));
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('runs on PostgreSQL', async () => {
    const db = await createTestDatabase('benchsearch');
    try {
      expectSound(await benchPostgresSearch(db.url, options));
    } finally {
      await db.drop();
    }
  });

  it('the relevance fixture labels 4 patterns per query, and today\'s order is substring, newest first', () => {
    const fixture = relevanceFixture();
    expect(fixture.labelled).toHaveLength(20);
    expect(fixture.labelled.every((l) => l.relevant.length === 4)).toBe(true);
    const refunds = substringOrderBaseline(fixture.patterns, 'refund');
    expect(refunds.length).toBe(16);
    expect(refunds.map((p) => p.createdAt)).toEqual([...refunds.map((p) => p.createdAt)].sort().reverse());
    expect(recallAt10(['a', 'b'], ['b', 'c'])).toBe(0.5);
  });
});
