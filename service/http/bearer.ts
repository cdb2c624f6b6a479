/**
 * Bearer credentials, compared in constant time. Both sides are hashed first, so timingSafeEqual always compares
 * equal-length digests and the comparison time says nothing about a token's length or content.
 * Shared by the admin token (admin-auth.ts) and the caller keys (caller-auth.ts).
 */
import { hash, timingSafeEqual } from 'node:crypto';

/**
 * sha256 of a token. The one-shot crypto.hash, to hex and back: createHash's Hash object cost more than the hashing
 * itself, and on Node 24 crypto.hash's own 'buffer' output takes about twice as long as hex plus Buffer.from
 * (issue 29: 1.2 against 0.5 µs per call, process.cpuUsage over 200,000 calls).
 */
export function tokenDigest(value: string): Buffer {
  return Buffer.from(hash('sha256', value, 'hex'), 'hex');
}

export function tokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(tokenDigest(expected), tokenDigest(presented));
}

/** The token of an `Authorization: Bearer <token>` header, or null when absent or of another scheme. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match ? match[1] : null;
}

/**
 * The first of `candidates` whose secret equals `presented`. Every candidate is compared, a match or not, so the
 * time taken depends on how many keys are configured, never on which one matched or how close a guess came.
 */
export function findMatchingSecret<T>(candidates: readonly T[], secretOf: (candidate: T) => Buffer, presented: string): T | null {
  const presentedDigest = tokenDigest(presented);
  let found: T | null = null;
  for (const candidate of candidates) {
    if (timingSafeEqual(secretOf(candidate), presentedDigest) && found === null) found = candidate;
  }
  return found;
}
