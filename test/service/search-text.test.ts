/** The search tokenizer and the query texts built from it (pure; the stores' behaviour is in the contract suite). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_QUERY_TOKENS,
  MAX_TOKEN_LENGTH,
  fts5MatchExpression,
  parseSearchQuery,
  scopeSearchTag,
  searchTokens,
  tsqueryText,
  tsvectorText,
} from '../../service/data-access/search-text';

const SCOPE = 'scope:loc:agent:0123456789abcdef';
const TAG = scopeSearchTag(SCOPE);

describe('searchTokens', () => {
  it('folds case and accents beyond ASCII, splits on everything but letters and digits', () => {
    expect(searchTokens('École, ÄRGER & ΣΟΦΙΑΣ: ﬁle v2.0 🚀rocket')).toEqual(['ecole', 'arger', 'σοφιασ', 'file', 'v2', '0', 'rocket']);
  });

  it('cuts very long tokens', () => {
    expect(searchTokens('a'.repeat(500))).toEqual(['a'.repeat(MAX_TOKEN_LENGTH)]);
  });
});

describe('query texts', () => {
  it('quote only tokens: FTS5 phrases with a prefix star, tsquery lexemes with :*', () => {
    const parsed = parseSearchQuery('"refund" AND NEAR(po*')!;
    expect(parsed).toEqual({ exact: ['refund', 'and', 'near'], prefix: 'po' });
    expect(fts5MatchExpression(SCOPE, parsed)).toBe(`"${TAG}refund" "${TAG}and" "${TAG}near" "${TAG}po"*`);
    expect(tsqueryText(SCOPE, parsed)).toBe(`'${TAG}refund' & '${TAG}and' & '${TAG}near' & '${TAG}po':*`);
  });

  it('a query of only syntax has nothing to match; long queries keep their first distinct tokens', () => {
    expect(parseSearchQuery('"*:&|!()')).toBeNull();
    const many = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const parsed = parseSearchQuery(`${many} w0`)!;
    expect(parsed.exact.length + 1).toBe(MAX_QUERY_TOKENS);
  });

  it('tsvector text keeps positions, once per token', () => {
    expect(tsvectorText(SCOPE, 'refund the refund')).toBe(`'${TAG}refund':1,3 '${TAG}the':2`);
  });

  it('property: built texts never carry a quote, backslash or operator from the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), (query) => {
        const parsed = parseSearchQuery(query);
        if (parsed === null) return;
        for (const token of [...parsed.exact, parsed.prefix]) expect(token).toMatch(/^[\p{L}\p{N}]+$/u);
        expect(fts5MatchExpression(SCOPE, parsed).replace(/"[\p{L}\p{N}]+"\*?/gu, '').trim()).toBe('');
      }),
      { numRuns: 300 },
    );
  });
});
