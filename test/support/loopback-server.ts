/**
 * A loopback HTTP server for a test file: it answers with `handler`, tracks the intervals a handler starts (a
 * trickling answer) so that closing stops them, and closes its connections when the file ends.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  server: Server;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Writes `chunk()` every `everyMs` until it returns null or the client goes; then ends the answer. */
  trickle(req: IncomingMessage, res: ServerResponse, everyMs: number, chunk: () => string | null): void;
  close(): Promise<void>;
}

export async function startLoopbackServer(handler: (req: IncomingMessage, res: ServerResponse, self: LoopbackServer) => void): Promise<LoopbackServer> {
  const timers = new Set<NodeJS.Timeout>();
  const self = {} as LoopbackServer;
  const server = createServer((req, res) => handler(req, res, self));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  Object.assign(self, {
    server,
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    trickle(req: IncomingMessage, res: ServerResponse, everyMs: number, chunk: () => string | null) {
      const drip = setInterval(() => {
        const next = chunk();
        if (next === null) {
          clearInterval(drip);
          timers.delete(drip);
          res.end();
        } else res.write(next);
      }, everyMs);
      timers.add(drip);
      req.socket.on('close', () => clearInterval(drip));
    },
    async close() {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  } satisfies LoopbackServer);
  return self;
}
