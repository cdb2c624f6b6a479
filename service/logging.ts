/**
 * Structured JSON logs (pino). Every line carries its runbook tag twice: in the message, so Render's
 * log filter `[MEMORY]` finds it, and as a `tag` field, so log tooling can group by it.
 * Secrets are removed twice: by key (pino redact) and by value (every known secret is scrubbed from
 * the serialized line), so a key that slips into an error message still never reaches the log.
 */
import pino from 'pino';

export const LOG_TAGS = ['[MEMORY]', '[MEMORY_ERROR]', '[SYNC]', '[CACHE]'] as const;
export type LogTag = (typeof LOG_TAGS)[number];

type Fields = Record<string, unknown>;
type Level = 'debug' | 'info' | 'warn' | 'error';

export interface TagLogger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

export interface ServiceLogger {
  memory: TagLogger;
  memoryError: TagLogger;
  sync: TagLogger;
  cache: TagLogger;
  /** The underlying pino logger, for startup lines outside the runbook tags. */
  base: pino.Logger;
  isLevelEnabled(level: Level): boolean;
  flush(): void;
}

export const REDACTED = '[REDACTED]';

const REDACT_PATHS = [
  'apiKey',
  'token',
  'authorization',
  'context7ApiKey',
  'adminToken',
  '*.apiKey',
  '*.token',
  '*.authorization',
  '*.Authorization',
  '*.context7ApiKey',
  '*.adminToken',
  'headers.authorization',
  'headers.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
];

/** Replaces every occurrence of each secret (raw and JSON-escaped) in a serialized line. */
export function createSecretScrubber(secrets: readonly string[]): (text: string) => string {
  const needles = new Set<string>();
  for (const value of secrets) {
    if (!value) continue;
    needles.add(value);
    needles.add(JSON.stringify(value).slice(1, -1));
  }
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  if (ordered.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const needle of ordered) if (out.includes(needle)) out = out.split(needle).join(REDACTED);
    return out;
  };
}

export interface LoggerOptions {
  level: string;
  secrets: readonly string[];
  /** Defaults to an asynchronous stdout stream; tests pass a capturing stream. */
  destination?: pino.DestinationStream;
  base?: Fields;
}

export function createServiceLogger(options: LoggerOptions): ServiceLogger {
  const scrub = createSecretScrubber(options.secrets);
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  const base = pino(
    {
      level: options.level,
      base: options.base ?? {},
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: scrub },
    },
    destination,
  );
  const forTag = (tag: LogTag): TagLogger => {
    const write = (level: Level) => (message: string, fields?: Fields) => {
      if (!base.isLevelEnabled(level)) return;
      base[level]({ ...fields, tag }, `${tag} ${message}`);
    };
    return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
  };
  return {
    memory: forTag('[MEMORY]'),
    memoryError: forTag('[MEMORY_ERROR]'),
    sync: forTag('[SYNC]'),
    cache: forTag('[CACHE]'),
    base,
    isLevelEnabled: (level) => base.isLevelEnabled(level),
    flush: () => {
      const stream = destination as { flushSync?: () => void };
      try {
        stream.flushSync?.();
      } catch {
        // an async destination that is not ready yet has nothing to flush
      }
    },
  };
}

/**
 * Error details safe to log: message and name only, never a request config or headers. Never coerces what was
 * thrown: String() of an object runs its own toString, which can throw inside the error handler itself.
 */
export function describeError(error: unknown): Fields {
  if (error instanceof Error) {
    const details: Fields = { errorName: safeText(error.name), errorMessage: safeText(error.message) };
    const type = (error as { type?: unknown }).type;
    if (typeof type === 'string') details.errorType = type;
    return details;
  }
  return { errorMessage: safeText(error) };
}

function safeText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value);
  return `(a thrown ${Array.isArray(value) ? 'array' : typeof value})`;
}
