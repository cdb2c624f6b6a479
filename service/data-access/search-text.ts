/**
 * Full-text search text, shared by both stores and the Context7 emulator: one tokenizer in TypeScript, so SQLite,
 * PostgreSQL and the emulator see exactly the same tokens and no database locale, parser or extension decides.
 *
 * - Tokens are runs of Unicode letters and digits, after NFKD, dropping combining marks and lowercasing:
 *   `École` → `ecole`, `ΣΟΦΙΑ` → `σοφια`, `ﬁle` → `file`. Everything else (punctuation, symbols, emoji) separates.
 * - A query's tokens all have to match (AND); the last one also matches as a prefix (`refu` finds `refund`).
 * - Relevance ranks the scope's newest RANK_WINDOW matches (all of them when there are fewer).
 *   User text never reaches FTS5 or tsquery syntax: only tokens (letters and digits) are ever quoted into it.
 * - Indexed tokens carry a per-scope tag (a hash of the scope id), so each scope has its own posting lists:
 *   a search reads only its scope's index entries, and a common word elsewhere costs nothing.
 *
 * Pure: no I/O.
 */
import { hash } from 'node:crypto';

/** Longer tokens are cut: PostgreSQL refuses lexemes over 2 KB, and nobody searches for 100-letter words. */
export const MAX_TOKEN_LENGTH = 64;
/**
 * Ranking considers a scope's newest RANK_WINDOW live matches of a query. A query matching fewer is ranked over all
 * of them, exactly; one matching more (a word in thousands of a scope's patterns) is ranked among the newest this
 * many, so its cost is bounded by the window instead of the scope. Both stores use the same window (SQLite by
 * rowid, PostgreSQL by creation time: both are insertion order), so they keep the same top results.
 */
export const RANK_WINDOW = 500;
/** tsvector keeps positions up to 16,383; later tokens still count for matching, at the last position. */
const MAX_POSITION = 16_383;
/** tsvector keeps at most 256 positions per lexeme. */
const MAX_POSITIONS_PER_TOKEN = 256;
/** A query names at most this many tokens; the rest are ignored (a query is a few words, not a document). */
export const MAX_QUERY_TOKENS = 16;

const TOKEN = /[\p{L}\p{N}]+/gu;
const COMBINING_MARKS = /\p{M}+/gu;

/** Lowercase, accent-free tokens of `text`, in order, with repeats. */
export function searchTokens(text: string): string[] {
  const folded = text.normalize('NFKD').replace(COMBINING_MARKS, '').toLowerCase().replace(/ς/g, 'σ');
  return (folded.match(TOKEN) ?? []).map((token) => token.slice(0, MAX_TOKEN_LENGTH));
}

/** 12 hex characters of sha256(scopeId): fixed length, so a tagged token splits back unambiguously. */
export function scopeSearchTag(scopeId: string): string {
  // One-shot crypto.hash, not a Hash object: the same digest for a fraction of the cost, on every search and write.
  return hash('sha256', scopeId, 'hex').slice(0, 12);
}

export interface ParsedSearchQuery {
  /** Whole-token matches. */
  exact: string[];
  /** The last token, matched as a prefix. */
  prefix: string;
}

/** null when the query has no letters or digits: such a query matches nothing. */
export function parseSearchQuery(query: string): ParsedSearchQuery | null {
  const tokens = [...new Set(searchTokens(query))].slice(0, MAX_QUERY_TOKENS);
  const prefix = tokens.pop();
  return prefix === undefined ? null : { exact: tokens, prefix };
}

/** The FTS5 document for one pattern: its tagged tokens separated by spaces (tokenized by FTS5's `ascii`). */
export function fts5Document(scopeId: string, content: string): string {
  const tag = scopeSearchTag(scopeId);
  return searchTokens(content)
    .map((token) => tag + token)
    .join(' ');
}

/**
 * The FTS5 MATCH expression: each token a double-quoted string (so FTS5 reads it as a literal), implicit AND,
 * `*` after the last one. Tokens hold only letters and digits, so there is nothing to escape.
 */
export function fts5MatchExpression(scopeId: string, parsed: ParsedSearchQuery): string {
  const tag = scopeSearchTag(scopeId);
  return [...parsed.exact.map((token) => `"${tag}${token}"`), `"${tag}${parsed.prefix}"*`].join(' ');
}

/** tsvector input text with positions (so ts_rank_cd can use them); read by `::tsvector`, no parser involved. */
export function tsvectorText(scopeId: string, content: string): string {
  const tag = scopeSearchTag(scopeId);
  const positions = new Map<string, number[]>();
  searchTokens(content).forEach((token, index) => {
    const list = positions.get(token) ?? [];
    if (list.length < MAX_POSITIONS_PER_TOKEN) list.push(Math.min(index + 1, MAX_POSITION));
    positions.set(token, list);
  });
  return [...positions].map(([token, list]) => `'${tag}${token}':${[...new Set(list)].join(',')}`).join(' ');
}

/** tsquery input text: quoted lexemes joined by `&`, `:*` on the last; read by `::tsquery`, no parser involved. */
export function tsqueryText(scopeId: string, parsed: ParsedSearchQuery): string {
  const tag = scopeSearchTag(scopeId);
  return [...parsed.exact.map((token) => `'${tag}${token}'`), `'${tag}${parsed.prefix}':*`].join(' & ');
}

/** True when `content`'s tokens satisfy the query (all exact tokens present, some token starting with the prefix). */
export function matchesSearchQuery(parsed: ParsedSearchQuery, contentTokens: readonly string[]): boolean {
  const have = new Set(contentTokens);
  return parsed.exact.every((token) => have.has(token)) && contentTokens.some((token) => token.startsWith(parsed.prefix));
}

export interface Bm25Document {
  tokens: readonly string[];
}

/**
 * Okapi BM25 (k1 = 1.2, b = 0.75, FTS5's defaults) of each matching document against the query, over `documents`
 * as the corpus. Non-matching documents score null. The prefix token counts every token it prefixes.
 * Used by the Context7 emulator; SQLite computes the same formula inside FTS5.
 */
export function bm25Scores(parsed: ParsedSearchQuery, documents: readonly Bm25Document[]): (number | null)[] {
  const k1 = 1.2;
  const b = 0.75;
  const n = documents.length;
  const averageLength = n === 0 ? 0 : documents.reduce((sum, doc) => sum + doc.tokens.length, 0) / n;
  const termCount = (doc: Bm25Document, term: string, isPrefix: boolean) =>
    doc.tokens.filter((token) => (isPrefix ? token.startsWith(term) : token === term)).length;
  const terms = [...parsed.exact.map((term) => ({ term, isPrefix: false })), { term: parsed.prefix, isPrefix: true }];
  const documentFrequency = terms.map(({ term, isPrefix }) => documents.filter((doc) => termCount(doc, term, isPrefix) > 0).length);
  return documents.map((doc) => {
    if (!matchesSearchQuery(parsed, doc.tokens)) return null;
    return terms.reduce((score, { term, isPrefix }, i) => {
      const df = documentFrequency[i]!;
      // FTS5's floor: a term in more than half the documents still weighs a little, never negatively.
      const idf = Math.max(Math.log((n - df + 0.5) / (df + 0.5)), 1e-6);
      const tf = termCount(doc, term, isPrefix);
      const lengthNorm = averageLength === 0 ? 1 : 1 - b + (b * doc.tokens.length) / averageLength;
      return score + (idf * (tf * (k1 + 1))) / (tf + k1 * lengthNorm);
    }, 0);
  });
}
