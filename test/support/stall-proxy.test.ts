import { afterAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { startStallProxy } from './stall-proxy';
describe('stall proxy', () => {
  it('forwards then stalls', async () => {
    const proxy = await startStallProxy({ host: '127.0.0.1', port: 5432 });
    const c = new Client({ connectionString: proxy.url('postgres://postgres@127.0.0.1:5432/postgres'), query_timeout: 300 });
    await c.connect();
    expect((await c.query('select 1 as n')).rows[0].n).toBe(1);
    proxy.pause();
    const t = Date.now();
    await expect(c.query('select 1')).rejects.toThrow(/timeout/i);
    expect(Date.now() - t).toBeGreaterThanOrEqual(250);
    await c.end().catch(() => undefined);
    await proxy.close();
  });
});
