/**
 * The load balancer's decisions, pure: which instance takes a request, whether a failed attempt may go to
 * another instance, and which headers cross the proxy. load-balancer.ts does the I/O.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface Candidate {
  key: string;
  inFlight: number;
}

/**
 * Least in-flight first; ties go round robin from `turn`, so an idle fleet still spreads requests evenly.
 * Returns the chosen key and the turn to use next, or undefined when every candidate was excluded.
 */
export function pickUpstream(candidates: readonly Candidate[], turn: number, exclude: ReadonlySet<string>): { key: string; nextTurn: number } | undefined {
  const n = candidates.length;
  let bestIndex = -1;
  for (let step = 0; step < n; step += 1) {
    const index = (((turn + step) % n) + n) % n;
    const candidate = candidates[index]!;
    if (exclude.has(candidate.key)) continue;
    if (bestIndex < 0 || candidate.inFlight < candidates[bestIndex]!.inFlight) bestIndex = index;
  }
  return bestIndex < 0 ? undefined : { key: candidates[bestIndex]!.key, nextTurn: (bestIndex + 1) % n };
}

/** Idempotent methods (RFC 9110 9.2.2). POST and PATCH are not: a retry could write twice. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function requestHasBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && Number(length) > 0;
}

/**
 * A failed attempt goes to another instance only when nothing of the answer reached the client, the method is
 * idempotent, and there is no body to replay (bodies are streamed, never buffered). A deadline is never retried:
 * the upstream may still be working on it.
 */
export function mayRetry(attempt: {
  method: string;
  hasBody: boolean;
  responseStarted: boolean;
  timedOut: boolean;
  attemptsMade: number;
  maxAttempts: number;
}): boolean {
  return (
    !attempt.responseStarted &&
    !attempt.timedOut &&
    !attempt.hasBody &&
    IDEMPOTENT.has(attempt.method.toUpperCase()) &&
    attempt.attemptsMade < attempt.maxAttempts
  );
}

/** Connection-scoped headers (RFC 9110 7.6.1): each hop has its own. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function hopByHop(connectionHeader: string | string[] | undefined): Set<string> {
  const named = (Array.isArray(connectionHeader) ? connectionHeader.join(',') : connectionHeader ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter(Boolean);
  return new Set([...HOP_BY_HOP, ...named]);
}

/**
 * The headers sent upstream: the client's end-to-end headers, with the client's address appended to
 * X-Forwarded-For (one proxy hop, as on Render: the service trusts exactly one, TRUST_PROXY_HOPS=1).
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, clientAddress: string): OutgoingHttpHeaders {
  const drop = hopByHop(incoming.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || drop.has(name)) continue;
    out[name] = value;
  }
  const previous = incoming['x-forwarded-for'];
  const chain = (Array.isArray(previous) ? previous.join(', ') : previous ?? '').trim();
  out['x-forwarded-for'] = chain ? `${chain}, ${clientAddress}` : clientAddress;
  out['x-forwarded-proto'] = incoming['x-forwarded-proto'] ?? 'http';
  return out;
}

/** The upstream's response headers for the client, raw (repeated Set-Cookie kept, order kept), minus hop-by-hop. */
export function downstreamResponseHeaders(rawHeaders: readonly string[]): string[] {
  let connection: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'connection') connection = rawHeaders[i + 1];
  const drop = hopByHop(connection);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!drop.has(rawHeaders[i]!.toLowerCase())) out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}
