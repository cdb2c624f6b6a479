/**
 * Where a miss's time goes inside the service process (`npm run bench:service`, the timed sequential misses):
 * Node's own HTTP diagnostics channels mark, for each miss, when the service got the request, when the Context7
 * client created its request (axios reached `http.request`) and finished it (`end`), when Context7's answer was read
 * to its end, and when the service's answer was handed to the socket. Subscribed only while the timed misses run,
 * so the throughput cases pay nothing for it; misses go one at a time, so the Context7 call belongs to the one
 * service request in flight. With BENCH_MISS_MARKS_CPU=1 each mark also reads the main thread's CPU time: a segment's
 * CPU against its wall time tells work from waiting (a descheduled process, a wake-up).
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import fs from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';

/** Wall time and the main thread's CPU time at a mark, ms. */
type Mark = [wall: number, cpu: number];

// The main thread's CPU time to the ns (/proc/thread-self/schedstat, re-read by pread at 0; Linux only): the
// getrusage behind process.threadCpuUsage() moves in scheduler ticks, too coarse for a segment of a millisecond.
// schedstat alone is no better: the kernel brings a running thread's figure up to date only at a tick or a
// context switch, so two reads within one turn of the event loop often differ by 0 (issue 29's seventh round: a
// 0.3 ms spin read as 0.000 at the median). process.cpuUsage() (getrusage of the process) updates the calling
// thread's figure first, so it is called, and its answer dropped, before each read: 0.27-0.31 ms for that spin.
let schedstat: number | null = null;
const schedstatBuffer = Buffer.alloc(128);
function cpuMs(): number {
  try {
    process.cpuUsage();
    schedstat ??= fs.openSync('/proc/thread-self/schedstat', 'r');
    const length = fs.readSync(schedstat, schedstatBuffer, 0, schedstatBuffer.length, 0);
    return Number(schedstatBuffer.toString('latin1', 0, length).split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** BENCH_MISS_MARKS_CPU=1: each mark reads the CPU time too (a system call: a few µs more per mark). */
const WITH_CPU = process.env.BENCH_MISS_MARKS_CPU === '1';

function mark(): Mark {
  return [performance.now(), WITH_CPU ? cpuMs() : Number.NaN];
}

interface MissMarks {
  /** Which HTTP client made the Context7 call: node:http (axios, the bare proxy) or undici. */
  via?: 'http' | 'undici';
  arrived: Mark;
  created?: Mark;
  sent?: Mark;
  answered?: Mark;
  finished?: Mark;
}

type Segment = 'arrivedToCreated' | 'createdToSent' | 'sentToAnswered' | 'answeredToFinished' | 'arrivedToFinished';

/** Medians over the misses, ms of wall time; `cpu`, the same segments' medians of main-thread CPU time. */
export interface MissSegments extends Record<Segment, number> {
  /** The same, for the misses whose Context7 call went through undici (its own diagnostics channels). */
  undici?: MissSegments;
  misses: number;
  cpu: Record<Segment, number>;
  /** Request arrived -> the Context7 client's http.request (Express, guards, domain, cache, cockatiel, axios). */
  arrivedToCreated: number;
  /** http.request -> its end() (axios writing the body). */
  createdToSent: number;
  /** end() -> Context7's answer read to its end: the Context7 round trip as the service sees it. */
  sentToAnswered: number;
  /** Context7's answer read -> the service's answer handed to the socket (axios, schema check, merge, cache, res.json). */
  answeredToFinished: number;
  /** The whole miss inside the service. */
  arrivedToFinished: number;
}

const CHANNELS = [
  'http.server.request.start',
  'http.client.request.created',
  'http.client.request.start',
  'http.client.response.finish',
  // undici's: the request created, its body written, the answer's headers read.
  'undici:request:create',
  'undici:request:bodySent',
  'undici:request:headers',
  'http.server.response.finish',
] as const;

export function createMissMarks(servicePath: string, context7Path: string) {
  const done: MissMarks[] = [];
  let current: MissMarks | null = null;
  const byRequest = new WeakMap<object, MissMarks>();
  const isContext7 = (request: ClientRequest) => request.path === context7Path;
  // undici's request path carries the base URL's prefix, if any.
  const isUndiciContext7 = (message: unknown) => (message as { request: { path: string } }).request.path.endsWith(context7Path);
  const undiciMark = (field: 'created' | 'sent' | 'answered') => (message: unknown) => {
    if (current && isUndiciContext7(message)) {
      current.via = 'undici';
      current[field] = mark();
    }
  };
  const handlers: Record<(typeof CHANNELS)[number], (message: unknown) => void> = {
    'http.server.request.start': (message) => {
      const { request, response } = message as { request: IncomingMessage; response: object };
      if (request.url !== servicePath) return;
      current = { arrived: mark() };
      byRequest.set(response, current);
    },
    'http.client.request.created': (message) => {
      if (current && isContext7((message as { request: ClientRequest }).request)) {
        current.via = 'http';
        current.created = mark();
      }
    },
    'http.client.request.start': (message) => {
      if (current && isContext7((message as { request: ClientRequest }).request)) current.sent = mark();
    },
    'http.client.response.finish': (message) => {
      if (current && isContext7((message as { request: ClientRequest }).request)) current.answered = mark();
    },
    'undici:request:create': undiciMark('created'),
    'undici:request:bodySent': undiciMark('sent'),
    'undici:request:headers': undiciMark('answered'),
    'http.server.response.finish': (message) => {
      const marks = byRequest.get((message as { response: object }).response);
      if (!marks) return;
      marks.finished = mark();
      if (marks.created !== undefined && marks.sent !== undefined && marks.answered !== undefined) done.push(marks);
      if (current === marks) current = null;
    },
  };
  return {
    start(): void {
      done.length = 0;
      for (const name of CHANNELS) diagnosticsChannel.subscribe(name, handlers[name]);
    },
    stop(): MissSegments {
      for (const name of CHANNELS) diagnosticsChannel.unsubscribe(name, handlers[name]);
      const median = (values: number[]) => {
        const sorted = values.sort((a, b) => a - b);
        return sorted.length === 0 ? Number.NaN : sorted[Math.floor(sorted.length / 2)]!;
      };
      const between: Record<Segment, (m: MissMarks) => [Mark, Mark]> = {
        arrivedToCreated: (m) => [m.arrived, m.created!],
        createdToSent: (m) => [m.created!, m.sent!],
        sentToAnswered: (m) => [m.sent!, m.answered!],
        answeredToFinished: (m) => [m.answered!, m.finished!],
        arrivedToFinished: (m) => [m.arrived, m.finished!],
      };
      const segments = Object.keys(between) as Segment[];
      const of = (misses: MissMarks[], index: 0 | 1) =>
        Object.fromEntries(segments.map((segment) => [segment, median(misses.map((m) => { const [from, to] = between[segment](m); return to[index] - from[index]; }))])) as Record<Segment, number>;
      const viaHttp = done.filter((m) => m.via === 'http');
      const viaUndici = done.filter((m) => m.via === 'undici');
      return {
        misses: viaHttp.length,
        ...of(viaHttp, 0),
        cpu: of(viaHttp, 1),
        ...(viaUndici.length > 0 ? { undici: { misses: viaUndici.length, ...of(viaUndici, 0), cpu: of(viaUndici, 1) } } : {}),
      };
    },
  };
}
