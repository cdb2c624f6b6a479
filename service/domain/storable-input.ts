/**
 * What both stores can keep. JSON allows values that PostgreSQL refuses (NUL in text or jsonb, lone UTF-16
 * surrogates, year 0) or that overflow the stack when serialized (deep nesting); SQLite keeps or mangles them.
 * Rejecting them at the edge turns a would-be 500 into a 400 and keeps the two backends from drifting.
 */

/** Deeper metadata has no use and, nested far enough, overflows JSON.stringify. */
export const MAX_METADATA_DEPTH = 16;

export interface InputProblem {
  path: (string | number)[];
  message: string;
}

const NUL = /\u0000/;
/** With the u flag, a surrogate code point can only match when it is unpaired. */
const LONE_SURROGATE = /\p{Cs}/u;

export function textProblem(text: string): string | null {
  if (NUL.test(text)) return 'must not contain NUL (\\u0000) characters';
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode (no unpaired surrogates)';
  return null;
}

/**
 * Keys JavaScript does not keep as plain data: JSON.parse makes `__proto__` an own key, but an object literal,
 * Object.assign, z.record and most merge code treat it as the prototype, so it would vanish (or worse) somewhere
 * between the request and a reader. Refused with a 400 naming it rather than stored differently from what was sent.
 */
export const REFUSED_METADATA_KEYS: readonly string[] = ['__proto__'];

/**
 * Problems in a JSON value's strings (keys included), numbers and depth; iterative, so depth cannot overflow it.
 * A number beyond ±1.8e308 parses to Infinity, which JSON.stringify would store as null: refused, not changed.
 */
export function jsonValueProblems(value: unknown, path: (string | number)[], maxDepth = MAX_METADATA_DEPTH): InputProblem[] {
  const problems: InputProblem[] = [];
  const pending: { value: unknown; path: (string | number)[]; depth: number }[] = [{ value, path, depth: 0 }];
  while (pending.length > 0 && problems.length < 10) {
    const item = pending.pop()!;
    if (typeof item.value === 'string') {
      const problem = textProblem(item.value);
      if (problem) problems.push({ path: item.path, message: problem });
      continue;
    }
    if (typeof item.value === 'number' && !Number.isFinite(item.value)) {
      problems.push({ path: item.path, message: 'must be a finite number (this one overflows a 64-bit float)' });
      continue;
    }
    if (item.value === null || typeof item.value !== 'object') continue;
    if (item.depth >= maxDepth) {
      problems.push({ path: item.path, message: `must not nest deeper than ${maxDepth} levels` });
      continue;
    }
    for (const [key, child] of Object.entries(item.value)) {
      const problem = textProblem(key);
      if (problem) problems.push({ path: item.path, message: `key ${problem}` });
      if (REFUSED_METADATA_KEYS.includes(key)) {
        problems.push({ path: item.path, message: `key ${JSON.stringify(key)} is not allowed: JavaScript readers would drop it or treat it as a prototype` });
        continue;
      }
      pending.push({ value: child, path: [...item.path, Array.isArray(item.value) ? Number(key) : key], depth: item.depth + 1 });
    }
  }
  return problems;
}

/** PostgreSQL timestamps have no year 0; a UTC year outside 1..9999 cannot round-trip through both stores. */
export function timestampProblem(iso: string): string | null {
  const year = new Date(iso).getUTCFullYear();
  return Number.isFinite(year) && year >= 1 && year <= 9999 ? null : 'must fall between years 0001 and 9999 (UTC)';
}

type PatternInputLike = string | { content: string; metadata?: Record<string, unknown>; expiresAt?: string };

export function patternsRequestProblems(patterns: readonly PatternInputLike[]): InputProblem[] {
  const problems: InputProblem[] = [];
  patterns.forEach((input, index) => {
    if (typeof input === 'string') {
      const problem = textProblem(input);
      if (problem) problems.push({ path: ['patterns', index], message: problem });
      return;
    }
    const contentProblem = textProblem(input.content);
    if (contentProblem) problems.push({ path: ['patterns', index, 'content'], message: contentProblem });
    if (input.metadata !== undefined) problems.push(...jsonValueProblems(input.metadata, ['patterns', index, 'metadata']));
    if (input.expiresAt !== undefined) {
      const problem = timestampProblem(input.expiresAt);
      if (problem) problems.push({ path: ['patterns', index, 'expiresAt'], message: problem });
    }
  });
  return problems;
}
