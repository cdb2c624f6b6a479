/**
 * Structured JSON logs (pino). Every line carries its runbook tag twice: in the message, so Render's
 * log filter `[MEMORY]` finds it, and as a `tag` field, so log tooling can group by it.
 * Secrets are removed twice: by key (redactSecretKeys, on every line) and by value (every known secret is scrubbed
 * from the serialized line), so a key that slips into an error message still never reaches the log.
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

/**
 * Keys whose values never reach a log line: at the top level, one level down (`config.token`), and inside a nested
 * `headers` object (`config.headers.authorization`). Done here rather than by pino's `redact` paths: those cost
 * ~15 µs on every line, the largest part of a `[CACHE] hit` line (issue 29's profile), and this walk costs well
 * under one when no key matches. Every line passes through it (formatters.log), whichever logger wrote it.
 */
const SECRET_KEYS: ReadonlySet<string> = new Set(['apiKey', 'token', 'authorization', 'Authorization', 'context7ApiKey', 'adminToken']);

function isPlainRecord(value: unknown): value is Fields {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `fields` with the value of every secret key replaced by REDACTED; the same object when nothing matched. */
function redactLevel(fields: Fields, depth: number, underHeaders: boolean): Fields {
  let out: Fields | null = null;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    let next = value;
    if (SECRET_KEYS.has(key) && (depth < 3 || underHeaders)) {
      if (value !== undefined) next = REDACTED;
    } else if (depth < 3 && isPlainRecord(value)) {
      // Depth 3 is reached only under `headers` (the old `*.headers.authorization` path).
      if (depth < 2 || key === 'headers') next = redactLevel(value, depth + 1, key === 'headers');
    }
    if (next !== value) {
      out ??= { ...fields };
      out[key] = next;
    }
  }
  return out ?? fields;
}

export function redactSecretKeys(fields: Fields): Fields {
  return redactLevel(fields, 1, false);
}


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
      formatters: { level: (label) => ({ level: label }), log: redactSecretKeys },
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
