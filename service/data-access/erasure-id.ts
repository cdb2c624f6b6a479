import { randomBytes } from 'node:crypto';

/** Random, so an erasure id says nothing about what was erased. */
export function newErasureId(): string {
  return `era_${randomBytes(12).toString('hex')}`;
}
