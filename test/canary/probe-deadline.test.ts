/**
 * The canary's probes of the service (canary/sources/http.ts, also the webhook's transport) have a total deadline,
 * body included (issue 22 §2 asked to check it): a server that drips its answer or sends headers and then nothing
 * is a `timeout` probe error at the deadline, never a hang.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpProbe } from '../../canary/sources/http';
import { startLoopbackServer, type LoopbackServer } from '../support/loopback-server';

let server: LoopbackServer;
let base: string;

beforeAll(async () => {
  server = await startLoopbackServer((req, res, self) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    // A space every 20 ms, never ending; or headers and then nothing.
    if (req.url === '/drip') self.trickle(req, res, 20, () => ' ');
    else res.flushHeaders();
  });
  base = server.base;
});
afterAll(() => server.close());

describe('the canary probe deadline covers the body', () => {
  it('a dripping answer is a timeout at the deadline', async () => {
    expect(await httpProbe(`${base}/drip`, { timeoutMs: 300 })).toMatchObject({ status: null, error: 'timeout', message: 'no answer within 300 ms' });
  });

  it('headers and then nothing is a timeout at the deadline', async () => {
    expect(await httpProbe(`${base}/silent`, { timeoutMs: 300 })).toMatchObject({ status: null, error: 'timeout' });
  });
});
