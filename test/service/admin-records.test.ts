/**
 * A credential is never kept where a person's name is recorded (issue 22 §4): `requestedBy` of an erasure (kept in
 * the append-only history that export returns) is refused like the exposure change's `actor` and `reason`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ADMIN_TOKEN, TEST_CALLER_KEY, scope, startHarness, type Harness } from './support/harness';

const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { ADMIN_TOKEN: TEST_ADMIN_TOKEN } });
});
afterAll(async () => {
  await h?.close();
});

describe('names in append-only records', () => {
  it('an erasure whose requestedBy is the admin token (or a caller key) is refused with 400, nothing erased or recorded', async () => {
    const scopeId = scope('records', 'erase');
    await h.request('POST', '/api/memory/patterns', { scopeId, patterns: ['kept until a proper request'] });
    for (const credential of [TEST_ADMIN_TOKEN, TEST_CALLER_KEY]) {
      const refused = await h.request('POST', '/api/admin/erase', { scopeId, requestedBy: credential }, admin);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('Refused: requestedBy contains a credential of this service; nothing was changed');
      expect(refused.text).not.toContain(credential);
    }
    const exported = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, admin);
    expect(exported.body.patterns).toHaveLength(1);
    expect(exported.text).not.toContain(TEST_ADMIN_TOKEN);

    const erased = await h.request('POST', '/api/admin/erase', { scopeId, requestedBy: 'dpr-2026-118' }, admin);
    expect(erased.status).toBe(200);
    const after = await h.request('GET', `/api/admin/export?scopeId=${encodeURIComponent(scopeId)}`, undefined, admin);
    expect(after.text).toContain('admin:dpr-2026-118');
  });

  it('the exposure change refuses a credential in actor or reason the same way', async () => {
    const refused = await h.request('PUT', '/api/admin/exposure', { percent: 0, actor: TEST_ADMIN_TOKEN }, admin);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('Refused: actor contains a credential of this service; nothing was changed');
  });
});
