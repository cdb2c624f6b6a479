/**
 * The canary's probes of the service (canary/sources/http.ts, also the webhook's transport) have a total deadline,
 * body included (issue 22 §2 asked to check it): a server that drips its answer or sends headers and then nothing
 * is a `timeout` probe error at the deadline, never a hang.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpProbe } from '../../canary/sources/http';

let server: Server;
let base: string;
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url === '/drip') {
      const drip = setInterval(() => res.write(' '), 20);
      timers.add(drip);
      req.socket.on('close', () => clearInterval(drip));
    } else res.flushHeaders();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const timer of timers) clearInterval(timer);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('the canary probe deadline covers the body', () => {
  it('a dripping answer is a timeout at the deadline', async () => {
    expect(await httpProbe(`${base}/drip`, { timeoutMs: 300 })).toMatchObject({ status: null, error: 'timeout', message: 'no answer within 300 ms' });
  });

  it('headers and then nothing is a timeout at the deadline', async () => {
    expect(await httpProbe(`${base}/silent`, { timeoutMs: 300 })).toMatchObject({ status: null, error: 'timeout' });
  });
});
