/**
 * Re-posting the same content with new metadata (issue 22 §4): a stored pattern is immutable (its id is its content
 * within the scope), so the first metadata is kept, and the answer says so (metadataKept) instead of a silent
 * `saved: 1, inserted: 0`. An identical re-post (a retry) says nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patternsResponseSchema } from '../../service/contracts/http';
import { TEST_ADMIN_TOKEN, scope, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
});
afterAll(async () => {
  await h?.close();
});

describe('re-posting a stored pattern', () => {
  it('keeps the first metadata and names the pattern in metadataKept; a retry with the same metadata is silent', async () => {
    const scopeId = scope('repost', 'agent');
    const first = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [{ content: 'greets by name', metadata: { source: 'call-1', weight: 1 } }] });
    expect(first.body).toMatchObject({ saved: 1, inserted: 1 });
    expect(first.body.metadataKept).toBeUndefined();

    const retry = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [{ content: 'greets by name', metadata: { weight: 1, source: 'call-1' } }] });
    expect(retry.body).toMatchObject({ saved: 1, inserted: 0 });
    expect(retry.body.metadataKept).toBeUndefined();

    const changed = await h.request('POST', '/api/memory/patterns', {
      scopeId,
      patterns: [{ content: 'greets by name', metadata: { source: 'call-2' } }, 'a new one'],
    });
    expect(patternsResponseSchema.parse(changed.body)).toMatchObject({ saved: 2, inserted: 1, metadataKept: [first.body.patternIds[0]] });

    const exported = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
    const stored = exported.body.patterns.find((p: { content: string }) => p.content === 'greets by name');
    expect(stored.metadata).toEqual({ source: 'call-1', weight: 1 });
  });
});
