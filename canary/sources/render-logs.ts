/**
 * Reads the analysed service's Render logs (GET /logs) from the analysed deploy's start: the endpoint has no
 * deploy filter, so `startTime` is the deploy's creation time and each read continues where the previous one
 * stopped. At most `maxPages` pages per measurement (Render's rate limits; the client waits out 429s); lines
 * beyond the budget are read at the next measurement. Only lines that classify as errors are kept.
 */
import type { RenderClient } from '../../render/client';
import type { LogEntry } from '../../render/types';
import { classifyLogLine, parseStructured, type LogLine } from '../logs/classify';
import type { LogReading } from '../logs/judge-logs';
import type { LogSource } from './second-sources';

export type RenderLogsPort = Pick<RenderClient, 'listLogs'>;

export interface RenderLogSourceOptions {
  render: RenderLogsPort;
  ownerId: string;
  serviceId: string;
  /** the analysed deploy's createdAt */
  since: string;
  maxPages: number;
  now?: () => number;
}

const PAGE_LIMIT = 100;
const KEPT_PER_READ = 500;

export function toLogLine(entry: LogEntry): LogLine {
  const label = (name: string) => entry.labels.find((l) => l.name === name)?.value;
  const level = label('level') ?? parseStructured(entry.message)?.level;
  const instance = label('instance');
  return { id: entry.id, timestamp: entry.timestamp, message: entry.message, ...(level ? { level } : {}), ...(instance ? { instance } : {}) };
}

export function createRenderLogSource(options: RenderLogSourceOptions): LogSource {
  const now = options.now ?? Date.now;
  let cursor = options.since;
  return {
    async read() {
      const from = cursor;
      const to = new Date(now()).toISOString();
      let page = { startTime: from, endTime: to };
      let linesRead = 0;
      const entries: LogLine[] = [];
      try {
        for (let pages = 0; pages < options.maxPages; pages++) {
          const answer = await options.render.listLogs({
            ownerId: options.ownerId,
            resource: [options.serviceId],
            startTime: page.startTime,
            endTime: page.endTime,
            direction: 'forward',
            limit: PAGE_LIMIT,
          });
          linesRead += answer.logs.length;
          for (const entry of answer.logs) {
            const line = toLogLine(entry);
            if (classifyLogLine(line).signature && entries.length < KEPT_PER_READ) entries.push(line);
          }
          if (!answer.hasMore) {
            cursor = to;
            return { from, to, linesRead, entries };
          }
          page = { startTime: answer.nextStartTime, endTime: answer.nextEndTime };
          cursor = answer.nextStartTime;
        }
        return { from, to: cursor, linesRead, entries, truncated: true };
      } catch (error) {
        // Keep what was read; the cursor stays where the last good page left it.
        return { from, to: cursor, linesRead, entries, error: `GET /logs: ${(error as Error).message.slice(0, 200)}` };
      }
    },
  };
}
