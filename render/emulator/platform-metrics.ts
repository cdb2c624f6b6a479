/**
 * What the local platform measured, in the shapes of Render's GET /logs and GET /metrics/* answers: log lines
 * parsed from the service's log file (its processes' real output and the platform's own lines), requests through
 * the load balancer (status, latency) and instances' memory (RSS from /proc) over time. Pure functions of the
 * recorded data; the sampling and file reading are in local-platform.ts and load-balancer.ts.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';

/** One request answered by the load balancer. */
export interface RequestRecord {
  at: number;
  status: number;
  durationMs: number;
}

/** One RSS reading of an instance's processes. */
export interface MemorySample {
  at: number;
  instanceId: string;
  bytes: number;
}

export interface PlatformLogLine {
  id: string;
  timestamp: string;
  message: string;
  labels: { name: 'resource' | 'instance' | 'level' | 'type'; value: string }[];
}

const PLATFORM_LINE = /^\[render-emulator (\d{4}-\d{2}-\d{2}T[\d:.]+Z)\] (.*)$/;

/** What one raw line of a service's output says about itself: pino JSON lines give their level and instanceId. */
export function parseLogLine(line: string, knownInstances: readonly string[] = []): { message: string; level?: string; instance?: string } {
  const platform = PLATFORM_LINE.exec(line);
  if (platform) {
    const message = platform[2]!;
    const instance = knownInstances.find((id) => message.startsWith(`${id} `));
    return { message, ...(instance ? { instance } : {}) };
  }
  if (line.startsWith('{')) {
    try {
      const json = JSON.parse(line) as Record<string, unknown>;
      const level =
        typeof json.level === 'string'
          ? json.level
          : typeof json.level === 'number'
            ? json.level >= 60 ? 'fatal' : json.level >= 50 ? 'error' : json.level >= 40 ? 'warn' : 'info'
            : undefined;
      const instance = typeof json.instanceId === 'string' ? json.instanceId : undefined;
      return { message: line, ...(level ? { level } : {}), ...(instance ? { instance } : {}) };
    } catch {
      // not JSON after all: a plain line
    }
  }
  return { message: line };
}

/** Where ingestion of one service's log file stands. */
export interface LogIngestState {
  offset: number;
  /** the bytes after the last newline: a line still being written */
  partial: string;
  lastMs: number;
  /** lines received so far (the newest MAX_LOG_LINES) and how many ever, for stable ids */
  lines: PlatformLogLine[];
  received: number;
}

const MAX_LOG_LINES = 100_000;

export const newLogIngestState = (): LogIngestState => ({ offset: 0, partial: '', lastMs: 0, lines: [], received: 0 });

/**
 * Adds the complete lines of `chunk` (bytes appended to the file since the last call), stamped as Render stamps
 * lines: with the time they were received (`nowMs`), strictly increasing (+1 ms), so a page boundary given as a
 * time is exact, and a line written after a read's end time is never stamped inside the range already read.
 */
export function ingestLogChunk(state: LogIngestState, chunk: string, nowMs: number, serviceId: string, knownInstances: readonly string[] = []): void {
  const text = state.partial + chunk;
  const parts = text.split('\n');
  state.partial = parts.pop() ?? '';
  for (const raw of parts) {
    const line = raw.replace(/\r$/, '');
    const index = state.received++;
    state.lastMs = Math.max(nowMs, state.lastMs + 1);
    if (line.trim() === '') continue;
    const parsed = parseLogLine(line, knownInstances);
    const labels: PlatformLogLine['labels'] = [
      { name: 'resource', value: serviceId },
      { name: 'type', value: 'app' },
      { name: 'level', value: parsed.level ?? 'info' },
    ];
    if (parsed.instance) labels.push({ name: 'instance', value: parsed.instance });
    state.lines.push({ id: `${serviceId}-log-${index}`, timestamp: new Date(state.lastMs).toISOString(), message: parsed.message, labels });
  }
  if (state.lines.length > MAX_LOG_LINES) state.lines.splice(0, state.lines.length - MAX_LOG_LINES);
}

/** Reads what was appended to `file` since the last call into `state`. */
export function ingestLogFile(state: LogIngestState, file: string, serviceId: string, knownInstances: readonly string[]): void {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    if (size <= state.offset) return;
    const buffer = Buffer.alloc(size - state.offset);
    const read = readSync(fd, buffer, 0, buffer.length, state.offset);
    state.offset += read;
    ingestLogChunk(state, buffer.subarray(0, read).toString('utf8'), Date.now(), serviceId, knownInstances);
  } catch {
    // no log file yet (nothing started), or removed during shutdown
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface LogQuery {
  startMs: number;
  endMs: number;
  direction: 'forward' | 'backward';
  limit: number;
  instance: string[];
  level: string[];
  text: string[];
  type: string[];
}

/** GET /logs over parsed lines: filters (any value of a filter matches), time range [start, end), one page. */
export function queryLogs(lines: PlatformLogLine[], q: LogQuery): { hasMore: boolean; nextStartTime: string; nextEndTime: string; logs: PlatformLogLine[] } {
  const label = (line: PlatformLogLine, name: string) => line.labels.find((l) => l.name === name)?.value;
  const matching = lines.filter((line) => {
    const t = Date.parse(line.timestamp);
    if (t < q.startMs || t >= q.endMs) return false;
    if (q.instance.length && !q.instance.includes(label(line, 'instance') ?? '')) return false;
    if (q.level.length && !q.level.includes(label(line, 'level') ?? '')) return false;
    if (q.type.length && !q.type.includes(label(line, 'type') ?? '')) return false;
    if (q.text.length && !q.text.some((needle) => line.message.includes(needle))) return false;
    return true;
  });
  const ordered = q.direction === 'forward' ? matching : [...matching].reverse();
  const page = ordered.slice(0, q.limit);
  const hasMore = ordered.length > page.length;
  const iso = (ms: number) => new Date(ms).toISOString();
  if (!hasMore) return { hasMore, nextStartTime: iso(q.startMs), nextEndTime: iso(q.endMs), logs: page };
  // The next page's range starts (forward) or ends (backward) at the first line not returned. Lines sharing a
  // millisecond with it are returned again on the next page only if they were not in this one: ids say which.
  const next = ordered[page.length]!;
  const nextMs = Date.parse(next.timestamp);
  return q.direction === 'forward'
    ? { hasMore, nextStartTime: iso(nextMs), nextEndTime: iso(q.endMs), logs: page }
    : { hasMore, nextStartTime: iso(q.startMs), nextEndTime: iso(nextMs + 1), logs: page };
}

type Series = { labels: { field: string; value: string }[]; values: { timestamp: string; value: number; unit: string }[]; unit: string };

function buckets(startMs: number, endMs: number, resolutionSeconds: number): number[] {
  const step = resolutionSeconds * 1000;
  const out: number[] = [];
  for (let t = startMs; t < endMs && out.length < 10_000; t += step) out.push(t);
  return out;
}

/** GET /metrics/http-requests: requests per bucket, one series per status code (aggregateBy=statusCode) or one in all. */
export function httpRequestSeries(records: RequestRecord[], startMs: number, endMs: number, resolutionSeconds: number, byStatus: boolean): Series[] {
  const step = resolutionSeconds * 1000;
  const starts = buckets(startMs, endMs, resolutionSeconds);
  const inRange = records.filter((r) => r.at >= startMs && r.at < endMs);
  const groups = new Map<string, RequestRecord[]>();
  for (const r of inRange) {
    const key = byStatus ? String(r.status) : 'all';
    const group = groups.get(key) ?? [];
    group.push(r);
    groups.set(key, group);
  }
  return [...groups].map(([key, group]) => ({
    labels: byStatus ? [{ field: 'statusCode', value: key }] : [],
    values: starts.map((s) => ({ timestamp: new Date(s).toISOString(), value: group.filter((r) => r.at >= s && r.at < s + step).length, unit: 'count' })),
    unit: 'count',
  }));
}

/** GET /metrics/http-latency: the quantile (nearest rank) of request durations per bucket, in ms. */
export function httpLatencySeries(records: RequestRecord[], startMs: number, endMs: number, resolutionSeconds: number, quantile: number): Series[] {
  const step = resolutionSeconds * 1000;
  const values = buckets(startMs, endMs, resolutionSeconds).flatMap((s) => {
    const durations = records.filter((r) => r.at >= s && r.at < s + step && r.at < endMs).map((r) => r.durationMs).sort((a, b) => a - b);
    if (durations.length === 0) return [];
    const rank = Math.min(durations.length - 1, Math.max(0, Math.ceil(quantile * durations.length) - 1));
    return [{ timestamp: new Date(s).toISOString(), value: durations[rank]!, unit: 'ms' }];
  });
  return values.length ? [{ labels: [{ field: 'quantile', value: String(quantile) }], values, unit: 'ms' }] : [];
}

/** GET /metrics/memory: each instance's mean RSS per bucket, in bytes. */
export function memorySeries(samples: MemorySample[], startMs: number, endMs: number, resolutionSeconds: number, instance?: string): Series[] {
  const step = resolutionSeconds * 1000;
  const byInstance = new Map<string, MemorySample[]>();
  for (const s of samples) {
    if (s.at < startMs || s.at >= endMs || (instance && s.instanceId !== instance)) continue;
    const group = byInstance.get(s.instanceId) ?? [];
    group.push(s);
    byInstance.set(s.instanceId, group);
  }
  return [...byInstance].map(([id, group]) => ({
    labels: [{ field: 'instance', value: id }],
    values: buckets(startMs, endMs, resolutionSeconds).flatMap((s) => {
      const inBucket = group.filter((g) => g.at >= s && g.at < s + step);
      if (inBucket.length === 0) return [];
      return [{ timestamp: new Date(s).toISOString(), value: Math.round(inBucket.reduce((sum, g) => sum + g.bytes, 0) / inBucket.length), unit: 'bytes' }];
    }),
    unit: 'bytes',
  }));
}

/** Resident memory of a process and its descendants (the start command's shell and what it runs), from /proc. */
export function processTreeRss(pid: number): number | undefined {
  const seen = new Set<number>();
  const walk = (p: number): number => {
    if (seen.has(p)) return 0;
    seen.add(p);
    let rss = 0;
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      const match = /VmRSS:\s+(\d+) kB/.exec(status);
      rss = match ? Number(match[1]) * 1024 : 0;
    } catch {
      return 0;
    }
    try {
      const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const child of children ? children.split(/\s+/) : []) rss += walk(Number(child));
    } catch {
      // no children file: count the process alone
    }
    return rss;
  };
  const total = walk(pid);
  return total > 0 ? total : undefined;
}
