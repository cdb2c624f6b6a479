/**
 * The HTTP drain says how it ended (service/http/drain.ts): every connection closed gracefully, or some were still
 * open at the cutoff and destroyed. The service logs which (service/compose.ts), and the SIGTERM test reads that
 * instead of timing the drain.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createDrainableServer } from '../../service/http/drain';

async function listen(handler: http.RequestListener) {
  const drainable = createDrainableServer(handler, { quietMs: 50 });
  await new Promise<void>((resolve) => drainable.server.listen(0, '127.0.0.1', resolve));
  return { drainable, port: (drainable.server.address() as AddressInfo).port };
}

describe('drain outcome', () => {
  it('reports 0 destroyed when an idle keep-alive connection closes gracefully', async () => {
    const { drainable, port } = await listen((_req, res) => res.end('ok'));
    const agent = new http.Agent({ keepAlive: true });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        http.get({ port, host: '127.0.0.1', agent, path: '/' }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); }).on('error', reject);
      });
      expect(status).toBe(200);
      // The keep-alive socket is still open here; the drain ends it once it has been quiet for 50 ms.
      await expect(drainable.drain(30_000)).resolves.toEqual({ destroyedAtCutoff: 0 });
    } finally {
      agent.destroy();
    }
  });

  it('reports the connections it had to destroy at the cutoff (a request that never gets its answer)', async () => {
    const { drainable, port } = await listen(() => undefined); // never answers
    const failed = new Promise<string>((resolve) => {
      const req = http.get({ port, host: '127.0.0.1', path: '/' }, () => resolve('answered'));
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    // Wait until the server holds the request, so the drain has a connection with a response pending.
    await new Promise<void>((resolve) => drainable.server.once('request', () => resolve()));
    await expect(drainable.drain(100)).resolves.toEqual({ destroyedAtCutoff: 1 });
    expect(await failed).toBe('ECONNRESET');
  });
});
