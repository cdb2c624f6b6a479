/**
 * How long one Render API call takes to give up, with the client's default deadlines (render/client.ts: 20 s per
 * attempt, 60 s per operation), against three loopback servers that never finish an answer: one that never answers,
 * one that drips a byte every 5 s, one that sends the headers and then nothing. Prints one JSON line per case.
 *   npx tsx bench/render-deadlines.ts [hang|drip|headers ...]
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RenderClient } from '../render/client';

type Mode = 'hang' | 'drip' | 'headers';

function serve(mode: Mode): Promise<Server> {
  const server = createServer((req, res) => {
    if (mode === 'drip') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const drip = setInterval(() => res.write(' '), 5_000);
      req.socket.on('close', () => clearInterval(drip));
    } else if (mode === 'headers') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function measure(mode: Mode): Promise<void> {
  const server = await serve(mode);
  const client = new RenderClient({ apiKey: 'bench-key', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` });
  const started = performance.now();
  const error = await client.getService('srv-bench').then(() => new Error('answered'), (e: unknown) => e as Error);
  process.stdout.write(`${JSON.stringify({ mode, seconds: Math.round(performance.now() - started) / 1000, error: error.message })}\n`);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

const modes = (process.argv.slice(2).length ? process.argv.slice(2) : ['hang', 'drip', 'headers']) as Mode[];
void (async () => {
  for (const mode of modes) await measure(mode);
})();
