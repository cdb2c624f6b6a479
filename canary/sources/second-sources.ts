/**
 * Pluggable metric sources beside the service's own endpoint: each is read once per measurement and its answer
 * recorded raw-ish in the measurement (observations, log lines), so the pure analysis judges them and a recorded
 * run replays the same. A source that cannot read records an error: a measurement problem, never a breach.
 */
import type { Measurement } from '../analysis/measurement';
import type { SourceReading } from '../analysis/observations';
import type { LogReading } from '../logs/judge-logs';
import type { MetricSource } from './metrics-poller';

/** A source of named observations (counts since the analysed deploy started), e.g. Render's platform metrics. */
export interface ObservationSource {
  readonly name: string;
  read(): Promise<SourceReading>;
}

/** A source of log lines, read from where the previous read stopped. */
export interface LogSource {
  read(): Promise<LogReading>;
}

/** The service's own measurement, then every second source once, side by side. */
export function withSecondSources(base: MetricSource, extras: { logs?: LogSource; sources?: ObservationSource[] }): MetricSource {
  return {
    async measure(atSeconds): Promise<Measurement> {
      const [measurement, logs, ...readings] = await Promise.all([
        base.measure(atSeconds),
        extras.logs ? safely(() => extras.logs!.read(), (error) => ({ from: '', to: '', linesRead: 0, entries: [], error })) : undefined,
        ...(extras.sources ?? []).map((source) => safely(() => source.read(), (error) => ({ source: source.name, observations: [], error }))),
      ]);
      return {
        ...measurement,
        ...(logs ? { logs } : {}),
        ...(readings.length ? { sources: readings as SourceReading[] } : {}),
      };
    },
  };
}

/** Sources report their own errors; anything they throw anyway is recorded the same way. */
async function safely<T>(read: () => Promise<T>, onError: (message: string) => T): Promise<T> {
  try {
    return await read();
  } catch (error) {
    return onError((error as Error).message.slice(0, 300));
  }
}
