/**
 * The floor under a miss (`npm run bench:service`, issue 29's seventh round): a bare node:http proxy in a process of
 * its own, compiled and started as the service process is. It reads a POST, sends its body to the emulator's search
 * on a keep-alive http.Agent (the Context7 client's settings) and writes the answer back, with nothing else: no
 * framework, guards, axios, breaker, schema check, cache or store. Timed in the same alternation as the misses,
 * "bare proxy - emulator alone" is what Node's two extra HTTP legs cost after a 50 ms wait; "miss - bare proxy" is
 * what the service adds on top. The same marks as the service's (service-miss-marks.ts) split it by segment.
 *
 * Prints one JSON line ({ url }) once it listens; stops on SIGTERM.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMissMarks } from './service-miss-marks';

/** The path the bench posts to (the marks' server path). */
export const BARE_PROXY_PATH = '/bare-proxy';
const CONTEXT7_SEARCH_PATH = '/v1/snippets/search';
/** The whole upstream call's deadline, as the service's client has one (one timer per call, as there). */
const UPSTREAM_DEADLINE_MS = 2_000;

function readBody(stream: http.IncomingMessage, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
}

function serve(): void {
  const emulatorUrl = process.env.BENCH_EMULATOR_URL;
  const apiKey = process.env.BENCH_CONTEXT7_API_KEY;
  if (!emulatorUrl || !apiKey) throw new Error('BENCH_EMULATOR_URL and BENCH_CONTEXT7_API_KEY are required');
  const target = new URL(CONTEXT7_SEARCH_PATH, emulatorUrl);
  // The Context7 client's agent settings (service/context7/client.ts).
  const agent = new http.Agent({ keepAlive: true, timeout: 4_000 });
  const marks = createMissMarks(BARE_PROXY_PATH, CONTEXT7_SEARCH_PATH);
  const json = (res: http.ServerResponse, value: unknown) => {
    const text = JSON.stringify(value);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    if (req.url === '/__marks/start') {
      marks.start();
      req.resume();
      return json(res, { started: true });
    }
    if (req.url === '/__marks/stop') {
      req.resume();
      return json(res, marks.stop());
    }
    readBody(req, (body) => {
      const upstream = http.request(
        target,
        {
          method: 'POST',
          agent,
          headers: { accept: 'application/json', 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${apiKey}` },
        },
        (answer) => {
          readBody(answer, (answerBody) => {
            clearTimeout(deadline);
            res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json; charset=utf-8', 'content-length': answerBody.length });
            res.end(answerBody);
          });
        },
      );
      const deadline = setTimeout(() => upstream.destroy(new Error('upstream deadline')), UPSTREAM_DEADLINE_MS);
      upstream.on('error', () => {
        clearTimeout(deadline);
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
  });
  process.once('SIGTERM', () => {
    agent.destroy();
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

if (process.env.BENCH_BARE_PROXY) serve();
