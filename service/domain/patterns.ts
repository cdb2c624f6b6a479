/**
 * Pattern identity and conversions shared by learning, the outbox drainer and the backfill.
 */
import { createHash } from 'node:crypto';
import type { Snippet } from '../contracts/http';
import type { Context7PatternUpsert } from '../context7/port';
import type { NewPattern, ScopeKey, StoredPattern } from '../data-access/memory-store';
import { SCOPE_ID_PATTERN, parseScopeId } from './scope-id';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Stable across processes and re-sends: the same scope and content always give the same id. */
export function patternId(scopeId: string, contentHash: string): string {
  return `pat_${sha256Hex(`${scopeId}\n${contentHash}`).slice(0, 32)}`;
}

/** Validates the id (throws InvalidScopeIdError) and splits it into the columns the store keeps. */
export function scopeKeyOf(scopeId: string): ScopeKey {
  const valid = parseScopeId(scopeId);
  const match = SCOPE_ID_PATTERN.exec(valid);
  if (!match) throw new Error('unreachable: parseScopeId accepted an id the pattern rejects');
  return { scopeId: valid, locationId: match[1], agentId: match[2], promptHash: match[3] };
}

export type PatternInput = string | { content: string; metadata?: Record<string, unknown>; expiresAt?: string };

export function toNewPattern(scopeId: string, input: PatternInput): NewPattern {
  const { content, metadata, expiresAt } = typeof input === 'string' ? { content: input } : input;
  const contentHash = sha256Hex(content);
  return {
    id: patternId(scopeId, contentHash),
    content,
    contentHash,
    metadata: metadata ?? null,
    expiresAt: expiresAt === undefined ? null : new Date(expiresAt).toISOString(),
  };
}

export function toUpsert(pattern: StoredPattern): Context7PatternUpsert {
  return {
    id: pattern.id,
    content: pattern.content,
    ...(pattern.metadata ? { metadata: pattern.metadata } : {}),
    createdAt: pattern.createdAt,
  };
}

export function toSnippet(pattern: StoredPattern): Snippet {
  return { id: pattern.id, content: pattern.content, ...(pattern.metadata ? { metadata: pattern.metadata } : {}) };
}

/** Groups patterns by scope, preserving order: Context7 upserts are per scope. */
export function groupByScope(patterns: StoredPattern[]): Map<string, StoredPattern[]> {
  const groups = new Map<string, StoredPattern[]>();
  for (const pattern of patterns) {
    const group = groups.get(pattern.scopeId);
    if (group) group.push(pattern);
    else groups.set(pattern.scopeId, [pattern]);
  }
  return groups;
}

/** Exponential backoff with full jitter for outbox retries, or Context7's Retry-After when it gave one. */
export function outboxRetryDelayMs(attempts: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined && retryAfterMs > 0) return retryAfterMs;
  const ceiling = Math.min(300_000, 1_000 * 2 ** Math.min(attempts, 12));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
