/**
 * The snippet read's answer is written by the route itself (issue 29), not by Express's res.json: the bytes and
 * headers must stay what res.json sent, a miss and a hit alike, non-ASCII content included (Content-Length in
 * bytes, not characters).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snippetsResponseSchema } from '../../service/contracts/http';
import { scope, startHarness, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ emulator: {} });
});
afterAll(async () => {
  await h.close();
});

describe('a snippet read answers as res.json did', () => {
  it('on a miss and on the hit after it', async () => {
    const scopeId = scope('wire');
    const learned = await h.request('POST', '/api/memory/patterns', { scopeId, patterns: [{ content: 'ünïcödé wire 😀 answer' }] });
    expect(learned.status).toBe(200);
    const answers = [];
    for (let i = 0; i < 2; i += 1) answers.push(await h.request('POST', '/api/memory/snippets', { scopeId, query: 'wire' }));
    expect(answers.map((answer) => answer.body.source)).toEqual([expect.not.stringMatching(/^cache$/), 'cache']);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(answer.headers.get('content-length')).toBe(String(Buffer.byteLength(answer.text)));
      expect(answer.text).toBe(JSON.stringify(snippetsResponseSchema.parse(JSON.parse(answer.text))));
      expect(answer.text).toContain('ünïcödé wire 😀 answer');
    }
  });
});
