/**
 * Minimal JSON-over-HTTP for the canary's probes. Each request opens its own connection
 * (agent: false) so a load balancer can route consecutive samples to different instances.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Probe } from '../analysis/measurement';

export interface HttpRequestOptions {
  /** largest body read (default 1 MB); the Month-1 history with per-cluster tables asks for more */
  maxBodyBytes?: number;
  method?: 'GET' | 'POST' | 'PUT';
  body?: unknown;
  timeoutMs: number;
  headers?: Record<string, string>;
}

/** Never throws: failures become a Probe with `error` set, which the analysis counts as measurement errors. */
export type HttpProbe = (url: string, options: HttpRequestOptions) => Promise<Probe>;

const MAX_BODY_BYTES = 1_000_000;

export const httpProbe: HttpProbe = (url, options) =>
  new Promise<Probe>((resolve) => {
    let settled = false;
    const finish = (probe: Probe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(probe);
    };
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ status: null, error: 'network', message: `invalid URL ${url}` });
      return;
    }
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        agent: false,
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          const limit = options.maxBodyBytes ?? MAX_BODY_BYTES;
          if (size > limit) {
            req.destroy();
            finish({ status: res.statusCode ?? null, error: 'invalid_json', message: `body larger than ${(limit / 1e6).toFixed(0)} MB` });
          } else chunks.push(chunk);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            finish({ status: res.statusCode ?? null, body: text.length ? JSON.parse(text) : undefined });
          } catch {
            finish({ status: res.statusCode ?? null, body: text.slice(0, 200), error: 'invalid_json', message: 'body is not JSON' });
          }
        });
        res.on('error', (error) => finish({ status: res.statusCode ?? null, error: 'network', message: error.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: null, error: 'timeout', message: `no answer within ${options.timeoutMs} ms` });
    }, options.timeoutMs);
    req.on('error', (error) => finish({ status: null, error: 'network', message: error.message }));
    req.end(payload);
  });
